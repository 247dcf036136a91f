"""Every diffusers-layout LoRA file applies the trained delta in every loader, also at alpha != rank (issue 26).

peft and diffusers scale a LoRA by ``lora_alpha / r`` from the file's peft metadata
(``lora_adapter_metadata``). ComfyUI (``comfy/lora.py``, ``load_lora``: scale ``alpha / rank``
only from a ``<module>.alpha`` tensor, else 1) and kohya-ss never read that metadata, so they
apply ``lora_B @ lora_A`` as it is in the file. The plugins therefore bake ``alpha / rank`` into
``lora_B`` and record ``lora_alpha = r``. These tests fit lora-sd15, lora-sdxl, lora-sd3 and
lora-flux at rank 8, alpha 4 on the tiny models and check, module by module:

- the delta a metadata-blind loader applies (``B @ A`` of the file, scale 1) equals peft's delta
  of the trained model (``B @ A * alpha / rank``, taken from the live adapter before saving);
- diffusers' own ``load_lora_weights`` of the file injects layers with that same delta;
- (SD1.5) the images from the file equal those from the unbaked file the plugins wrote before.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from safetensors import safe_open  # noqa: E402

from synthaug.diffusion._lora import injected_lora_modules, saved_lora_weights  # noqa: E402
from synthaug.testing import make_concepts, tiny_flux, tiny_sd3, tiny_sdxl  # noqa: E402

torch.set_num_threads(1)

RANK, ALPHA = 8, 4.0
LORA_FILE = "pytorch_lora_weights.safetensors"
_ADAPTER = "synthaug"
#: kind -> (generator, pipeline class, tiny-model writer or None for the shared SD1.5 fixture, model attribute, options)
CASES = {
    "sd15": ("synthaug_lora_sd15:LoraSD15Generator", "StableDiffusionPipeline", None, "unet",
             {"target_modules": ["to_k", "to_q", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj",
                                 "ff.net.2"]}),
    "sdxl": ("synthaug_lora_sdxl:LoraSDXLGenerator", "StableDiffusionXLPipeline", tiny_sdxl, "unet",
             {"target_modules": ["to_k", "to_q", "to_v", "to_out.0", "proj_in", "proj_out"]}),
    "sd3": ("synthaug_lora_sd3:LoraSD3Generator", "StableDiffusion3Pipeline", tiny_sd3, "transformer",
            {"dtype": "float32", "max_sequence_length": 16}),
    "flux": ("synthaug_lora_flux:LoraFluxGenerator", "FluxPipeline", tiny_flux, "transformer",
             {"dtype": "float32", "max_sequence_length": 16}),
}


def recording(cls: type) -> type:
    """``cls`` that keeps, when saving, peft's delta ``B @ A * scaling`` and the peft state of every LoRA layer."""

    class Recording(cls):
        def save_adapter(self, pipe, concept, folder):
            model = getattr(pipe, self.model_attribute)
            layers = injected_lora_modules(model, adapter_name=_ADAPTER)
            self.deltas = {name: product(layer.lora_A[_ADAPTER].weight, layer.lora_B[_ADAPTER].weight)
                           * layer.scaling[_ADAPTER] for name, layer in layers.items()}
            self.states = {name: (layer.lora_A[_ADAPTER].weight.detach().clone(),
                                  layer.lora_B[_ADAPTER].weight.detach().clone()) for name, layer in layers.items()}
            return super().save_adapter(pipe, concept, folder)

    return Recording


def product(down, up):
    """``up @ down`` of a linear or 1x1-conv LoRA, as a ``(out, in)`` matrix."""
    return (up.detach().flatten(1) @ down.detach().flatten(1)).clone()


@pytest.fixture(scope="module")
def concepts(tmp_path_factory):
    return make_concepts(tmp_path_factory.mktemp("data"), n_concepts=1, n_images=2, size=32)


@pytest.fixture(scope="module")
def fitted(concepts, tiny_sd15_model, tmp_path_factory):
    """``fitted(kind)``: (generator fitted at rank 8 alpha 4, its tiny model), one per kind, kept for the module."""
    cache: dict[str, tuple] = {}

    def get(kind: str):
        if kind not in cache:
            generator, _, writer, attribute, extra = CASES[kind]
            model = tiny_sd15_model if writer is None else writer(tmp_path_factory.mktemp("models") / kind)
            module, _, name = generator.partition(":")
            cls = recording(getattr(importlib.import_module(module), name))
            cls.model_attribute = attribute
            gen = cls({"base_model": str(model), "resolution": 32, "max_train_steps": 2, "learning_rate": 3e-2,
                       "num_inference_steps": 2, "validation_images": 0, "checkpoint_every": 0, "rank": RANK,
                       "alpha": ALPHA, **extra})
            gen.fit(concepts, tmp_path_factory.mktemp(f"work-{kind}"))
            cache[kind] = gen, model
        return cache[kind]

    yield get
    for gen, _ in cache.values():
        gen.close()


def _close(a, b) -> bool:
    return torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_a_loader_ignoring_the_metadata_applies_peft_s_delta(kind, fitted, concepts):
    gen, _ = fitted(kind)
    component = CASES[kind][3]
    path = gen.concept_dir(concepts[0]) / LORA_FILE
    saved = saved_lora_weights(path)[component]
    assert set(saved) == set(gen.deltas) and len(saved) > 0
    assert max(float(d.abs().max()) for d in gen.deltas.values()) > 0  # trained: the deltas are not zero
    for module, weights in saved.items():
        unscaled = product(weights["A"], weights["B"])  # ComfyUI / kohya-ss: no .alpha tensor, scale 1
        assert _close(unscaled, gen.deltas[module]), module
    with safe_open(str(path), "pt") as fh:
        assert not any(k.endswith(".alpha") for k in fh.keys())


@pytest.mark.parametrize("kind", sorted(CASES))
def test_diffusers_load_lora_weights_applies_the_same_delta(kind, fitted, concepts):
    import diffusers

    gen, model = fitted(kind)
    _, pipeline_class, _, component, _ = CASES[kind]
    pipe = getattr(diffusers, pipeline_class).from_pretrained(str(model))
    pipe.load_lora_weights(str(gen.concept_dir(concepts[0])), weight_name=LORA_FILE, adapter_name="stock")
    layers = injected_lora_modules(getattr(pipe, component), adapter_name="stock")
    assert set(layers) == set(gen.deltas)
    for module, layer in layers.items():
        assert layer.scaling["stock"] == 1.0, module  # the metadata says lora_alpha = r
        delta = product(layer.lora_A["stock"].weight, layer.lora_B["stock"].weight) * layer.scaling["stock"]
        assert _close(delta, gen.deltas[module]), module


def test_sd15_images_equal_those_of_the_unbaked_file(fitted, concepts, tmp_path):
    """The baked file gives the images the unbaked file (alpha 4 in the metadata, as written before) gives."""
    from diffusers import StableDiffusionPipeline

    from synthaug.diffusion import lora_config

    gen, model = fitted("sd15")
    unbaked = {f"{m}.lora_A.weight": a for m, (a, _) in gen.states.items()} | \
        {f"{m}.lora_B.weight": b for m, (_, b) in gen.states.items()}
    config = lora_config(rank=RANK, alpha=ALPHA, target_modules=CASES["sd15"][4]["target_modules"])
    StableDiffusionPipeline.save_lora_weights(str(tmp_path), unet_lora_layers=unbaked,
                                              unet_lora_adapter_metadata=config.to_dict(), weight_name="old.safetensors",
                                              safe_serialization=True)
    pipe = StableDiffusionPipeline.from_pretrained(str(model), safety_checker=None, feature_extractor=None,
                                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)

    def image(folder: Path | None, weight_name: str = LORA_FILE):
        pipe.unload_lora_weights()
        if folder is not None:
            pipe.load_lora_weights(str(folder), weight_name=weight_name)
        return pipe("a lesion", num_inference_steps=2, height=32, width=32, output_type="np",
                    generator=torch.Generator().manual_seed(0)).images[0]

    base, old, new = image(None), image(tmp_path, "old.safetensors"), image(gen.concept_dir(concepts[0]))
    assert float(abs(old - base).max()) > 1e-4
    assert float(abs(new - old).max()) < 1e-5

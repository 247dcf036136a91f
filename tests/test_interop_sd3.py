"""lora-sd3 ``export_format=kohya``: the kohya-ss SD3 layout, checked against ComfyUI's and kohya-ss's loading rules
(``tests/interop_rules.py``: ``comfy_sd3_names``, ``kohya_sd3_modules``) and applied the way those tools apply it.

diffusers 0.42 has no converter for kohya SD3 files: ``SD3LoraLoaderMixin.lora_state_dict`` reads
only ``transformer.``/``text_encoder*.`` keys (no ``lora_unet_`` conversion, unlike FLUX's loader),
so the kohya file cannot go through ``StableDiffusion3Pipeline.load_lora_weights``. Instead the
test applies it as ComfyUI and kohya-ss do: ``up @ down * alpha / rank`` added to the original
(fused) weight, whose rows are diffusers' q, k, v (ComfyUI's ``mmdit_to_diffusers``), merges that
into the tiny SD3.5 transformer, and compares the images with diffusers' own
``load_lora_weights`` of the diffusers-layout file from the same fit.
"""

from __future__ import annotations

import re

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from synthaug.diffusion._lora import saved_lora_weights  # noqa: E402
from synthaug.testing import make_concepts, tiny_sd3  # noqa: E402

from .interop_rules import comfy_loaded_keys, comfy_sd3_names, kohya_sd3_modules, sd3_original_linears  # noqa: E402

torch.set_num_threads(1)

RANK, ALPHA = 8, 4.0
#: every module this export converts: both attentions, both streams' projections and MLPs
TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out",
           "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2"]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """(lora-sd3 fitted with export_format=kohya at rank 8, alpha 4; its concept; the tiny model)."""
    from synthaug_lora_sd3 import LoraSD3Generator

    model = tiny_sd3(tmp_path_factory.mktemp("models") / "sd3")
    concepts = make_concepts(tmp_path_factory.mktemp("data"), n_concepts=1, n_images=2, size=32)
    gen = LoraSD3Generator({"base_model": str(model), "resolution": 32, "max_train_steps": 3, "learning_rate": 3e-2,
                            "num_inference_steps": 2, "validation_images": 0, "checkpoint_every": 0,
                            "dtype": "float32", "max_sequence_length": 16, "rank": RANK, "alpha": ALPHA,
                            "target_modules": TARGETS, "export_format": "kohya"})
    gen.fit(concepts, tmp_path_factory.mktemp("work"))
    yield gen, concepts[0], model
    gen.close()


def _report(what: str, recognised: set[str], keys: set[str]) -> None:
    print(f"{what}: {len(recognised)}/{len(keys)} keys recognised")
    assert recognised == keys, sorted(keys - recognised)[:5]


def test_sd3_kohya_file_is_fully_recognised_by_comfyui_and_kohya(fitted, capsys):
    from synthaug_lora_sd3 import LORA_FILE, kohya_file_name

    gen, concept, _ = fitted
    folder = gen.concept_dir(concept)
    path = folder / kohya_file_name(concept)
    assert gen.artifact(concept)["adapter_files"] == [LORA_FILE, path.name]
    state = load_file(str(path))
    keys = set(state)
    assert all(re.fullmatch(r"lora_unet_joint_blocks_\d+_(x|context)_block_(attn2?_(qkv|proj)|mlp_fc[12])"
                            r"\.(lora_down\.weight|lora_up\.weight|alpha)", k) for k in keys)
    transformer = gen.pipeline.transformer
    kohya = kohya_sd3_modules(transformer)
    modules = {k.split(".")[0] for k in keys}
    # every original linear the targets touch: 2 blocks, x/context attention, attn2 in block 0, MLPs but in the last
    assert modules == {m for m in kohya if "adaLN" not in m}, sorted(set(kohya) - modules)
    recognised = set()
    for name in modules:  # kohya-ss: the module exists and the shapes fit (dim = lora_down rows, any alpha)
        down, up = state[f"{name}.lora_down.weight"], state[f"{name}.lora_up.weight"]
        out_features, in_features = kohya[name]
        if down.shape == (up.shape[1], in_features) and up.shape[0] == out_features and \
                state[f"{name}.alpha"].numel() == 1:
            recognised |= {f"{name}.lora_down.weight", f"{name}.lora_up.weight", f"{name}.alpha"}
    _report("sd3 kohya in kohya-ss", recognised, keys)
    _report("sd3 kohya in ComfyUI", comfy_loaded_keys(keys, comfy_sd3_names(transformer)), keys)
    with safe_open(str(path), "pt") as fh:
        metadata = fh.metadata()
    assert metadata["ss_network_module"] == "networks.lora_sd3" and metadata["ss_network_dim"] == str(RANK)
    assert metadata["ss_network_alpha"] == str(ALPHA)

    # the diffusers-layout file: ComfyUI maps its keys except SD3.5's second attention (attn2), which its
    # mmdit_to_diffusers does not name, so for SD3.5 Medium the kohya file is the one for ComfyUI
    diffusers_keys = set(load_file(str(folder / LORA_FILE)))
    comfy = comfy_loaded_keys(diffusers_keys, comfy_sd3_names(transformer))
    assert diffusers_keys - comfy == {k for k in diffusers_keys if ".attn2." in k} != set()


def _merged_transformer(model, state: dict) -> object:
    """A fresh tiny SD3 transformer with the kohya file merged as ComfyUI/kohya-ss merge it: the delta
    ``up @ down * alpha / rank`` on the original (fused) weight, whose rows are the diffusers modules."""
    from diffusers import SD3Transformer2DModel

    transformer = SD3Transformer2DModel.from_pretrained(str(model / "transformer"))
    modules = dict(transformer.named_modules())
    originals = sd3_original_linears(transformer)
    with torch.no_grad():
        for key in state:
            if not key.endswith(".lora_down.weight"):
                continue
            name = key.removesuffix(".lora_down.weight")
            down, up = state[key], state[f"{name}.lora_up.weight"]
            delta = up @ down * float(state[f"{name}.alpha"]) / down.shape[0]
            original = name.removeprefix("lora_unet_")
            (shape, parts), = [v for k, v in originals.items() if k.replace(".", "_") == original]
            assert tuple(delta.shape) == shape
            for module, rows in parts.items():
                modules[module].weight += delta[rows]
    return transformer


def test_sd3_kohya_file_applied_as_comfyui_does_gives_the_diffusers_file_s_images(fitted):
    from diffusers import StableDiffusion3Pipeline

    from synthaug_lora_sd3 import LORA_FILE, kohya_file_name

    gen, concept, model = fitted
    folder = gen.concept_dir(concept)
    kohya_state = load_file(str(folder / kohya_file_name(concept)))
    # module by module: the kohya delta rows equal the diffusers file's B @ A (alpha baked in, scale 1)
    merged = _merged_transformer(model, kohya_state)
    base = StableDiffusion3Pipeline.from_pretrained(str(model))
    base_modules = dict(base.transformer.named_modules())
    merged_modules = dict(merged.named_modules())
    saved = saved_lora_weights(folder / LORA_FILE)["transformer"]
    for module, weights in saved.items():
        added = merged_modules[module].weight - base_modules[module].weight
        assert torch.allclose(added, weights["B"] @ weights["A"], atol=1e-6), module

    def image(pipe):
        pipe.set_progress_bar_config(disable=True)
        return pipe(gen.prompt_for(concept), num_inference_steps=3, height=32, width=32, max_sequence_length=16,
                    generator=torch.Generator().manual_seed(5), output_type="np").images[0]

    plain = image(base)
    base.load_lora_weights(str(folder), weight_name=LORA_FILE)
    with_diffusers_file = image(base)
    with_kohya_file = image(StableDiffusion3Pipeline.from_pretrained(str(model), transformer=merged))
    assert abs(with_diffusers_file - plain).mean() > 1e-3  # the LoRA does something
    assert abs(with_kohya_file - with_diffusers_file).max() < 1e-4  # and the kohya file does the same


def test_sd3_kohya_export_refuses_modules_it_cannot_name_before_training(tmp_path):
    from synthaug import InvalidOptionsError
    from synthaug_lora_sd3 import LoraSD3Generator

    model = tiny_sd3(tmp_path / "sd3")
    concepts = make_concepts(tmp_path / "data", n_concepts=1, n_images=2, size=32)
    gen = LoraSD3Generator({"base_model": str(model), "resolution": 32, "max_train_steps": 1, "dtype": "float32",
                            "max_sequence_length": 16, "validation_images": 0, "checkpoint_every": 0,
                            "export_format": "kohya", "target_modules": ["to_q", "norm1.linear"]})
    try:
        with pytest.raises(InvalidOptionsError, match="export_format=kohya.*norm1.linear"):
            gen.fit(concepts, tmp_path / "work")
    finally:
        gen.close()
    assert not list((tmp_path / "work").glob("**/*.safetensors"))

"""LoRA files have one key layout, and every saved module is active after loading (issue 11, defect 5).

diffusers' ``load_lora_weights`` picks the key layout of a whole file from its first key; a file
mixing ``…lora.down.weight`` and ``…lora_A.weight`` keys loads only part of the LoRA, with a
warning that generation's quiet logging hides. These tests fit the LoRA plugins on the tiny
models with the default targets and with every documented target set, then load each saved
adapter the way generation does (``generator.generate``) and with stock ``load_lora_weights``,
and count the active modules.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from safetensors.torch import load_file, save_file  # noqa: E402

from synthaug._errors import GenerationError  # noqa: E402
from synthaug.diffusion._lora import TARGET_MODULE_SETS, check_lora_loaded, injected_lora_modules  # noqa: E402
from synthaug.testing import make_concepts  # noqa: E402

torch.set_num_threads(1)

_PEFT_KEY = re.compile(r"^unet\.(.+)\.lora_[AB]\.weight$")


@pytest.fixture(scope="module")
def concepts(tmp_path_factory):
    return make_concepts(tmp_path_factory.mktemp("data"), n_concepts=1, n_images=2, size=32)


@pytest.fixture(scope="module")
def tiny_sdxl_model(tmp_path_factory) -> Path:
    from synthaug.testing import tiny_sdxl

    return tiny_sdxl(tmp_path_factory.mktemp("models") / "sdxl")


def quick_options(model: Path, **extra) -> dict:
    """Options of a 2-step fit and 2-step sampling at 32 px on a tiny model."""
    return {"base_model": str(model), "resolution": 32, "max_train_steps": 2, "learning_rate": 3e-2,
            "num_inference_steps": 2, "validation_images": 0, "checkpoint_every": 0, **extra}


def _generator(kind: str, model: Path, targets: tuple[str, ...]):
    """A lora-sd15 or lora-sdxl generator on the tiny model, 2 training steps."""
    options = quick_options(model, target_modules=list(targets))
    if kind == "sd15":
        from synthaug_lora_sd15 import LoraSD15Generator

        return LoraSD15Generator(options)
    from synthaug_lora_sdxl import LoraSDXLGenerator

    return LoraSDXLGenerator(options)


def _matching_modules(unet, targets: tuple[str, ...]) -> set[str]:
    """UNet modules peft puts a LoRA on for ``targets`` (a name equal to, or ending in ``.<target>``)."""
    return {name for name, _ in unet.named_modules() if any(name == t or name.endswith("." + t) for t in targets)}


def _saved_modules(path: Path) -> tuple[set[str], set[str]]:
    """UNet module names in a LoRA file, and the layouts (key endings) it uses."""
    keys = list(load_file(str(path)))
    layout = re.compile(r"^.*\.(lora_[AB]|lora\.(down|up)|lora_linear_layer\.(down|up))\.weight$")
    layouts = {layout.sub(r"\1", k) for k in keys}
    return {m[1] for k in keys if (m := _PEFT_KEY.match(k))}, layouts


@pytest.fixture(scope="module")
def models(tiny_sd15_model, tiny_sdxl_model) -> dict[str, Path]:
    return {"sd15": tiny_sd15_model, "sdxl": tiny_sdxl_model}


@pytest.fixture(scope="module")
def fitted(models, concepts, tmp_path_factory):
    """``fitted(kind, target_set)``: a generator fitted on the concept, one per combination, kept for the module."""
    cache: dict[tuple[str, str], object] = {}

    def get(kind: str, target_set: str):
        if (kind, target_set) not in cache:
            gen = _generator(kind, models[kind], TARGET_MODULE_SETS[target_set])
            gen.fit(concepts, tmp_path_factory.mktemp(f"{kind}-{target_set}"))
            cache[kind, target_set] = gen
        return cache[kind, target_set]

    yield get
    for gen in cache.values():
        gen.close()


@pytest.mark.parametrize("target_set", sorted(TARGET_MODULE_SETS))
@pytest.mark.parametrize("kind", ["sd15", "sdxl"])
def test_every_saved_module_is_active_when_generating(kind, target_set, fitted, concepts):
    from synthaug_lora_sd15 import LORA_FILE

    targets = TARGET_MODULE_SETS[target_set]
    gen = fitted(kind, target_set)
    path = gen.concept_dir(concepts[0]) / LORA_FILE
    saved, layouts = _saved_modules(path)
    expected = _matching_modules(gen.pipeline.unet, targets)
    assert saved == expected and layouts == {"lora_A", "lora_B"}, (len(saved), len(expected), layouts)
    images = list(gen.generate(concepts[0], [0]))  # loads the file as generation does, then checks it
    injected = injected_lora_modules(gen.pipeline.unet, adapter_name="synthaug")
    assert len(images) == 1 and set(injected) == expected, f"{len(injected)} of {len(expected)} active"


@pytest.mark.parametrize("target_set", sorted(TARGET_MODULE_SETS))
def test_stock_load_lora_weights_activates_every_module_and_changes_the_output(target_set, fitted, concepts,
                                                                               tiny_sd15_model):
    from diffusers import StableDiffusionPipeline

    from synthaug_lora_sd15 import LORA_FILE

    folder = fitted("sd15", target_set).concept_dir(concepts[0])
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd15_model, safety_checker=None, feature_extractor=None,
                                                   requires_safety_checker=False)

    def image():
        return pipe("a lesion", num_inference_steps=2, height=32, width=32, output_type="np",
                    generator=torch.Generator().manual_seed(0)).images[0]

    before = image()
    pipe.load_lora_weights(str(folder), weight_name=LORA_FILE, adapter_name="stock")
    saved, _ = _saved_modules(folder / LORA_FILE)
    assert set(injected_lora_modules(pipe.unet, adapter_name="stock")) == saved
    assert check_lora_loaded(pipe, folder / LORA_FILE, adapter_name="stock") == len(saved)
    assert float(abs(image() - before).max()) > 1e-4


def test_the_check_accepts_a_lora_loaded_in_bfloat16(fitted, concepts, tiny_sd15_model):
    """On GPUs the base weights (and so the loaded LoRA) are float16/bfloat16: rounding is not a failure."""
    from diffusers import StableDiffusionPipeline

    from synthaug_lora_sd15 import LORA_FILE

    folder = fitted("sd15", "attention").concept_dir(concepts[0])
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd15_model, dtype=torch.bfloat16, safety_checker=None,
                                                   feature_extractor=None, requires_safety_checker=False)
    pipe.load_lora_weights(str(folder), weight_name=LORA_FILE, adapter_name="bf16")
    layer = next(iter(injected_lora_modules(pipe.unet, adapter_name="bf16").values()))
    assert layer.lora_B["bf16"].weight.dtype == torch.bfloat16
    assert check_lora_loaded(pipe, folder / LORA_FILE, adapter_name="bf16") == 32


def _mixed_layout_file(source: Path, target: Path) -> Path:
    """``source`` rewritten the way the first version wrote it: attention keys ``lora.down/up``, others ``lora_A/B``."""
    mixed = {}
    for key, tensor in load_file(str(source)).items():
        if re.search(r"\.(to_q|to_k|to_v|to_out\.0)\.lora_[AB]\.weight$", key):
            key = key.replace(".lora_A.", ".lora.down.").replace(".lora_B.", ".lora.up.")
        mixed[key] = tensor
    save_file(dict(sorted(mixed.items(), key=lambda kv: "lora.down" not in kv[0])), str(target))
    return target


@pytest.mark.filterwarnings("ignore:While injecting the PEFT adapters:RuntimeWarning")
def test_a_partially_loaded_lora_fails_loudly_naming_file_and_modules(tiny_sd15_model, concepts, tmp_path):
    from synthaug_lora_sd15 import LORA_FILE

    gen = _generator("sd15", tiny_sd15_model, TARGET_MODULE_SETS["attention+proj"])
    try:
        gen.fit(concepts, tmp_path)
        path = gen.concept_dir(concepts[0]) / LORA_FILE
        _mixed_layout_file(path, path)  # the defect, reproduced in place
        with pytest.raises(GenerationError) as info:
            list(gen.generate(concepts[0], [0]))  # inside generation's quiet logging
        saved = _saved_modules(path)[0] | {m for m in _mixed_modules(path)}
        active = set(injected_lora_modules(gen.pipeline.unet, adapter_name="synthaug"))
    finally:
        gen.close()
    message = str(info.value)
    missing = sorted(saved - active)
    assert 0 < len(active) < len(saved) == 40, (len(active), len(saved))  # the tiny SD1.5: 8 of 40 before the fix
    assert str(path) in message and f"{len(missing)} of {len(saved)} saved modules" in message, message
    assert f"unet.{missing[0]} (not loaded)" in message, message


def _mixed_modules(path: Path) -> set[str]:
    """UNet modules of the ``lora.down``/``lora.up`` keys of a file."""
    return {m[1] for k in load_file(str(path)) if (m := re.match(r"^unet\.(.+)\.lora\.(down|up)\.weight$", k))}


def _sdxl_unet_config() -> dict:
    """The full-size SDXL base UNet config written in benchmarks/sdxl_memory.py."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "sdxl_memory.py"
    spec = importlib.util.spec_from_file_location("sdxl_memory", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SDXL_UNET


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:While injecting the PEFT adapters:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter:UserWarning")
def test_real_sdxl_architecture_loads_every_module_of_the_written_layout(tmp_path):
    """The full-size SDXL UNet on the ``meta`` device (no weights), LoRA on every documented target:
    the file as the plugins write it loads all 722 modules through diffusers' loader; the first
    version's mixed layout loads a fraction, and the check refuses it."""
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    from synthaug.diffusion._lora import lora_config

    config = _sdxl_unet_config()
    with torch.device("meta"):
        unet = UNet2DConditionModel(**config)
    unet.add_adapter(lora_config(rank=4, alpha=4, target_modules=TARGET_MODULE_SETS["transformer"]), adapter_name="x")
    generator = torch.Generator().manual_seed(0)
    shapes = {k: v.shape for k, v in get_peft_model_state_dict(unet, adapter_name="x").items()}
    state = {k: torch.randn(shape, generator=generator) for k, shape in shapes.items()}
    expected = _matching_modules(unet, TARGET_MODULE_SETS["transformer"])
    assert len(expected) == len(state) // 2 == 722

    class Pipe:  # check_lora_loaded reads pipe.unet only
        pass

    counts = {}
    for name, layers in [("ours", state), ("mixed", convert_state_dict_to_diffusers(state))]:
        StableDiffusionXLPipeline.save_lora_weights(str(tmp_path / name), unet_lora_layers=layers,
                                                    weight_name=f"{name}.safetensors", safe_serialization=True)
        path = tmp_path / name / f"{name}.safetensors"
        with torch.device("meta"):
            pipe = Pipe()
            pipe.unet = UNet2DConditionModel(**config)
        pipe.unet.load_lora_adapter(load_file(str(path)), prefix="unet", adapter_name="y")
        counts[name] = len(injected_lora_modules(pipe.unet, adapter_name="y"))
        if name == "ours":
            assert check_lora_loaded(pipe, path, adapter_name="y") == 722
        else:
            with pytest.raises(GenerationError, match=rf"{722 - counts[name]} of 722 saved modules"):
                check_lora_loaded(pipe, path, adapter_name="y")
    print(f"real SDXL UNet, {len(expected)} LoRA modules: active after loading: ours {counts['ours']}, "
          f"first version's mixed layout {counts['mixed']}")
    assert counts["ours"] == 722 and counts["mixed"] < 722

"""lora-sdxl options: defaults, the t4 preset (documented, overridable), clear errors. No torch needed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from synthaug import InvalidOptionsError
from synthaug_lora_sdxl import PRESETS, LoraSDXLGenerator, LoraSDXLOptions

DOCS = Path(__file__).resolve().parents[3] / "docs" / "sdxl.md"

#: What docs/sdxl.md promises the t4 preset selects.
T4 = {"resolution": 1024, "dtype": "float16", "mixed_precision": "fp16", "optimizer": "adamw8bit",
      "train_batch_size": 1, "gradient_accumulation_steps": 4, "gradient_checkpointing": True,
      "cache_latents": True, "cache_text_embeddings": True, "validation_images": 2}


def test_defaults_are_sdxl_at_1024_with_automatic_optimizer() -> None:
    o = LoraSDXLOptions()
    assert o.base_model == "stabilityai/stable-diffusion-xl-base-1.0" and o.resolution == 1024
    assert o.optimizer == "auto" and o.preset is None and o.vae is None and o.export_format == "diffusers"
    assert o.cache_text_embeddings and o.cache_latents and o.crop == "center"


def test_t4_preset_resolves_to_the_documented_settings() -> None:
    o = LoraSDXLOptions(preset="t4")
    assert {k: getattr(o, k) for k in T4} == T4
    assert PRESETS["t4"] == T4
    untouched = LoraSDXLOptions()
    assert (o.rank, o.learning_rate, o.max_train_steps) == (untouched.rank, untouched.learning_rate,
                                                          untouched.max_train_steps)


def test_t4_preset_is_in_the_docs_table() -> None:
    text = DOCS.read_text()
    for key, value in T4.items():
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        assert re.search(rf"\|\s*`{key}`\s*\|\s*`?{re.escape(shown)}`?\s*\|", text), f"{key}={shown} not in {DOCS}"


def test_explicit_options_override_the_preset() -> None:
    o = LoraSDXLOptions(preset="t4", gradient_accumulation_steps=2, optimizer="adamw", resolution=768)
    assert (o.gradient_accumulation_steps, o.optimizer, o.resolution) == (2, "adamw", 768)
    assert o.mixed_precision == "fp16" and o.gradient_checkpointing  # the rest still comes from the preset
    # an explicit value equal to the default is still the user's choice
    assert LoraSDXLOptions(preset="t4", gradient_checkpointing=False).gradient_checkpointing is False


def test_preset_through_the_generator_and_its_description() -> None:
    gen = LoraSDXLGenerator({"preset": "t4"}, train_batch_size=2)
    assert gen.options.train_batch_size == 2 and gen.options.optimizer == "adamw8bit"
    again = LoraSDXLGenerator(gen.options, seed=1)  # re-validating keeps both the preset and the override
    assert again.options.train_batch_size == 2 and again.options.dtype == "float16" and again.options.seed == 1
    described = gen.describe()["options"]
    assert described["preset"] == "t4" and described["gradient_checkpointing"] is True
    assert gen.fit_options()["gradient_accumulation_steps"] == 4


def test_preset_values_are_valid_options() -> None:
    for name, values in PRESETS.items():
        explicit = LoraSDXLOptions(**values)
        assert explicit.model_dump(exclude={"preset"}) == LoraSDXLOptions(preset=name).model_dump(exclude={"preset"})


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(InvalidOptionsError, match="preset"):
        LoraSDXLGenerator(preset="a100")
    with pytest.raises(InvalidOptionsError, match="export_format"):
        LoraSDXLGenerator(export_format="ckpt")
    with pytest.raises(InvalidOptionsError, match="safety_checker"):
        LoraSDXLGenerator(safety_checker=True)
    with pytest.raises(InvalidOptionsError, match="resolution"):
        LoraSDXLGenerator(resolution=1020)
    with pytest.raises(InvalidOptionsError, match="crop"):
        LoraSDXLGenerator(crop="pad")


def test_importing_the_plugin_does_not_import_torch() -> None:
    code = ("import sys, synthaug_lora_sdxl, synthaug.diffusion; synthaug.diffusion.save_kohya_lora; synthaug.diffusion.add_lora\n"
            "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'peft') if m in sys.modules]\n"
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_registered_through_the_entry_point() -> None:
    from synthaug import list_generators

    assert list_generators().get("lora-sdxl") is LoraSDXLGenerator

"""lora-sd15 on the tiny SD1.5 model: contract, learning, resume, reproducibility, interop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from synthaug import NullProgress  # noqa: E402
from synthaug.diffusion import ARTIFACT_FILE  # noqa: E402
from synthaug.testing import check_generator, make_concepts  # noqa: E402
from synthaug_lora_sd15 import LORA_FILE, LoraSD15Generator  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def concepts(tmp_path_factory):
    return make_concepts(tmp_path_factory.mktemp("data"), n_concepts=2, n_images=3, size=32)


def quick(model: Path, **extra) -> dict:
    """Options for a fast run on the tiny model."""
    return {"base_model": str(model), "resolution": 32, "max_train_steps": 4, "learning_rate": 1e-2,
            "num_inference_steps": 3, "validation_images": 0, "checkpoint_every": 0, **extra}


@pytest.fixture(scope="module")
def fitted(tiny_sd15_model, concepts, tmp_path_factory):
    """A lora-sd15 generator fitted for 30 steps on both concepts."""
    gen = LoraSD15Generator(quick(tiny_sd15_model, max_train_steps=30, checkpoint_every=15, validation_images=2))
    work = tmp_path_factory.mktemp("work")
    gen.fit(concepts, work)
    yield gen
    gen.close()


def test_passes_check_generator(tiny_sd15_model):
    check_generator(LoraSD15Generator, quick(tiny_sd15_model))


def test_training_lowers_the_loss_on_a_fixed_batch(fitted, concepts):
    training = fitted.artifact(concepts[0])["training"]
    assert training["steps"] == 30
    assert training["probe_loss_end"] < 0.85 * training["probe_loss_start"], training


def test_artifact_records_generator_versions_options_concept(fitted, concepts):
    info = json.loads((fitted.concept_dir(concepts[0]) / ARTIFACT_FILE).read_text())
    assert info["generator"] == "lora-sd15" and info["generator_version"] == "1"
    assert {"torch", "diffusers", "peft", "transformers"} <= set(info["versions"])
    assert info["options"]["rank"] == 8 and info["options"]["max_train_steps"] == 30
    assert info["concept"]["name"] == concepts[0].name and info["concept"]["n_images"] == 3
    assert info["prompt"] == f"a dermoscopic image of {concepts[0].text}"
    # validation grids were written at the checkpoint and at the end; checkpoints are cleaned up
    grids = sorted(p.name for p in (fitted.concept_dir(concepts[0]) / "validation").iterdir())
    assert grids == ["step-000015.png", "step-000030.png"]
    assert not (fitted.concept_dir(concepts[0]) / "checkpoints").exists()


def test_manifest_record_names_base_model_adapter_hash_prompt(fitted, concepts, tiny_sd15_model):
    from synthaug.diffusion import adapter_digest

    record = fitted.record(concepts[1])
    assert record["base_model"] == str(tiny_sd15_model)
    assert record["adapter_sha256"] == adapter_digest(fitted.concept_dir(concepts[1]) / LORA_FILE)
    assert record["prompt"] == "a dermoscopic image of class1"


def test_base_model_loaded_once_across_concepts(fitted, concepts):
    pipe = fitted.pipeline
    for concept in concepts:
        list(fitted.generate(concept, [1]))
    assert fitted.pipeline is pipe


def pixels(item):
    import numpy as np

    return np.asarray(item.image, dtype=np.int16)


def test_same_seeds_same_images_batch_1_and_batch_4(fitted, concepts):
    import numpy as np

    seeds = [5, 6, 7, 8]
    alone = [pixels(x) for x in fitted.generate(concepts[0], seeds)]
    batched_gen = LoraSD15Generator(fitted.options, generation_batch_size=4)
    batched_gen.work_dir = fitted.work_dir
    batched = [pixels(x) for x in batched_gen.generate(concepts[0], seeds)]
    again = [pixels(x) for x in fitted.generate(concepts[0], seeds[::-1])][::-1]
    assert all((a == b).all() for a, b in zip(alone, again))  # batch 1: bit for bit
    for a, b in zip(alone, batched):  # batch 4: equal up to float rounding of batched kernels
        assert np.abs(a - b).max() <= 1 and (a == b).mean() > 0.99
    assert not (alone[0] == alone[1]).all()


class _StopAt(NullProgress):
    """A progress that interrupts training (like Ctrl-C) when step ``stop`` is reported."""

    def __init__(self, stop: int) -> None:
        self.stop, self.done = stop, 0

    def task(self, description, total=None, *, completed=0):
        self.done = completed
        outer = self

        class Task:
            def advance(self, n=1, *, metrics=None):
                outer.done += n
                if outer.done >= outer.stop:
                    raise KeyboardInterrupt

            def close(self):
                pass

        return Task()


def test_resume_continues_the_step_count_and_matches_an_uninterrupted_run(tiny_sd15_model, concepts, tmp_path):
    options = quick(tiny_sd15_model, max_train_steps=6, checkpoint_every=2, lr_scheduler="cosine", lr_warmup_steps=2,
                    gradient_accumulation_steps=2, snr_gamma=5.0, noise_offset=0.05)
    one = concepts[:1]
    straight = LoraSD15Generator(options)
    straight.fit(one, tmp_path / "straight")

    interrupted = LoraSD15Generator(options)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(one, tmp_path / "resumed", progress=_StopAt(5))
    assert (tmp_path / "resumed" / one[0].slug / "checkpoints" / "step-000004").is_dir()
    resumed = LoraSD15Generator(options)
    resumed.fit(one, tmp_path / "resumed")
    training = resumed.artifact(one[0])["training"]
    assert training["resumed_from_step"] == 4 and training["steps"] == 6
    assert resumed.artifact(one[0])["adapter_sha256"] == straight.artifact(one[0])["adapter_sha256"]


def test_lora_loads_in_stock_diffusers_and_changes_its_output(fitted, concepts, tiny_sd15_model):
    from diffusers import StableDiffusionPipeline
    from safetensors import safe_open

    lora = fitted.concept_dir(concepts[0]) / LORA_FILE
    with safe_open(str(lora), "pt") as fh:  # a safetensors file, no pickle involved
        assert any("lora" in k for k in fh.keys())
    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd15_model), safety_checker=None)
    pipe.set_progress_bar_config(disable=True)

    def run():
        return pipe("a dermoscopic image of class0", num_inference_steps=3, height=32, width=32,
                    generator=torch.Generator().manual_seed(3), output_type="np").images[0]

    before = run()
    pipe.load_lora_weights(str(lora.parent))
    after = run()
    assert abs(after - before).mean() > 1e-3
    ours = next(iter(fitted.generate(concepts[0], [3])))
    assert ours.image.size == (32, 32)


def test_8bit_adamw_trains(tiny_sd15_model, concepts, tmp_path):
    pytest.importorskip("bitsandbytes")
    gen = LoraSD15Generator(quick(tiny_sd15_model, max_train_steps=2, optimizer="adamw8bit"))
    gen.fit(concepts[:1], tmp_path)
    assert gen.artifact(concepts[0])["training"]["steps"] == 2
    assert len(list(gen.generate(concepts[0], [1, 2]))) == 2


def _peft_supports_text_encoder_adapters() -> bool:
    from importlib.metadata import version

    from packaging.version import Version

    try:
        from transformers.integrations.peft import MIN_PEFT_VERSION
    except ImportError:
        return True
    return Version(version("peft")) >= Version(MIN_PEFT_VERSION)


def test_text_encoder_lora(tiny_sd15_model, concepts, tmp_path):
    from safetensors import safe_open

    from synthaug import MissingDependencyError

    gen = LoraSD15Generator(quick(tiny_sd15_model, max_train_steps=2, train_text_encoder=True))
    if not _peft_supports_text_encoder_adapters():  # transformers 5 needs peft >= 0.22 for this
        with pytest.raises(MissingDependencyError, match="pip install -U peft"):
            gen.fit(concepts[:1], tmp_path)
        return
    gen.fit(concepts[:1], tmp_path)
    with safe_open(str(gen.concept_dir(concepts[0]) / LORA_FILE), "pt") as fh:
        keys = list(fh.keys())
    assert any(k.startswith("text_encoder.") for k in keys) and any(k.startswith("unet.") for k in keys)
    assert len(list(gen.generate(concepts[0], [1, 2]))) == 2


def test_bad_options_are_clear_errors(tiny_sd15_model, concepts, tmp_path):
    from synthaug import InvalidOptionsError

    with pytest.raises(InvalidOptionsError, match="resolution"):
        LoraSD15Generator(resolution=30)
    with pytest.raises(InvalidOptionsError, match="base_model"):
        LoraSD15Generator(base_model=str(tmp_path / "nope" / "x y")).fit(concepts[:1], tmp_path / "w")

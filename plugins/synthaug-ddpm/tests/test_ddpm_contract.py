"""The ddpm generator against the synthaug generator contract, its plugin registration and errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from synthaug import Concept, DatasetError, GenerationError, InvalidOptionsError, InvalidParameterError
from synthaug_ddpm import DdpmGenerator

QUICK = {
    "resolution": 16,
    "width": 8,
    "channel_multipliers": (1, 2),
    "attention": True,
    "max_train_steps": 4,
    "train_batch_size": 4,
    "num_inference_steps": 3,
    "generation_batch_size": 4,
}


def test_import_does_not_load_torch() -> None:
    code = "import sys, synthaug_ddpm; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_registered_through_the_entry_point() -> None:
    from synthaug import get_generator

    assert get_generator("ddpm") is DdpmGenerator


def test_conformance() -> None:
    pytest.importorskip("diffusers")
    import torch

    torch.set_num_threads(1)
    from synthaug.testing import check_generator

    check_generator(DdpmGenerator, QUICK)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"resolution": 20, "channel_multipliers": (1, 2, 2, 4)}, "resolution=20"),
        ({"channel_multipliers": (1, 0)}, "channel_multipliers"),
        ({"device": "gpu"}, "device='gpu'"),
        ({"guidance_scale": -1}, "guidance_scale"),
        ({"sampler": "euler"}, "sampler"),
        ({"train_step": 10}, "train_step"),
        ({"train_steps": 10}, "train_steps"),  # a pre-release name: now simply unknown
    ],
)
def test_bad_options_name_the_option(options: dict, named: str) -> None:
    with pytest.raises(InvalidOptionsError, match=named.replace("(", r"\(").replace(")", r"\)")):
        DdpmGenerator(options)


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("diffusers")
    from synthaug.testing import make_concepts

    generator = DdpmGenerator(QUICK)
    with pytest.raises(GenerationError, match="call fit"):
        list(generator.generate(Concept("a", "a"), [1]))
    with pytest.raises(DatasetError, match="'empty'"):
        generator.fit([Concept("empty", "empty")], tmp_path / "w0")
    concepts = make_concepts(tmp_path / "data", n_concepts=2, n_images=2, size=16)
    generator.fit(concepts, tmp_path / "w1")
    with pytest.raises(InvalidParameterError, match="other.*class0, class1"):
        list(generator.generate(Concept("other", "other"), [1]))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(GenerationError, match="broken.png"):
        DdpmGenerator(QUICK).fit([Concept("bad", "bad", (broken,))], tmp_path / "w2")


def test_cuda_requested_without_gpu_is_a_clear_error(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    from synthaug.testing import make_concepts

    concepts = make_concepts(tmp_path / "data", n_concepts=1, n_images=2, size=16)
    with pytest.raises(InvalidOptionsError, match="device='cuda'"):
        DdpmGenerator(QUICK, device="cuda").fit(concepts, tmp_path / "w")


@pytest.mark.gpu
def test_trains_and_generates_on_cuda(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from synthaug.testing import check_generator

    check_generator(DdpmGenerator, {**QUICK, "device": "cuda"})


def test_augmenter_fits_one_model_on_every_class(tmp_path: Path) -> None:
    """upsample() hands ddpm every class (majority included); another run reuses the model."""
    pytest.importorskip("diffusers")
    import json

    import synthaug
    from synthaug.testing import make_image_folder

    data = make_image_folder(tmp_path / "data", {"a": 6, "b": 3, "c": 2}, size=16)
    work = tmp_path / "fits"
    synthaug.upsample(data, tmp_path / "out1", generator="ddpm", generator_options=QUICK, work_dir=work)
    artifact = json.loads((work / "artifact.json").read_text())
    assert [(row["name"], row["n_images"]) for row in artifact["concepts"]] == [("a", 6), ("b", 3), ("c", 2)]
    out = tmp_path / "out1"
    assert len(list((out / "b").glob("*.png"))) == 3 and len(list((out / "c").glob("*.png"))) == 4
    assert list((out / "a").iterdir()) == []  # the majority class gets an empty folder, no image
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert {r["model_sha256"] for r in records} == {artifact["model_sha256"]}
    stamp = (work / "artifact.json").stat().st_mtime_ns
    synthaug.upsample(data, tmp_path / "out2", generator="ddpm", generator_options=QUICK, work_dir=work,
                      strategy="minority")
    assert (work / "artifact.json").stat().st_mtime_ns == stamp
    assert len(list((tmp_path / "out2" / "c").glob("*.png"))) == 4


def test_generation_only_settings_never_force_a_refit() -> None:
    generator = DdpmGenerator({"max_train_steps": 7, "num_inference_steps": 9, "generation_batch_size": 2})
    fit = generator.fit_options()
    assert "max_train_steps" in fit and not {"num_inference_steps", "generation_batch_size", "device", "sampler",
                                             "guidance_scale", "checkpoint_every"} & set(fit)

"""Training behaviour of the ddpm generator on tiny configurations (16 px, a few seconds each).

A toy dataset of three classes with clearly different colours (``make_image_folder``) shows
that the loss goes down and that the class label steers what is generated.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from synthaug import Concept  # noqa: E402
from synthaug.testing import InterruptAfter, make_image_folder  # noqa: E402
from synthaug_ddpm import DdpmGenerator  # noqa: E402

torch.set_num_threads(1)

TINY = {
    "resolution": 16,
    "width": 16,
    "channel_multipliers": (1, 2),
    "attention": False,
    "train_batch_size": 16,
    "lr_warmup_steps": 10,
    "learning_rate": 2e-3,
    "ema_decay": 0.99,
    "num_inference_steps": 10,
    "generation_batch_size": 4,
}
CLASSES = ("c0", "c1", "c2")


def _concepts(root: Path) -> list[Concept]:
    return [Concept(label, label, tuple(sorted((root / label).glob("*.png")))) for label in CLASSES]


@pytest.fixture(scope="module")
def toy_concepts(tmp_path_factory: pytest.TempPathFactory) -> list[Concept]:
    root = make_image_folder(tmp_path_factory.mktemp("toy"), {label: 12 for label in CLASSES}, size=16)
    return _concepts(root)


@pytest.fixture(scope="module")
def trained(toy_concepts: list[Concept], tmp_path_factory: pytest.TempPathFactory) -> DdpmGenerator:
    """One model trained for 150 steps on all three classes (the slow part, shared)."""
    generator = DdpmGenerator(TINY, max_train_steps=150, checkpoint_every=1000)
    generator.fit(toy_concepts, tmp_path_factory.mktemp("work"))
    return generator


def _mean_colour(image) -> np.ndarray:  # noqa: ANN001 - PIL image
    return np.asarray(image.convert("RGB"), dtype=float).mean(axis=(0, 1))


def test_loss_goes_down(trained: DdpmGenerator) -> None:
    history = [loss for _, loss in trained._artifact()["training"]["loss_history"]]
    assert len(history) == 15
    assert np.mean(history[-3:]) < 0.75 * np.mean(history[:3]), history


def test_generated_class_is_closest_to_its_own_real_class(trained: DdpmGenerator, toy_concepts: list[Concept]) -> None:
    from PIL import Image

    real = {c.name: np.mean([_mean_colour(Image.open(p)) for p in c.images], axis=0) for c in toy_concepts}
    for concept in toy_concepts:
        fake = np.mean([_mean_colour(item.image) for item in trained.generate(concept, range(8))], axis=0)
        distances = {name: float(np.linalg.norm(fake - colour)) for name, colour in real.items()}
        assert min(distances, key=distances.get) == concept.name, (concept.name, distances)


def test_same_seed_same_image_in_any_batch(trained: DdpmGenerator, toy_concepts: list[Concept]) -> None:
    concept = toy_concepts[1]
    four = [np.asarray(item.image) for item in trained.generate(concept, [5, 6, 7, 8])]
    alone = [np.asarray(next(iter(trained.generate(concept, [seed]))).image) for seed in (5, 6, 7, 8)]
    again = [np.asarray(item.image) for item in trained.generate(concept, [8, 7, 6, 5])][::-1]
    for a, b, c in zip(four, alone, again):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    assert not np.array_equal(four[0], four[1])
    assert four[0].shape == (16, 16, 3)


def test_generation_batch_size_changes_only_rounding(trained: DdpmGenerator, toy_concepts: list[Concept]) -> None:
    """A different generation_batch_size is another computation shape: at most float rounding."""
    stamp = (trained.work_dir / "artifact.json").stat().st_mtime_ns
    one = DdpmGenerator(trained.options, generation_batch_size=1)
    one.fit(toy_concepts, trained.work_dir)
    assert (trained.work_dir / "artifact.json").stat().st_mtime_ns == stamp  # a sampling option: no retraining
    a = np.stack([np.asarray(i.image, dtype=int) for i in trained.generate(toy_concepts[0], [1, 2, 3, 4])])
    b = np.stack([np.asarray(i.image, dtype=int) for i in one.generate(toy_concepts[0], [1, 2, 3, 4])])
    assert np.abs(a - b).max() <= 3 and np.mean(a != b) < 0.02


def test_guidance_scale_changes_images(trained: DdpmGenerator, toy_concepts: list[Concept]) -> None:
    plain = DdpmGenerator(trained.options, guidance_scale=1.0)
    plain.fit(toy_concepts, trained.work_dir)
    a = np.asarray(next(iter(trained.generate(toy_concepts[0], [3]))).image)
    b = np.asarray(next(iter(plain.generate(toy_concepts[0], [3]))).image)
    assert not np.array_equal(a, b)


def test_artifact_and_weights_are_safetensors(trained: DdpmGenerator, toy_concepts: list[Concept]) -> None:
    work = trained.work_dir
    info = json.loads((work / "artifact.json").read_text())
    assert info["generator"] == "ddpm" and info["training"]["steps"] == 150
    assert [row["name"] for row in info["concepts"]] == list(CLASSES)
    assert info["null_class_index"] == 3 and info["versions"]["torch"]
    assert (work / "model" / "diffusion_pytorch_model.safetensors").is_file()
    pickled = [p for p in work.rglob("*") if p.suffix in {".bin", ".pt", ".pth", ".pkl", ".ckpt"}]
    assert not pickled
    assert trained.record(toy_concepts[2]) == {
        "model_sha256": info["model_sha256"], "model_steps": 150, "class_index": 2,
    }


def test_refit_with_other_concepts_trains_a_new_model(trained: DdpmGenerator, toy_concepts: list[Concept],
                                                      tmp_path: Path) -> None:
    import shutil

    work = tmp_path / "work"
    shutil.copytree(trained.work_dir, work)
    stamp = (work / "artifact.json").stat().st_mtime_ns
    same = DdpmGenerator(trained.options)
    same.fit(toy_concepts, work)
    assert (work / "artifact.json").stat().st_mtime_ns == stamp
    fewer = DdpmGenerator(trained.options, max_train_steps=3)
    fewer.fit(toy_concepts[:2], work)
    info = json.loads((work / "artifact.json").read_text())
    assert [row["name"] for row in info["concepts"]] == ["c0", "c1"]
    assert info["training"]["steps"] == 3 and info["training"]["resumed_from_step"] is None


def _unet_weights(work: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(work / "model" / "diffusion_pytorch_model.safetensors"))


def test_resume_continues_the_step_count_and_matches_an_uninterrupted_run(toy_concepts: list[Concept],
                                                                          tmp_path: Path) -> None:
    options = {**TINY, "max_train_steps": 12, "checkpoint_every": 4, "train_batch_size": 4}
    straight = DdpmGenerator(options)
    straight.fit(toy_concepts, tmp_path / "straight")

    work = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        DdpmGenerator(options).fit(toy_concepts, work, progress=InterruptAfter(6))
    assert not (work / "artifact.json").exists()
    assert json.loads((work / "checkpoints" / "step-000004" / "state.json").read_text())["step"] == 4
    resumed = DdpmGenerator(options)
    resumed.fit(toy_concepts, work)
    summary = resumed._artifact()["training"]
    assert summary["resumed_from_step"] == 4 and summary["steps"] == 12
    expected, got = _unet_weights(tmp_path / "straight"), _unet_weights(work)
    assert all(torch.allclose(expected[k], got[k], atol=1e-5) for k in expected)

    longer = DdpmGenerator(options, max_train_steps=16)  # more steps extend the finished model
    longer.fit(toy_concepts, work)
    summary = longer._artifact()["training"]
    assert summary["resumed_from_step"] == 12 and summary["steps"] == 16


def test_time_budget_stops_training_early(toy_concepts: list[Concept], tmp_path: Path) -> None:
    generator = DdpmGenerator(TINY, max_train_steps=10_000, time_budget_s=0.5, train_batch_size=2)
    generator.fit(toy_concepts, tmp_path)
    summary = generator._artifact()["training"]
    assert 0 < summary["steps"] < 10_000 and summary["stopped_by"] == "time_budget_s"
    assert len(list(generator.generate(toy_concepts[0], [1]))) == 1

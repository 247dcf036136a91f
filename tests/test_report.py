"""The quality report on real skin-lesion images: near-copies, defects, FD, filtering and top-up."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from synthaug import DatasetError, InvalidParameterError, Proportion, SyntheticAugmenter
from synthaug._cli import main
from synthaug._dataset import Dataset
from synthaug._quality import ColourTextureFeatures, filter_synthetic, frechet_distance, kernel_distance, quality_report
from synthaug._quality.metrics import Standardizer, mean_pairwise_distance
from synthaug._store import Store

CLASSES = ("vascular_lesion", "dermatofibroma")


def jittered_copy(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A lightly disguised copy: small rotation and crop, colour jitter, pixel noise."""
    w, h = image.size
    image = image.rotate(float(rng.uniform(-2, 2)), resample=Image.Resampling.BILINEAR)
    side = math.sqrt(rng.uniform(0.92, 1.0))
    x0, y0 = rng.uniform(0, w * (1 - side)), rng.uniform(0, h * (1 - side))
    image = image.resize((w, h), Image.Resampling.BICUBIC, box=(x0, y0, x0 + w * side, y0 + h * side))
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.85, 1.15))
    image = ImageEnhance.Color(image).enhance(rng.uniform(0.85, 1.15))
    pixels = np.asarray(image, dtype=float) + rng.normal(0, 3, (h, w, 3))
    return Image.fromarray(pixels.clip(0, 255).astype("uint8"))


@pytest.fixture(scope="module")
def train_csv(skin_lesions: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two 30-image classes as a CSV of absolute paths (the images stay where they are)."""
    by_class = Dataset.from_folder(skin_lesions).paths_by_class()
    path = tmp_path_factory.mktemp("real") / "train.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label"])
        writer.writerows([p, label] for label in CLASSES for p in by_class[label])
    return path


@pytest.fixture(scope="module")
def copies_folder(train_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A plain class folder: exact and jittered copies of training images, two blank images."""
    root = tmp_path_factory.mktemp("fake") / "synthetic"
    rng = np.random.default_rng(7)
    expected: dict[str, str] = {}
    for label in CLASSES:
        (root / label).mkdir(parents=True)
        sources = sorted(s.path for s in Dataset.from_csv(train_csv) if s.label == label)[:12]
        for i, src in enumerate(sources):
            image = Image.open(src).convert("RGB")
            name = f"{label}/copy{i:02d}.png"
            (jittered_copy(image, rng) if i % 3 else image).save(root / name)
            expected[name] = src.name
    Image.new("RGB", (256, 192), (0, 0, 0)).save(root / CLASSES[0] / "black.png")
    Image.new("RGB", (256, 192), (128, 120, 130)).save(root / CLASSES[1] / "grey.png")
    return root, expected


def test_copies_and_blank_images_are_flagged(train_csv: Path, copies_folder, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    root, expected = copies_folder
    out = tmp_path / "report"
    code = main(["report", str(train_csv), str(root), "--out", str(out), "--json", "--features", "auto"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    from synthaug._features import inception_unavailable_reason

    if inception_unavailable_reason():  # the usual case: no torch-fidelity weights on disk
        assert summary["settings"]["feature_space"] == "colour-texture"
        assert inception_unavailable_reason() in summary["settings"]["feature_space_note"]
    report = json.loads((out / "report.json").read_text())
    flagged = {f["file"]: f for f in report["flagged"]}
    for name, source in expected.items():  # every copy is flagged and matched to its own source
        assert "copy" in flagged[name]["flags"], (name, flagged.get(name))
        assert Path(flagged[name]["nearest_training_image"]).name == source
        assert flagged[name]["similarity"] >= 0.5
    assert flagged[f"{CLASSES[0]}/black.png"]["flags"] == ["blank"]
    assert flagged[f"{CLASSES[1]}/grey.png"]["flags"] == ["blank"]
    assert report["overall"]["copies"] == len(expected) and report["overall"]["blank"] == 2
    assert report["classes"][CLASSES[0]]["n_synthetic"] == 13
    for name in ("report.md", "nearest.csv", "nearest-pairs.png", "grid-overview.png", f"grid-{CLASSES[0]}.png"):
        assert (out / name).stat().st_size > 0
    assert "near-copies" in (out / "report.md").read_text()
    with open(out / "nearest.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 26


def test_classic_output_is_mostly_not_flagged_and_filter_top_up_restores_the_plan(
        train_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    policy = Proportion(0.5)  # as many synthetic images as real ones: 30 per class
    planned = {"vascular_lesion": 30, "dermatofibroma": 30}
    SyntheticAugmenter("classic", policy, out_dir=out).fit_resample(train_csv)
    listing = sorted((p.relative_to(out.parent), p.stat().st_mtime_ns) for p in out.parent.rglob("*"))
    report = quality_report(train_csv, out)
    assert sorted((p.relative_to(out.parent), p.stat().st_mtime_ns) for p in out.parent.rglob("*")) == listing
    assert report.overall["n_synthetic"] == 60
    assert report.overall["copies"] <= 0.1 * 60 and report.overall["blank"] == 0
    for c in report.classes.values():  # classic transforms keep the classes' look and spread
        assert c["diversity_ratio"] > 0.7 and math.isfinite(c["fd"])

    # a timid classic generator (no flips or rotations, crops >= 95 %) makes near-copies
    timid = {"hflip": False, "vflip": False, "rotate90": False, "max_rotation": 0.0, "crop_scale": (0.95, 1.0)}
    out2 = tmp_path / "timid"
    augmenter = SyntheticAugmenter("classic", policy, generator_options=timid, out_dir=out2)
    augmenter.fit_resample(train_csv)
    kept_before = {r["file"]: r["sha256"] for r in Store(out2).records()}
    code = main(["filter", str(out2), "--real", str(train_csv), "--on", "copy,blank", "--json"])
    assert code == 0, capsys.readouterr().err
    filtered = json.loads(capsys.readouterr().out)["filtered"]
    n = filtered["rejected"]
    assert n > 0.8 * 60 and filtered["by_reason"]["copy"] == n
    store = Store(out2)
    rejected = store.rejected()
    assert len(rejected) == n and len(store.records()) == 60 - n
    moved = out2.parent / "timid.synthaug" / "rejected"
    assert all((moved / r["file"]).is_file() and not (out2 / r["file"]).exists() for r in rejected)
    assert {p.name for p in out2.iterdir() if not p.name.startswith(".")} <= {"manifest.jsonl", "plan.json", "rejected.jsonl", *planned}

    # the same balance again regenerates exactly the missing images, with new indices and seeds
    again = SyntheticAugmenter("classic", policy, generator_options=timid, out_dir=out2).fit_resample(train_csv)
    records = store.records()
    assert {label: c["synthetic"] for label, c in again.counts().items() if c["synthetic"]} == planned
    assert {label: sum(r["class"] == label for r in records) for label in planned} == planned
    kept = {r["file"]: r["sha256"] for r in records if r["file"] in kept_before}
    assert kept == {f: h for f, h in kept_before.items() if f not in {r["file"] for r in rejected}}
    new = [r for r in records if r["file"] not in kept_before]
    assert len(new) == n
    retired = {(r["concept"], r["index"]) for r in rejected}
    assert not retired & {(r["concept"], r["index"]) for r in new}
    assert not {r["seed"] for r in rejected} & {r["seed"] for r in new}


def test_fd_separates_halves_of_a_class_from_another_class(skin_lesions: Path) -> None:
    by_class = Dataset.from_folder(skin_lesions).paths_by_class()
    space = ColourTextureFeatures()
    nevus = space.extract(by_class["nevus"][:160])
    melanoma = space.extract(by_class["melanoma"][:80])
    keratosis = space.extract(by_class["pigmented_benign_keratosis"][:80])
    scale = Standardizer(np.concatenate([nevus, melanoma, keratosis]))
    nevus, melanoma, keratosis = scale(nevus), scale(melanoma), scale(keratosis)
    halves = frechet_distance(nevus[::2], nevus[1::2])
    assert halves < frechet_distance(nevus[::2], melanoma) and halves < frechet_distance(nevus[::2], keratosis)
    assert kernel_distance(nevus[::2], nevus[1::2])[0] < kernel_distance(nevus[::2], melanoma)[0]
    assert frechet_distance(nevus, nevus) == pytest.approx(0, abs=1e-6)


def test_metric_units() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (400, 4)), rng.normal(0, 1, (400, 4))
    shifted = b + np.array([3.0, 0, 0, 0])
    assert frechet_distance(a, shifted) == pytest.approx(9.0, rel=0.15)
    assert frechet_distance(a, b) < 0.2
    assert abs(kernel_distance(a, b)[0]) < 0.05 < kernel_distance(a, shifted)[0]
    assert mean_pairwise_distance(a) == pytest.approx(mean_pairwise_distance(a * 1.0))
    assert mean_pairwise_distance(a * 0.1) == pytest.approx(0.1 * mean_pairwise_distance(a))
    assert math.isnan(frechet_distance(a[:1], b))


def test_bad_input(train_csv: Path, copies_folder, tmp_path: Path) -> None:
    root, _ = copies_folder
    with pytest.raises(InvalidParameterError, match="copy_threshold"):
        quality_report(train_csv, root, copy_threshold=1.5)
    with pytest.raises(DatasetError, match="no manifest.jsonl"):
        filter_synthetic(root, train_csv)
    with pytest.raises(InvalidParameterError, match="reasons"):
        filter_synthetic(root, train_csv, reasons=["ugly"])
    with pytest.raises(DatasetError, match="does not exist"):
        quality_report(train_csv, tmp_path / "nowhere")


def test_feature_space_choice_never_downloads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.util

    from synthaug import MissingDependencyError
    from synthaug._extractors import resolve_feature_space
    from synthaug._features import inception_unavailable_reason

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache
    monkeypatch.delenv("SYNTHAUG_INCEPTION_WEIGHTS", raising=False)
    reason = inception_unavailable_reason()
    assert reason and ("not installed" in reason or "not in the torch hub cache" in reason)
    space, note = resolve_feature_space("auto")
    assert space.name == "colour-texture" and reason in note
    with pytest.raises(MissingDependencyError, match="pip install torch-fidelity"):
        resolve_feature_space("inception")
    with pytest.raises(InvalidParameterError, match="features"):
        resolve_feature_space("vgg")
    if importlib.util.find_spec("torch_fidelity") is not None:  # pragma: no cover - not in the dev env
        monkeypatch.setenv("SYNTHAUG_INCEPTION_WEIGHTS", str(tmp_path / "missing.pth"))
        assert "weights" in inception_unavailable_reason()

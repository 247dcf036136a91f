"""Issue 21: a run is identified by the content of its training images, not by names or counts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image

from synthaug import SyntheticAugmenter
from synthaug._cli import main
from synthaug._generator import Concept, PerConceptGenerator
from synthaug.testing import make_image_folder


def _digests(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*.png"))}


def test_rerun_with_other_images_and_same_counts_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Item 1: ``balance data1 --out o`` then ``balance data2 --out o`` (same classes and counts,
    other pixels) must not keep data1's images: refused, then ``--overwrite`` replaces them."""
    data1 = make_image_folder(tmp_path / "d1", {"a": 5, "b": 2}, seed=1)
    data2 = make_image_folder(tmp_path / "d2", {"a": 5, "b": 2}, seed=2)
    out = tmp_path / "o"
    assert main(["balance", str(data1), "--out", str(out), "-q", "--workers", "1"]) == 0
    first = _digests(out)
    plan = json.loads((out / "plan.json").read_text())
    assert len(plan["run"]["concepts"]["b"]["training_set"]) == 64
    capsys.readouterr()
    assert main(["balance", str(data2), "--out", str(out), "-q", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "other source images" in err and "--overwrite" in err
    assert _digests(out) == first  # nothing touched
    assert main(["balance", str(data2), "--out", str(out), "-q", "--workers", "1", "--overwrite"]) == 0
    second = _digests(out)
    assert set(second) == set(first) and not set(second.values()) & set(first.values())


def test_resplit_with_another_seed_then_balance_into_same_out_is_refused(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    """Item 1, the leak: synthetic images of s0's training set must not stand for s1's, whose
    val/test hold some of s0's training images."""
    data = make_image_folder(tmp_path / "d", {"a": 12, "b": 6})
    s0, s1, out = tmp_path / "s0", tmp_path / "s1", tmp_path / "o"
    assert main(["split", str(data), "--out", str(s0), "--seed", "0"]) == 0
    assert main(["split", str(data), "--out", str(s1), "--seed", "1"]) == 0
    assert main(["balance", str(s0), "--out", str(out), "-q", "--workers", "1"]) == 0
    capsys.readouterr()
    assert main(["balance", str(s1), "--out", str(out), "-q", "--workers", "1"]) == 2
    assert "other source images" in capsys.readouterr().err


def test_same_images_elsewhere_is_the_same_run(tmp_path: Path) -> None:
    """Relative paths, sizes and hashes are the identity: a moved copy of the data resumes."""
    import shutil

    data = make_image_folder(tmp_path / "d", {"a": 5, "b": 2})
    out = tmp_path / "o"
    assert main(["balance", str(data), "--out", str(out), "-q"]) == 0
    before = (out / "manifest.jsonl").read_bytes()
    shutil.copytree(data, tmp_path / "moved")
    assert main(["balance", str(tmp_path / "moved"), "--out", str(out), "-q"]) == 0
    assert (out / "manifest.jsonl").read_bytes() == before


class _Counting(PerConceptGenerator):
    """A per-concept generator that counts its fits and writes a trivial artifact."""

    name = "counting"
    fits: list[str] = []

    def fit_concept(self, concept: Concept, folder: Path, *, progress=None):  # noqa: ANN001, ANN201
        type(self).fits.append(concept.name)
        return {"n": len(concept.images)}

    def generate(self, concept: Concept, seeds):  # noqa: ANN001, ANN201
        for _ in seeds:
            yield Image.new("RGB", (8, 8))


def test_artifact_fitted_on_other_images_is_not_reused(tmp_path: Path) -> None:
    """Item 1: artifact.json records the training set; other images under the same names refit."""
    data1 = make_image_folder(tmp_path / "d1", {"a": 4, "b": 2}, seed=1)
    data2 = make_image_folder(tmp_path / "d2", {"a": 4, "b": 2}, seed=2)
    work = tmp_path / "fits"
    _Counting.fits = []
    SyntheticAugmenter(_Counting(), out_dir=tmp_path / "o1", work_dir=work).fit_resample(data1)
    artifact = json.loads((work / "b" / "artifact.json").read_text())
    plan = json.loads((tmp_path / "o1" / "plan.json").read_text())
    assert artifact["training_set"] == plan["run"]["concepts"]["b"]["training_set"]
    SyntheticAugmenter(_Counting(), out_dir=tmp_path / "o2", work_dir=work).fit_resample(data1)
    assert _Counting.fits == ["b"]  # same images: reused
    SyntheticAugmenter(_Counting(), out_dir=tmp_path / "o3", work_dir=work).fit_resample(data2)
    assert _Counting.fits == ["b", "b"]  # other images, same names and counts: fitted again


def test_fingerprint_hashes_come_from_the_cache_on_a_rerun(tmp_path: Path) -> None:
    from synthaug._fingerprint import HashCache, files_fingerprint

    data = make_image_folder(tmp_path / "d", {"a": 3})
    paths = sorted((data / "a").glob("*.png"))
    first = HashCache(data)
    rows = files_fingerprint(paths, data, first)
    first.save()
    assert first.hashed == 3 and rows[0][0] == "a/a_000.png"
    assert rows[0][2] == hashlib.sha256(paths[0].read_bytes()).hexdigest()
    again = HashCache(data)
    assert files_fingerprint(paths, data, again) == rows and again.hashed == 0
    paths[0].write_bytes(paths[1].read_bytes())  # changed content: hashed again
    changed = HashCache(data)
    assert files_fingerprint(paths, data, changed)[0][2] == rows[1][2] and changed.hashed == 1


def test_plan_then_new_image_then_fit_resample_sees_it(tmp_path: Path) -> None:
    """Item 7 of the issue (stale read): the notebook workflow plan -> add an image -> fit."""
    data = make_image_folder(tmp_path / "d", {"a": 6, "b": 2})
    aug = SyntheticAugmenter("classic", out_dir=tmp_path / "o", workers=1)
    assert aug.plan(data).classes["b"].real == 2
    Image.new("RGB", (32, 32), (1, 2, 3)).save(data / "b" / "new.png")
    result = aug.fit_resample(data)
    plan = json.loads((tmp_path / "o" / "plan.json").read_text())
    assert plan["classes"]["b"]["real"] == 3 == len(list((data / "b").glob("*.png")))
    assert result.counts()["b"]["synthetic"] == 3 == len(list((tmp_path / "o" / "b").glob("*.png")))


def test_unchanged_old_folders_are_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The re-read costs nothing when nothing changed: folders older than the racy window are trusted."""
    import os
    import time

    from synthaug import _augmenter

    data = make_image_folder(tmp_path / "d", {"a": 4, "b": 2})
    old = time.time() - 60
    for folder in [data, *data.iterdir()]:
        os.utime(folder, (old, old))
    reads = []
    real = _augmenter.read_inputs
    monkeypatch.setattr(_augmenter, "read_inputs", lambda *a, **k: reads.append(1) or real(*a, **k))
    aug = SyntheticAugmenter("classic", out_dir=tmp_path / "o", workers=1)
    aug.plan(data)
    aug.notices(data)
    aug.prepare(data)
    assert len(reads) == 1


@pytest.mark.slow
def test_evaluate_rerun_with_other_splits_never_reuses_a_pool_from_other_training_images(tmp_path: Path) -> None:
    """Item 1 (evaluate): another --splits-file into the same --out must generate its pool from
    its own training images; the old pool held images made from the new test images."""
    pytest.importorskip("torch")
    from synthaug import Dataset
    from synthaug._evaluate import TrainConfig, random_splits, run_evaluation, splits_to_json
    def file_sha256(path: Path) -> str:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()

    data = make_image_folder(tmp_path / "d", {"a": 10, "b": 3})  # b: one training image per split
    dataset = Dataset.from_folder(data)
    out = tmp_path / "eval"
    cfg = TrainConfig(steps=1, eval_every=1, image_size=16, model="small-cnn", batch_size=8, threads=1)
    pools = []
    for seed in (0, 1):
        split = random_splits(dataset, 1, val=0.2, test=0.2, seed=seed)
        file = tmp_path / f"splits-{seed}.json"
        file.write_text(json.dumps(splits_to_json(split, data)))
        run_evaluation(data, out, experiments=["upsample"], splits_file=file, generator="classic", train=cfg,
                       plots=False)
        train = {file_sha256(s.path) for s in split[0]["train"]}
        held = {file_sha256(s.path) for p in ("val", "test") for s in split[0][p]}
        manifests = sorted((out / "work").glob("split-0*/synthetic-classic/manifest.jsonl"), key=lambda p: p.stat().st_mtime)
        records = [json.loads(line) for line in manifests[-1].read_text().splitlines()]
        sources = {file_sha256(data / r["class"] / r["source"]) for r in records}
        assert sources and sources <= train and not sources & held
        pools.append((manifests[-1].parent, train))
    assert pools[0][1] != pools[1][1] and pools[0][0] != pools[1][0]  # work folders keyed by the split's content

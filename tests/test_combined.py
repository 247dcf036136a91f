"""Defect 6 of issue 11: real and synthetic folders must number classes alike.

torchvision does not import on this machine (see STACK-NOTES), so its ``ImageFolder`` rule
(class ``i`` = the ``i``-th sub-folder name in sorted order) is emulated by
:func:`imagefolder_classes`; Keras' ``image_dataset_from_directory`` is used for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synthaug.testing import make_image_folder


def imagefolder_classes(root: Path) -> dict[str, int]:
    """torchvision's ``ImageFolder.find_classes``: sorted sub-folder names -> 0..n-1."""
    names = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    return {name: i for i, name in enumerate(names)}


def synthaug(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synthaug", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture()
def balanced(tmp_path: Path) -> tuple[Path, Path, Path]:
    """``nevus`` (the majority) gets 0 synthetic images: the class the first version left out of OUT."""
    data = make_image_folder(tmp_path / "data", {"melanoma": 3, "nevus": 6, "vascular": 2})
    out, combined = tmp_path / "out", tmp_path / "combined"
    done = synthaug("balance", str(data), "--out", str(out), "--combined", str(combined), "-q")
    assert done.returncode == 0, done.stderr
    return data, out, combined


def test_every_class_has_a_folder_in_out(balanced: tuple[Path, Path, Path]) -> None:
    data, out, _ = balanced
    assert imagefolder_classes(out) == imagefolder_classes(data) == {"melanoma": 0, "nevus": 1, "vascular": 2}
    assert not list((out / "nevus").iterdir())


def test_combined_tree_holds_real_and_synthetic_under_one_numbering(balanced: tuple[Path, Path, Path]) -> None:
    data, out, combined = balanced
    assert imagefolder_classes(combined) == imagefolder_classes(data)
    manifest = {(out / json.loads(line)["file"]).resolve(): json.loads(line)["class"]
                for line in (out / "manifest.jsonl").read_text().splitlines()}
    for label in ("melanoma", "nevus", "vascular"):
        entries = sorted((combined / label).iterdir())
        assert len(entries) == 6  # every class filled up to the majority
        for entry in entries:
            target = entry.resolve()
            if entry.name.startswith("real__"):
                assert target.parent == (data / label).resolve()
            else:
                assert entry.name.startswith("synthetic__") and manifest[target] == label


def test_keras_reads_out_and_combined_with_the_real_numbering(balanced: tuple[Path, Path, Path]) -> None:
    keras = pytest.importorskip("keras")
    data, out, combined = balanced

    def read(root: Path, **kwargs) -> tuple[list[str], list[int]]:
        ds = keras.utils.image_dataset_from_directory(root, image_size=(32, 32), batch_size=64, shuffle=False,
                                                      verbose=False, **kwargs)
        labels = [int(y) for _, batch in ds for y in batch.numpy()]
        return ds.class_names, labels

    real_names, _ = read(data)
    names, labels = read(out, class_names=real_names)  # the first version refused this (no nevus folder)
    assert names == real_names and sorted(set(labels)) == [0, 2]  # melanoma and vascular only
    names, labels = read(combined)
    assert names == real_names and [labels.count(i) for i in range(3)] == [6, 6, 6]


def test_combined_rerun_replaces_its_own_tree_and_refuses_a_foreign_one(balanced, tmp_path: Path) -> None:
    data, out, combined = balanced
    again = synthaug("balance", str(data), "--out", str(out), "--combined", str(combined), "-q")
    assert again.returncode == 0, again.stderr
    assert sum(len(list((combined / c).iterdir())) for c in ("melanoma", "nevus", "vascular")) == 18
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep")
    refused = synthaug("balance", str(data), "--out", str(out), "--combined", str(foreign), "-q")
    assert refused.returncode == 2 and "not empty" in refused.stderr
    assert (foreign / "mine.txt").read_text() == "keep"
    inside = synthaug("balance", str(data), "--out", str(out), "--combined", str(data / "all"), "-q")
    assert inside.returncode == 2 and "inside the data folder" in inside.stderr and not (data / "all").exists()


def test_split_writes_every_class_folder_in_every_split(tmp_path: Path) -> None:
    data = make_image_folder(tmp_path / "data", {"common": 10, "rare": 1})
    done = synthaug("split", str(data), "--out", str(tmp_path / "split"), "--val", "0.2", "--test", "0.2")
    assert done.returncode == 0, done.stderr
    for part in ("train", "val", "test"):
        assert imagefolder_classes(tmp_path / "split" / part) == {"common": 0, "rare": 1}
    assert sum(1 for part in ("val", "test") for _ in (tmp_path / "split" / part / "rare").iterdir()) == 0
    plan = synthaug("plan", str(tmp_path / "split"), "--json")  # a split root still reads fine
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["classes"]["rare"]["real"] == 1

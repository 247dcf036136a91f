"""Stratified, grouped splits written as links or copies; originals untouched."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from synthaug import Dataset, InvalidParameterError, OutputConflictError, split_dataset, write_split
from synthaug._cli import main
from synthaug._splitting import load_split_root, read_groups
from synthaug.testing import make_image_folder


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        h.update(str(path.relative_to(root)).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def test_split_is_stratified_and_deterministic(tiny_folder: Path) -> None:
    ds = Dataset.from_folder(tiny_folder)
    parts = split_dataset(ds, val=0.25, test=0.25, seed=3)
    assert sum(len(p) for p in parts.values()) == len(ds)
    assert parts["test"].counts()["a"] == 3 and parts["val"].counts()["a"] == 3
    assert parts["train"].counts()["a"] == 6
    again = split_dataset(ds, val=0.25, test=0.25, seed=3)
    assert [s.path for s in again["test"]] == [s.path for s in parts["test"]]
    other = split_dataset(ds, val=0.25, test=0.25, seed=4)
    assert [s.path for s in other["test"]] != [s.path for s in parts["test"]]


def test_groups_never_straddle_splits(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "d", {"a": 20, "b": 20})
    paths = sorted(root.rglob("*.png"))
    groups = {p.stem: f"lesion{i // 4}" for i, p in enumerate(paths)}  # 4 photos per lesion
    parts = split_dataset(Dataset.from_folder(root), val=0.2, test=0.2, seed=0, groups=groups)
    where: dict[str, set[str]] = {}
    for name, part in parts.items():
        for s in part:
            where.setdefault(groups[s.path.stem], set()).add(name)
    assert all(len(v) == 1 for v in where.values())
    assert all(len(parts[n]) > 0 for n in ("train", "val", "test"))


def test_bad_fractions() -> None:
    ds = Dataset([])
    with pytest.raises(InvalidParameterError, match="val=1.5"):
        split_dataset(ds, val=1.5)
    with pytest.raises(InvalidParameterError, match="val \\+ test"):
        split_dataset(ds, val=0.5, test=0.5)


def test_cli_split_links_and_leaves_originals(tiny_folder: Path, tmp_path: Path) -> None:
    before = tree_digest(tiny_folder)
    out = tmp_path / "split"
    assert main(["split", str(tiny_folder), "--out", str(out), "--val", "0.2", "--test", "0.2", "--json"]) == 0
    files = [p for p in out.rglob("*.png")]
    assert len(files) == 21 and all(p.is_symlink() for p in files)
    assert tree_digest(tiny_folder) == before
    splits = load_split_root(out)
    assert sum(len(v) for v in splits.values()) == 21
    assert all(s.split == name for name, part in splits.items() for s in part)
    with pytest.raises(OutputConflictError):
        write_split(split_dataset(Dataset.from_folder(tiny_folder)), out)
    copied = tmp_path / "copied"
    assert main(["split", str(tiny_folder), "--out", str(copied), "--copy", "--json"]) == 0
    assert not any(p.is_symlink() for p in copied.rglob("*.png"))
    assert tree_digest(tiny_folder) == before


def test_cli_split_with_groups_on_skin_lesions(skin_lesions: Path, tmp_path: Path) -> None:
    out = tmp_path / "split"
    code = main(["split", str(skin_lesions), "--out", str(out), "--seed", "0",
                 "--groups", f"{skin_lesions / 'labels.csv'}:lesion_id", "--json"])
    assert code == 0
    groups = read_groups(f"{skin_lesions / 'labels.csv'}:lesion_id")
    by_file = {os.path.realpath(skin_lesions / key): group for key, group in groups.items()}
    seen: dict[str, str] = {}
    for split in ("train", "val", "test"):
        for path in (out / split).rglob("*.jpg"):
            group = by_file[os.path.realpath(path)]  # the CSV names images by path (class/file.jpg)
            assert seen.setdefault(group, split) == split
            assert os.path.realpath(path).startswith(str(skin_lesions.resolve()))
    assert len(seen) == 890
    counts = {s: len(list((out / s).rglob("*.jpg"))) for s in ("train", "val", "test")}
    assert counts["test"] == pytest.approx(890 * 0.15, abs=4) and counts["val"] == pytest.approx(890 * 0.15, abs=4)


def test_cli_split_writes_relative_links_and_splits_json(tmp_path: Path) -> None:
    import json
    import os
    import shutil

    from synthaug._evaluate import load_splits_file
    from synthaug.testing import make_image_folder

    project = tmp_path / "project"
    data = make_image_folder(project / "data", {"a": 8, "b": 5}, size=8)
    out = project / "split"
    assert main(["split", str(data), "--out", str(out), "--seed", "3", "--json"]) == 0
    links = list(out.rglob("*.png"))
    assert links and all(p.is_symlink() and not os.path.isabs(os.readlink(p)) for p in links)
    doc = json.loads((out / "splits.json").read_text())
    assert doc["seed"] == 3 and len(doc["splits"]) == 1
    parts = load_split_root(out)
    assert {k: len(v) for k, v in parts.items()} == {k: len(doc["splits"][0][k]) for k in ("train", "val", "test")}
    resolved = load_splits_file(out / "splits.json", Dataset.from_folder(data))[0]
    assert {p.name for p in (s.path for s in resolved["test"])} == {s.path.name for s in parts["test"]}
    moved = shutil.move(str(project), str(tmp_path / "elsewhere"))  # data and split root moved together
    again = load_split_root(Path(moved) / "split")
    assert sum(len(v) for v in again.values()) == 13 and all(s.path.exists() for v in again.values() for s in v)

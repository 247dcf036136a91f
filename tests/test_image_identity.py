"""Issue 21: one identity per image (its file: ``(st_dev, st_ino)``, links followed).

The folder reader and the CSV reader agree: a class folder linked to another is refused, one
file under two labels is an error, one file twice under a label counts once (with a notice),
``split`` never puts one file into two splits, and grouped splits match groups by path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from synthaug import Dataset, DatasetError
from synthaug._cli import main
from synthaug.testing import make_image_folder


def _data(tmp_path: Path, counts: dict[str, int] | None = None) -> Path:
    return make_image_folder(tmp_path / "data", counts or {"a": 4, "b": 3})


def _csv(root: Path, rows: list[str]) -> Path:
    path = root / "labels.csv"
    path.write_text("\n".join(["path,label", *rows]) + "\n")
    return path


def test_class_folder_linked_to_another_class_is_refused(tmp_path: Path) -> None:
    root = _data(tmp_path)
    os.symlink(root / "a", root / "c")
    with pytest.raises(DatasetError) as info:
        Dataset.from_folder(root)
    message = str(info.value)
    assert str(root / "a") in message and str(root / "c") in message and "same folder" in message


@pytest.mark.parametrize("link", [os.symlink, os.link], ids=["symlink", "hardlink"])
def test_one_file_under_two_labels_is_an_error_in_both_readers(tmp_path: Path, link) -> None:
    root = _data(tmp_path)
    link(root / "a" / "a_000.png", root / "b" / "twin.png")
    with pytest.raises(DatasetError) as info:
        Dataset.from_folder(root)
    message = str(info.value)
    assert "two labels, 'a' and 'b'" in message and "twin.png" in message and "a_000.png" in message
    csv_path = _csv(root, ["a/a_000.png,a", "b/twin.png,b", "b/b_000.png,b"])
    with pytest.raises(DatasetError, match="two labels, 'a' and 'b'"):
        Dataset.from_csv(csv_path)


@pytest.mark.parametrize("link", [os.symlink, os.link], ids=["symlink", "hardlink"])
def test_one_file_twice_in_a_class_counts_once_with_a_notice(tmp_path: Path, link) -> None:
    root = _data(tmp_path)
    link(root / "a" / "a_000.png", root / "a" / "again.png")
    folder = Dataset.from_folder(root)
    assert folder.counts() == {"a": 4, "b": 3}
    assert any("more than once" in n and "4 distinct" not in n for n in folder.notices)
    assert any("1 image(s) more than once" in n for n in folder.notices)
    csv_path = _csv(root, ["a/a_000.png,a", "a/again.png,a", "a/a_001.png,a", "a/a_001.png,a", "b/b_000.png,b"])
    listed = Dataset.from_csv(csv_path)
    assert listed.counts() == {"a": 2, "b": 1}
    assert any("2 image(s) more than once" in n for n in listed.notices)


def test_split_never_puts_one_file_into_two_splits(tmp_path: Path) -> None:
    root = _data(tmp_path, {"a": 12, "b": 12})
    for label in ("a", "b"):
        for path in sorted((root / label).glob("*.png")):
            os.link(path, path.with_name("copy_" + path.name))  # every image twice, as a hard link
    out = tmp_path / "split"
    assert main(["split", str(root), "--out", str(out), "--seed", "3", "--json", "--copy"]) == 0
    inode_of = {p.name: p.stat().st_ino for p in root.rglob("*.png")}
    where: dict[int, set[str]] = {}
    for split in ("train", "val", "test"):
        for path in (out / split).rglob("*.png"):
            where.setdefault(inode_of[path.name.split("__")[-1]], set()).add(split)
    assert len(where) == 24 and all(len(s) == 1 for s in where.values()), where


def _numbered(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """a/0001..0012.png and b/0001..0012.png (per-class numbering); patients group pairs of
    images of a, triples of b, so the same stem belongs to different patients per class."""
    from PIL import Image

    root = tmp_path / "data"
    patient = {}
    for label, per in (("a", 2), ("b", 3)):
        (root / label).mkdir(parents=True)
        for i in range(1, 13):
            rel = f"{label}/{i:04d}.png"
            Image.new("RGB", (8, 8), (i * 20, 40 if label == "a" else 200, 0)).save(root / rel)
            patient[rel] = f"{label}-patient-{(i - 1) // per}"
    return root, patient


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grouped_split_matches_groups_by_relative_path(tmp_path: Path, seed: int) -> None:
    root, patient = _numbered(tmp_path)
    groups = tmp_path / "groups.csv"
    groups.write_text("path,patient\n" + "".join(f"{rel},{p}\n" for rel, p in patient.items()))
    out = tmp_path / "split"
    assert main(["split", str(root), "--out", str(out), "--seed", str(seed), "--json",
                 "--groups", f"{groups}:patient", "--val", "0.25", "--test", "0.25"]) == 0
    seen: dict[str, set[str]] = {}
    for split in ("train", "val", "test"):
        for path in (out / split).rglob("*.png"):
            rel = Path(os.path.realpath(path)).relative_to(root.resolve()).as_posix()
            seen.setdefault(patient[rel], set()).add(split)
    assert len(seen) == 6 + 4
    assert all(len(s) == 1 for s in seen.values()), seen


def test_grouped_split_with_an_ambiguous_stem_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root, patient = _numbered(tmp_path)
    groups = tmp_path / "groups.csv"
    groups.write_text("image_id,patient\n" + "".join(f"{Path(rel).stem},{p}\n" for rel, p in patient.items()))
    out = tmp_path / "split"
    assert main(["split", str(root), "--out", str(out), "--groups", f"{groups}:patient"]) == 2
    err = capsys.readouterr().err
    assert "'0001'" in err and "a/0001.png" in err and "b/0001.png" in err
    assert not out.exists() or not any(out.rglob("*.png"))


def test_grouped_split_by_unique_stem_still_works(tmp_path: Path) -> None:
    root = _data(tmp_path, {"a": 8, "b": 8})
    groups = tmp_path / "groups.csv"
    stems = sorted(p.stem for p in root.rglob("*.png"))
    groups.write_text("image_id,lesion\n" + "".join(f"{s},L{i // 4}\n" for i, s in enumerate(stems)))
    out = tmp_path / "split"
    assert main(["split", str(root), "--out", str(out), "--json", "--groups", f"{groups}:lesion"]) == 0
    lesion = {s: f"L{i // 4}" for i, s in enumerate(stems)}
    seen: dict[str, set[str]] = {}
    for split in ("train", "val", "test"):
        for path in (out / split).rglob("*.png"):
            seen.setdefault(lesion[path.stem], set()).add(split)
    assert len(seen) == 4 and all(len(s) == 1 for s in seen.values())


def test_csv_and_folder_readers_agree_on_counts(tmp_path: Path) -> None:
    """The same tree with links read both ways gives the same counts and the same notices' gist."""
    root = _data(tmp_path)
    os.symlink(root / "b" / "b_000.png", root / "b" / "b_link.png")
    rows = [f"{p.relative_to(root).as_posix()},{p.parent.name}" for p in sorted(root.rglob("*.png"))]
    folder, listed = Dataset.from_folder(root), Dataset.from_csv(_csv(root, rows))
    assert folder.counts() == listed.counts() == {"a": 4, "b": 3}
    assert json.dumps(sorted(str(s.path.resolve()) for s in folder)) == \
        json.dumps(sorted(str(s.path.resolve()) for s in listed))


def test_kfold_splits_match_groups_by_relative_path(tmp_path: Path) -> None:
    """``evaluate --repeats/--folds --groups``: the same path matching as ``split``."""
    from synthaug._evaluate.splits import kfold_splits
    from synthaug._splitting import read_groups

    root, patient = _numbered(tmp_path)
    groups = tmp_path / "groups.csv"
    groups.write_text("path,patient\n" + "".join(f"{rel},{p}\n" for rel, p in patient.items()))
    for split in kfold_splits(Dataset.from_folder(root), 2, 3, seed=1, groups=read_groups(f"{groups}:patient")):
        seen: dict[str, set[str]] = {}
        for part, ds in split.items():
            for s in ds:
                seen.setdefault(patient[s.path.relative_to(root).as_posix()], set()).add(part)
        assert len(seen) == 10 and all(len(v) == 1 for v in seen.values()), seen

"""Stratified, optionally grouped train/val/test splits, and writing them as folders.

Groups (e.g. a lesion id) are never divided: every image of a group goes to the same split.
Within each class, groups are shuffled with the seed and assigned to splits so that each
split's share of images comes as close as possible to the requested fraction.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

from ._dataset import SPLITS, Dataset, Sample
from ._errors import DatasetError, InvalidParameterError, OutputConflictError
from ._imageio import is_image_file

__all__ = ["GroupMap", "assign_groups", "read_groups", "split_dataset", "write_split", "load_split_root", "is_split_root"]


def _check_fraction(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(name, value, "a number in [0, 1)") from None
    if not 0 <= value < 1:
        raise InvalidParameterError(name, value, "a number in [0, 1)")
    return value


class GroupMap(dict):
    """``{key: group}`` read from a groups CSV, where a key is what the CSV names an image by:
    a path (relative to the data root or to the CSV's folder, or absolute), a file name, or a
    file stem (``image_id``). :meth:`assign` matches images to keys by path first; a bare name
    or stem is used only when it names exactly one image (per-class numbering such as
    ``a/0001.png`` and ``b/0001.png`` makes the stem ``0001`` ambiguous: an error)."""

    def __init__(self, entries: Mapping[str, str] = (), *, base: Path | None = None, source: str = "groups") -> None:
        super().__init__(entries)
        self.base = base
        self.source = source

    def _by_real_path(self, root: Path | None) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, group in self.items():
            if os.path.isabs(key):
                out.setdefault(os.path.realpath(key), group)
                continue
            for folder in (root, self.base):
                if folder is not None:
                    candidate = os.path.join(folder, key)
                    if os.path.lexists(candidate):
                        out.setdefault(os.path.realpath(candidate), group)
        return out

    def assign(self, paths: Iterable[Path], root: Path | None = None) -> dict[Path, str | None]:
        """The group of every path of ``paths`` (``None`` when the CSV has none for it)."""
        paths = list(paths)
        by_real = self._by_real_path(root)
        out: dict[Path, str | None] = {}
        by_short: dict[str, list[Path]] = defaultdict(list)
        for path in paths:
            group = by_real.get(os.path.realpath(path))
            out[path] = group
            if group is None:
                for short in dict.fromkeys((path.name, path.stem)):
                    if short in self:
                        by_short[short].append(path)
                        out[path] = self[short]
                        break
        for short, matched in by_short.items():
            if len(matched) > 1:
                shown = ", ".join(str(p) for p in matched[:5])
                raise DatasetError(
                    f"{self.source} names an image {short!r}, which matches {len(matched)} files ({shown}); "
                    "give each image's path relative to the data folder (e.g. class/file.png) in that column, "
                    "so that each row names one file"
                )
        return out


def assign_groups(dataset: Iterable[Sample], groups: Mapping[str, str] | None) -> dict[Path, str | None]:
    """``{sample path: group from groups}`` (empty without ``groups``); see :meth:`GroupMap.assign`."""
    if groups is None:
        return {}
    if not isinstance(groups, GroupMap):
        groups = GroupMap(groups)
    return groups.assign([s.path for s in dataset], getattr(dataset, "root", None))


def read_groups(spec: str) -> GroupMap:
    """Read ``labels.csv:column`` into a :class:`GroupMap` ``{image key: group}``.

    The CSV needs the group column and a ``path`` column (relative paths: to the data root or
    the CSV's folder) or else ``image_id`` / ``image`` / ``file`` (a file name or stem).
    """
    from ._inputcheck import read_csv_table, refuse_repeated_columns

    file, sep, column = spec.rpartition(":")
    if not sep or not file or not column:
        raise InvalidParameterError("groups", spec, "a CSV file and a column, as FILE.csv:COLUMN")
    path = Path(file)
    if not path.is_file():
        raise DatasetError(f"groups file {file!r} (from groups={spec!r}) does not exist")
    columns, rows = read_csv_table(path)
    if column not in columns:
        raise DatasetError(f"groups file {file!r} has no column {column!r}; columns: {', '.join(columns)}")
    key_column = next((c for c in ("path", "image_id", "image", "file") if c in columns), None)
    if key_column is None:
        raise DatasetError(
            f"groups file {file!r} needs a path or image_id column to match images; columns: {', '.join(columns)}"
        )
    refuse_repeated_columns(path, columns, (column, key_column))
    entries = {}
    for _, row in rows:
        key, group = (row.get(key_column) or "").strip(), row.get(column)
        if key and group:
            entries[Path(key).as_posix().removeprefix("./")] = group
    return GroupMap(entries, base=path.parent, source=f"groups file {file!r}")


def _first_of_identical(dataset: Dataset) -> dict[Path, Path]:
    """Each image's path -> the first path (sorted) of the images with the same bytes (itself
    for a unique image), so byte-identical copies land in one split. SHA-256s come from the
    user-cache hash cache, so a second split of the same data reads no image again."""
    from ._fingerprint import HashCache

    cache = HashCache(dataset.root)
    first: dict[str, Path] = {}
    out: dict[Path, Path] = {}
    try:
        for path in sorted(s.path for s in dataset):
            out[path] = first.setdefault(cache.stat_and_hash(path)[1], path)
    finally:
        cache.save()
    return out


def split_dataset(
    dataset: Dataset,
    *,
    val: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
    groups: Mapping[str, str] | None = None,
) -> dict[str, Dataset]:
    """Split ``dataset`` into ``{"train", "val", "test"}`` datasets, stratified by class.

    ``groups`` maps an image to its group (a :class:`GroupMap`, or a plain mapping whose keys
    are paths relative to the data root, file names or stems; see :meth:`GroupMap.assign`);
    samples' own ``group`` is used otherwise. Images without a group form a group of their own,
    byte-identical copies one group together (the readers keep each file once, links included,
    so one image lands in one split).
    """
    val = _check_fraction("val", val)
    test = _check_fraction("test", test)
    if val + test >= 1:
        raise InvalidParameterError("val + test", val + test, "less than 1, so that training images remain")
    rng = random.Random(seed)
    assigned: dict[str, list[Sample]] = {name: [] for name in SPLITS}
    from_csv = assign_groups(dataset, groups)
    same_content = _first_of_identical(dataset)
    group_of = {}
    for s in dataset:
        g = from_csv.get(s.path) or s.group
        # the readers keep each file once; byte-identical copies in other files share a group
        group_of[s] = g if g is not None else f"__image__:{same_content[s.path]}"
    seen_group_split: dict[str, str] = {}
    by_class: dict[str, dict[str, list[Sample]]] = defaultdict(lambda: defaultdict(list))
    for s in dataset:
        by_class[s.label][group_of[s]].append(s)
    for label in sorted(by_class):
        class_groups = by_class[label]
        keys = sorted(class_groups)
        rng.shuffle(keys)
        total = sum(len(v) for v in class_groups.values())
        targets = {"test": round(total * test), "val": round(total * val)}
        filled = {"test": 0, "val": 0, "train": 0}
        for key in keys:
            members = class_groups[key]
            if key in seen_group_split:  # a group spanning classes stays in one split
                split = seen_group_split[key]
            else:
                split = "train"
                for candidate in ("test", "val"):
                    if filled[candidate] < targets[candidate]:
                        split = candidate
                        break
                seen_group_split[key] = split
            filled[split] += len(members)
            assigned[split].extend(Sample(m.path, m.label, m.group, split) for m in members)
    root = dataset.root
    return {name: Dataset(assigned[name], root=root) for name in SPLITS}


def _link_or_copy(src: Path, dst: Path, copy: bool) -> None:
    if copy:
        shutil.copy2(src, dst)
        return
    try:  # relative, so a folder holding both the data and the split root can be moved
        os.symlink(os.path.relpath(os.path.realpath(src), os.path.realpath(dst.parent)), dst)
    except (OSError, ValueError):  # ValueError: another drive (Windows)
        shutil.copy2(src, dst)


def write_split(splits: Mapping[str, Dataset], out_root: str | os.PathLike[str], *, copy: bool = False) -> Path:
    """Write ``out_root/{train,val,test}/<class>/<file>`` as relative symlinks (or copies with ``copy``).

    Every class of any split gets a folder in every split (empty where the split has none of
    its images), so folder readers number the classes of train, val and test alike. The
    originals are never moved or changed. ``out_root`` must not exist or be empty, and must
    lie outside the data.
    """
    from ._outdir import LOCK_FILE, LOCK_INFO_FILE, check_output_location

    out_root = Path(out_root)
    check_output_location(out_root, {os.fspath(ds.root) for ds in splits.values() if ds.root is not None})
    if out_root.exists() and any(p.name not in (LOCK_FILE, LOCK_INFO_FILE) for p in out_root.iterdir()):
        raise OutputConflictError(
            f"split output folder {str(out_root)!r} is not empty; choose a new folder or remove it"
        )
    classes = sorted({s.label for ds in splits.values() for s in ds}
                     | {label for ds in splits.values() for label in ds.empty_classes})
    for split_name, ds in splits.items():
        for label in classes:
            (out_root / split_name / label).mkdir(parents=True, exist_ok=True)
        for s in ds:
            source_root = ds.root
            (out_root / split_name / s.label).mkdir(parents=True, exist_ok=True)
            name = s.path.name
            if source_root is not None:
                try:
                    rel = s.path.relative_to(source_root / s.label)
                    name = "__".join(rel.parts)
                except ValueError:
                    pass
            target = out_root / split_name / s.label / name
            if target.exists() or target.is_symlink():
                digest = hashlib.sha1(str(s.path).encode()).hexdigest()[:8]
                target = target.with_name(f"{target.stem}__{digest}{target.suffix}")
            _link_or_copy(s.path, target, copy)
    for name in SPLITS:
        (out_root / name).mkdir(parents=True, exist_ok=True)
    return out_root


def _read_held_out(folder: Path, strict: bool) -> Dataset:
    """A val/test split's class folders; classes with no image there (written so that every
    split numbers classes alike) are expected, so their notice is dropped."""
    import warnings

    from ._dataset import EmptyClassWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyClassWarning)
        ds = Dataset.from_folder(folder, strict=strict)
    notices = [n for n in ds.notices if not n.startswith("class(es) with no usable image")]
    return Dataset(ds, root=ds.root, empty_classes=ds.empty_classes, skipped=ds.skipped, notices=notices)


def is_split_root(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` holds ``train/`` and at least one of ``val/`` and ``test/``."""
    p = Path(path)
    return (p / "train").is_dir() and ((p / "val").is_dir() or (p / "test").is_dir())


def load_split_root(root: str | os.PathLike[str], *, strict: bool = False) -> dict[str, Dataset]:
    """Read ``root/{train,val,test}/<class>/`` into three datasets whose samples know their split."""
    root = Path(root)
    out = {}
    for name in SPLITS:
        folder = root / name
        if folder.is_dir() and any(is_image_file(p) for p in folder.rglob("*")):
            out[name] = (Dataset.from_folder(folder, strict=strict) if name == "train"
                         else _read_held_out(folder, strict)).with_split(name)
    if "train" not in out:
        raise DatasetError(f"split root {str(root)!r} has no train/<class>/ folders")
    return out

"""The train/val/test splits of an evaluation: random, repeated k-fold, from a file, or fixed.

Every split is a ``{"train", "val", "test"}`` mapping of :class:`~synthaug._dataset.Dataset`.
The splits used are always written to ``splits.json`` in the format read by
:func:`load_splits_file`::

    {"splits": [{"train": ["nevus/ISIC_1.jpg", ...], "val": [...], "test": [...]}, ...]}

Entries are paths relative to the data root (posix separators) or file stems.
"""

from __future__ import annotations

import json
import os
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._dataset import SPLITS, Dataset, Sample
from .._errors import DatasetError, InvalidParameterError
from .._splitting import assign_groups, split_dataset

__all__ = ["Split", "random_splits", "kfold_splits", "load_splits_file", "splits_to_json", "check_disjoint"]

Split = dict[str, Dataset]


def _group_of(sample: Sample, assigned: Mapping[Path, str | None]) -> str:
    group = assigned.get(sample.path) or sample.group
    return group if group is not None else f"__image__:{sample.path}"


def check_disjoint(split: Mapping[str, Dataset], where: str) -> None:
    """Raise :class:`DatasetError` if an image is in two parts of a split."""
    owner: dict[str, str] = {}
    for part in SPLITS:
        for s in split.get(part, ()):
            key = os.path.realpath(s.path)
            if key in owner:
                places = "twice in " + part if owner[key] == part else f"in both {owner[key]} and {part}"
                raise DatasetError(f"{where}: image {s.path} is listed {places}")
            owner[key] = part


def random_splits(
    data: Dataset, n: int, *, val: float = 0.15, test: float = 0.15, seed: int = 0,
    groups: Mapping[str, str] | None = None,
) -> list[Split]:
    """``n`` independent stratified (grouped) random splits, seeds ``seed``, ``seed+1``, …"""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidParameterError("--splits", n, "a positive number of random splits")
    return [split_dataset(data, val=val, test=test, seed=seed + k, groups=groups) for k in range(n)]


def kfold_splits(
    data: Dataset, repeats: int, folds: int, *, seed: int = 0, groups: Mapping[str, str] | None = None
) -> list[Split]:
    """Repeated stratified (grouped) k-fold: in repeat r, fold f is the test set, fold f+1 the
    validation set and the other folds the training set (``repeats * folds`` splits)."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 3:
        raise InvalidParameterError("--folds", folds, "an integer >= 3 (one fold each for test and validation)")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise InvalidParameterError("--repeats", repeats, "a positive integer")
    out: list[Split] = []
    assigned = assign_groups(data, groups)  # by path; an ambiguous stem is an error (GroupMap.assign)
    for r in range(repeats):
        rng = random.Random(seed + r)
        fold_of_group: dict[str, int] = {}
        by_class: dict[str, dict[str, list[Sample]]] = defaultdict(lambda: defaultdict(list))
        for s in data:
            by_class[s.label][_group_of(s, assigned)].append(s)
        for label in sorted(by_class):
            keys = sorted(by_class[label])
            rng.shuffle(keys)
            sizes = [0] * folds
            for key in keys:
                if key not in fold_of_group:
                    fold_of_group[key] = min(range(folds), key=lambda f: (sizes[f], f))
                sizes[fold_of_group[key]] += len(by_class[label][key])
        for f in range(folds):
            parts: dict[str, list[Sample]] = {name: [] for name in SPLITS}
            for s in data:
                fold = fold_of_group[_group_of(s, assigned)]
                part = "test" if fold == f else "val" if fold == (f + 1) % folds else "train"
                parts[part].append(Sample(s.path, s.label, s.group, part))
            out.append({name: Dataset(parts[name], root=data.root) for name in SPLITS})
    return out


def _relative(sample: Sample, root: Path | None) -> str:
    if root is not None:
        try:
            return Path(os.path.abspath(sample.path)).relative_to(os.path.abspath(root)).as_posix()
        except ValueError:
            pass
    return str(sample.path)


def splits_to_json(splits: Sequence[Split], root: Path | None) -> dict[str, Any]:
    """The ``splits.json`` document of ``splits`` (paths relative to ``root`` where possible)."""
    return {"splits": [{part: [_relative(s, root) for s in split.get(part, ())] for part in SPLITS}
                       for split in splits]}


def load_splits_file(path: str | os.PathLike[str], data: Dataset) -> list[Split]:
    """Read a splits file (see the module docstring) and resolve its entries in ``data``.

    Unknown entries, ambiguous stems and an image listed twice in one split are errors.
    Images of ``data`` that a split does not list are not used by that split.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"splits file {str(path)!r} does not exist") from None
    except ValueError as exc:
        raise DatasetError(f"splits file {str(path)!r} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("splits"), list) or not doc["splits"]:
        raise DatasetError(
            f'splits file {str(path)!r} must hold {{"splits": [{{"train": [...], "val": [...], "test": [...]}}, ...]}}'
        )
    by_rel: dict[str, Sample] = {}
    by_stem: dict[str, list[Sample]] = defaultdict(list)
    for s in data:
        by_rel[_relative(s, data.root)] = s
        by_stem[s.path.stem].append(s)

    def resolve(entry: object, where: str) -> Sample:
        key = str(entry).replace("\\", "/")
        if key in by_rel:
            return by_rel[key]
        matches = by_stem.get(Path(key).stem if "/" in key or "." in key else key, [])
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise DatasetError(f"{where}: {key!r} matches {len(matches)} images; use its path relative to the data root")
        raise DatasetError(f"{where}: {key!r} is not an image of the dataset (give a file stem or a path relative to the data root)")

    out: list[Split] = []
    for i, entry in enumerate(doc["splits"]):
        if not isinstance(entry, dict) or not all(isinstance(entry.get(p), list) for p in SPLITS):
            raise DatasetError(f"{path}: splits[{i}] needs lists 'train', 'val' and 'test'")
        split = {}
        for part in SPLITS:
            samples = [resolve(e, f"{path}: splits[{i}].{part}") for e in entry[part]]
            split[part] = Dataset([Sample(s.path, s.label, s.group, part) for s in samples], root=data.root)
        check_disjoint(split, f"{path}: splits[{i}]")
        if not len(split["train"]) or not len(split["test"]):
            raise DatasetError(f"{path}: splits[{i}] needs at least one train and one test image")
        out.append(split)
    return out

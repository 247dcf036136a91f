"""What a run reads: the training images, the held-out splits, and the leakage check.

:func:`read_inputs` accepts a folder, a CSV file, a split root (``train/``, ``val/``,
``test/``) or a :class:`~synthaug._dataset.Dataset` of training samples, and returns the
training dataset and the held-out ones; no held-out image may be a training image
(:func:`check_no_leakage`). :class:`RunInputs` bundles everything the augmenter derives
from them before writing: plan, concepts, quotas and the run description.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._dataset import Dataset, Sample
from ._errors import DatasetError, InvalidParameterError, LeakageError
from ._fingerprint import HashCache, training_fingerprint
from ._generator import Concept, Generator
from ._policy import Plan
from ._splitting import is_split_root, load_split_root

__all__ = ["RunInputs", "Signature", "check_no_leakage", "fingerprinted", "folder_signature", "read_inputs",
           "signature_holds"]

#: A modification within this many nanoseconds before a read makes its signature "racy": the
#: folder may change again within one tick of the file system's clock, so it is read again.
RACY_NS = 2_000_000_000


@dataclass(frozen=True)
class RunInputs:
    """Everything one run derives from its data before writing anything."""

    #: The training samples (the generator is fitted on these only).
    train: Dataset
    #: Held-out splits by name (``"val"``, ``"test"``), empty without a split root.
    held_out: Mapping[str, Dataset]
    #: How many synthetic images each class gets.
    plan: Plan
    #: The concepts to serve, in order.
    concepts: list[Concept]
    #: Synthetic images per concept name.
    quotas: dict[str, int]
    #: The run description recorded in ``plan.json`` (a different one is a different run).
    run: dict[str, Any]


def _content_key(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        h.update(fh.read())
    return h.hexdigest()


def check_no_leakage(train: Sequence[Sample], held_out: Mapping[str, Sequence[Sample]]) -> None:
    """Raise :class:`LeakageError` if a training image is also a val/test image.

    Images are matched by resolved path and by content (so copies are caught too).
    """
    if not any(held_out.values()):
        return
    index: dict[str, tuple[str, Path]] = {}
    for split, samples in held_out.items():
        for s in samples:
            index[os.path.realpath(s.path)] = (split, s.path)
            index[_content_key(s.path)] = (split, s.path)
    for s in train:
        hit = index.get(os.path.realpath(s.path)) or index.get(_content_key(s.path))
        if hit:
            raise LeakageError(
                f"training image {s.path} is also in the {hit[0]} split ({hit[1]}); generators may "
                "only be fitted on training images, so remove it from one of the splits"
            )


def read_inputs(data: str | os.PathLike[str] | Dataset, *, strict: bool = False,
                held_out: Mapping[str, Sequence[Sample]] | None = None) -> tuple[Dataset, dict[str, Dataset]]:
    """The training dataset and the held-out ones of ``data`` (see the module docstring).

    ``held_out`` gives the validation/test samples in memory (``{"val": ..., "test": ...}``)
    when ``data`` holds the training samples only; they pass the same leakage check as a
    split root's. It cannot be combined with a split root, which holds its own.
    """
    if not isinstance(data, (Dataset, str, os.PathLike)):
        hint = ("wrap it with synthaug.Dataset.from_hf(ds, cache_dir=...) first"
                if hasattr(data, "features") else "give a folder, a CSV file or a synthaug.Dataset")
        raise InvalidParameterError("data", type(data).__name__, "a path or a synthaug.Dataset", hint)
    if held_out is not None:
        return _with_held_out(data, held_out, strict)
    if isinstance(data, Dataset):
        held = {name: data.filter(lambda s, n=name: s.split == n) for name in ("val", "test")}
        held = {k: v for k, v in held.items() if len(v)}
        if held:
            raise LeakageError(
                "the dataset holds " + ", ".join(f"{len(v)} {k}" for k, v in held.items())
                + " samples; pass only training samples (or a split root) to the augmenter"
            )
        return data, {}
    if is_split_root(data):
        splits = load_split_root(data, strict=strict)
        held_out = {k: v for k, v in splits.items() if k != "train"}
        _check_held_out_classes(data, splits["train"], held_out)
        check_no_leakage(splits["train"], held_out)
        return splits["train"], held_out
    return Dataset.load(data, strict=strict), {}


def _check_held_out_classes(root: str | os.PathLike[str], train: Dataset, held_out: Mapping[str, Dataset]) -> None:
    """Raise :class:`DatasetError` before anything is generated when a class has val/test images
    but no training image: no generator can learn it, and no classifier could be trained on it."""
    trained = {s.label for s in train}
    for name, ds in sorted(held_out.items()):
        missing = sorted({s.label for s in ds} - trained)
        if missing:
            raise DatasetError(
                f"split root {str(root)!r}: class(es) {', '.join(map(repr, missing))} have images in {name}/ but "
                f"none in train/; put training images in train/<class>/ or remove the class from {name}/"
            )


def _with_held_out(data: str | os.PathLike[str] | Dataset, held_out: Mapping[str, Sequence[Sample]],
                   strict: bool) -> tuple[Dataset, dict[str, Dataset]]:
    unknown = sorted(set(held_out) - {"val", "test"})
    if unknown:
        raise InvalidParameterError("held_out", unknown, "a mapping with the keys 'val' and/or 'test'")
    if not isinstance(data, Dataset) and is_split_root(data):
        raise InvalidParameterError("held_out", sorted(held_out), "not with a split root",
                                    f"{data} already holds its val/ and test/ splits")
    train, _ = read_inputs(data, strict=strict)
    held = {name: samples if isinstance(samples, Dataset) else Dataset(list(samples))
            for name, samples in held_out.items()}
    check_no_leakage(train, held)
    return train, held


@dataclass(frozen=True)
class Signature:
    """The folders (and CSV file) a read used, with their (mtime_ns, inode, size), and when it was read."""

    read_ns: int
    stamps: tuple[tuple[str, tuple[int, int, int] | None], ...]


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ino, st.st_size)


def folder_signature(data: object, datasets: Iterable[Dataset]) -> Signature:
    """What :func:`signature_holds` compares to tell whether ``data`` must be read again: the
    CSV file and every folder between a dataset root and its images (a folder's mtime changes
    when an entry is added, removed or renamed in it). In-memory datasets never change."""
    read_ns = time.time_ns()
    if not isinstance(data, (str, os.PathLike)):
        return Signature(read_ns, ())
    paths = {os.path.abspath(data)}
    for ds in datasets:
        root = os.path.abspath(ds.root) if ds.root is not None else None
        if root is not None:
            paths.add(root)
            paths.update(os.path.join(root, label) for label in ds.classes)
        for folder in {os.path.dirname(os.path.abspath(s.path)) for s in ds}:
            while folder not in paths and root is not None and folder.startswith(root + os.sep):
                paths.add(folder)
                folder = os.path.dirname(folder)
            paths.add(folder)
    return Signature(read_ns, tuple((p, _stamp(p)) for p in sorted(paths)))


def signature_holds(signature: Signature | None) -> bool:
    """True when nothing recorded in ``signature`` changed, and none of it was changed so shortly
    before the read that a later change could carry the same timestamp."""
    if signature is None:
        return False
    for path, stamp in signature.stamps:
        now = _stamp(path)
        if now != stamp or (now is not None and now[0] >= signature.read_ns - RACY_NS):
            return False
    return True


def fingerprinted(concepts: Sequence[Concept], root: str | os.PathLike[str] | None,
                  generator: Generator) -> tuple[list[Concept], dict[str, str]]:
    """``concepts`` with their :attr:`~synthaug.Concept.fingerprint` set: their images' relative
    paths (to ``root``), sizes and SHA-256 digests (cached by size and mtime, see
    :class:`~synthaug._fingerprint.HashCache`), with the generator's name, version and
    training options; and per concept name the digest of the images alone."""
    cache = HashCache(root)
    described = {"name": generator.name, "version": generator.version, "fit_options": generator.fit_options()}
    out, images = [], {}
    for c in concepts:
        full, images[c.name] = training_fingerprint(c.images, root, generator=described, cache=cache)
        out.append(dataclasses.replace(c, fingerprint=full))
    cache.save()
    return out, images

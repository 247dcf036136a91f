"""Where the synthetic images of an evaluation come from: a :class:`Source`, and the per-split
pool of synthetic images it yields.

A generator source is fitted per split on that split's training images only (through the
augmenter on a split root, which refuses leakage). Folder sources (one synthaug output
folder per split) are checked against the held-out images their manifests record as sources.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .._augmented import synthetic_samples
from .._dataset import Dataset, Sample
from .._errors import LeakageError
from .._progress import Progress
from .._splitting import write_split

__all__ = ["Source", "Pool", "synthetic_pool"]

Pool = dict[str, list[Sample]]


@dataclass(frozen=True)
class Source:
    """A synthetic-image source: ``generator`` (``name`` + ``options``) or ``folders`` (one per split)."""

    kind: Literal["generator", "folders"]
    name: str = ""
    options: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    folders: tuple[Path, ...] = ()
    #: Tells apart generator sources that differ only in generation options (``strength=0.5``).
    variant: str = ""

    @classmethod
    def generator(cls, name: str, options: Mapping[str, Any] | None = None, *, variant: str = "") -> Source:
        return cls("generator", name, dict(options or {}), variant=variant)

    @classmethod
    def from_folders(cls, folders: Sequence[str | Path]) -> Source:
        return cls("folders", folders=tuple(Path(f) for f in folders))

    @property
    def key(self) -> str:
        """The source's name in report.json (``generator:NAME`` or ``folders``)."""
        if self.kind == "folders":
            return "folders"
        return f"generator:{self.name}" + (f"@{self.variant}" if self.variant else "")

    def describe(self) -> dict[str, Any]:
        """The report.json entry of the source."""
        if self.kind == "folders":
            return {"kind": "folders", "folders": [str(f) for f in self.folders]}
        return {"kind": "generator", "name": self.name, "options": dict(self.options),
                "fitted_on": "the training images of each split"}


def _ordered_pool(samples: Sequence[Sample]) -> Pool:
    out: Pool = {}
    ordered = sorted(samples, key=lambda s: (s.label, str((s.provenance or {}).get("concept", "")),
                                             int((s.provenance or {}).get("index", 0)), str(s.path)))
    for s in ordered:
        out.setdefault(s.label, []).append(s)
    return out


def _split_root(split: Mapping[str, Dataset], fixed_root: Path | None, work: Path) -> Path:
    """A split root for the augmenter (the input itself, or symlinks under ``work``)."""
    if fixed_root is not None:
        return fixed_root
    target = work / "data"
    if target.exists():
        shutil.rmtree(target)
    return write_split(dict(split), target)


def _generated_pool(source: Source, split: Mapping[str, Dataset], fixed_root: Path | None, work: Path,
                    need: Mapping[str, int], seed: int, progress: Progress) -> Pool:
    from .._augmenter import SyntheticAugmenter
    from .._policy import MinorityUpsampling

    train = split["train"]
    counts = train.counts()
    targets = {c: counts[c] + n for c, n in need.items() if n > 0}
    if not targets:
        return {}
    root = _split_root(split, fixed_root, work)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # targets above the majority are intended here
        # variants of one generator (a strength sweep) share the fitted adapters: their options differ in
        # fit-neutral generation options only
        variant = {"out_dir": work / f"synthetic-{source.name}@{source.variant}",
                   "work_dir": work / f"fits-{source.name}"} if source.variant else {
            "out_dir": work / f"synthetic-{source.name}"}
        result = SyntheticAugmenter(source.name, MinorityUpsampling(targets), generator_options=dict(source.options),
                                    random_state=seed, progress=progress, overwrite=True, **variant).fit_resample(root)
    return _ordered_pool(result.synthetic)


def _held_out_sources(samples: Sequence[Sample], split: Mapping[str, Dataset]) -> list[str]:
    """The held-out images that synthetic ``samples`` record as their source: matched by content
    (``source_sha256``) where recorded, else by class and file name (a record names its source
    file within its own class), never by bare file name across classes."""
    from .._fingerprint import HashCache

    held = [s for part in ("val", "test") for s in split.get(part, ())]
    cache = HashCache(None)
    by_content = {cache.stat_and_hash(s.path)[1]: s for s in held} if any(
        "source_sha256" in (s.provenance or {}) for s in samples) else {}
    cache.save()
    by_name = {(s.label, s.path.name): s for s in held}
    leaked = set()
    for s in samples:
        record = s.provenance or {}
        if isinstance(record.get("source_sha256"), str):
            hit = by_content.get(record["source_sha256"])
        elif isinstance(record.get("source"), str):
            hit = by_name.get((s.label, Path(record["source"]).name))
        else:
            hit = None
        if hit is not None:
            leaked.add(f"{hit.label}/{hit.path.name}")
    return sorted(leaked)


def _folder_pool(folder: Path, split: Mapping[str, Dataset]) -> Pool:
    samples = synthetic_samples(folder)
    leaked = _held_out_sources(samples, split)
    if leaked:
        raise LeakageError(
            f"synthetic folder {folder} was made from held-out image(s) {', '.join(leaked[:5])}; a synthetic "
            "folder must be generated from the training images of the split it is evaluated on"
        )
    return _ordered_pool(samples)


def synthetic_pool(source: Source, split_index: int, split: Mapping[str, Dataset], *, fixed_root: Path | None,
                   work: Path, need: Mapping[str, int], seed: int, progress: Progress) -> Pool:
    """The synthetic images ``source`` offers split ``split_index`` (at least ``need`` per class
    for a generator), per class in manifest order."""
    if source.kind == "folders":
        return _folder_pool(source.folders[split_index], split)
    progress.log(f"split {split_index}: generating synthetic images with {source.name!r} "
                 f"from {len(split['train'])} training images")
    return _generated_pool(source, split, fixed_root, work, need, seed, progress)

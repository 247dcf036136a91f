"""Real + synthetic samples with provenance, ready for a classifier.

:class:`AugmentedDataset` is what :meth:`SyntheticAugmenter.fit_resample` returns. It keeps
the real training samples and the synthetic ones apart (each synthetic sample carries its
manifest record) and gives one stable class-to-index mapping, shared by every adapter.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .dataset import Dataset, Sample
from .errors import DatasetError
from .store import Store

__all__ = ["AugmentedDataset", "synthetic_samples"]


def synthetic_samples(out_dir: str | os.PathLike[str], records: Sequence[Mapping[str, Any]] | None = None) -> list[Sample]:
    """Samples for the images recorded in ``out_dir/manifest.jsonl`` (in manifest order)."""
    store = Store(out_dir)
    if records is None:
        if not store.manifest_path.is_file():
            raise DatasetError(f"{str(out_dir)!r} has no manifest.jsonl; is it a synthaug output folder?")
        records = store.records()
    return [Sample(store.root / r["file"], r["class"], split="train", provenance=dict(r)) for r in records]


class AugmentedDataset(Sequence[Sample]):
    """Real training samples plus synthetic samples, with a stable class mapping.

    ``classes`` defaults to the sorted union of real and synthetic labels; pass it to share
    one mapping across several datasets. ``val``/``test`` are real-only held-out datasets.
    """

    def __init__(
        self,
        real: Dataset | Sequence[Sample],
        synthetic: Sequence[Sample] = (),
        *,
        classes: Sequence[str] | None = None,
        val: Dataset | None = None,
        test: Dataset | None = None,
        plan: Mapping[str, Any] | None = None,
    ) -> None:
        self.real = real if isinstance(real, Dataset) else Dataset(real)
        self.synthetic: tuple[Sample, ...] = tuple(synthetic)
        for s in self.synthetic:
            if not s.is_synthetic:
                raise DatasetError(f"synthetic sample {s.path} has no provenance record")
        labels = {s.label for s in self.real} | set(self.real.empty_classes) | {s.label for s in self.synthetic}
        if classes is None:
            classes = sorted(labels)
        unknown = labels - set(classes)
        if unknown:
            raise DatasetError(f"labels {sorted(unknown)} are not in classes {list(classes)}")
        self.classes: list[str] = list(classes)
        self.val = val
        self.test = test
        self.plan = dict(plan) if plan is not None else None

    @classmethod
    def from_folders(
        cls,
        real: str | os.PathLike[str] | Dataset,
        synthetic: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] = (),
        **kwargs: Any,
    ) -> AugmentedDataset:
        """Real images from a class folder (or Dataset) plus one or more synthaug output folders."""
        real_ds = Dataset.load(real)
        folders = [synthetic] if isinstance(synthetic, (str, os.PathLike)) else list(synthetic)
        synth: list[Sample] = []
        for folder in folders:
            synth.extend(synthetic_samples(Path(folder)))
        return cls(real_ds, synth, **kwargs)

    @property
    def samples(self) -> tuple[Sample, ...]:
        """Real samples then synthetic samples."""
        return tuple(self.real) + self.synthetic

    @property
    def class_to_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.classes)}

    def counts(self) -> dict[str, dict[str, int]]:
        """``{class: {"real": n, "synthetic": m, "total": n + m}}``."""
        out = {c: {"real": 0, "synthetic": 0, "total": 0} for c in self.classes}
        for s in self.samples:
            key = "synthetic" if s.is_synthetic else "real"
            out[s.label][key] += 1
            out[s.label]["total"] += 1
        return out

    def __len__(self) -> int:
        return len(self.real) + len(self.synthetic)

    def __getitem__(self, index):  # type: ignore[override]
        return self.samples[index]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __repr__(self) -> str:
        return f"AugmentedDataset({len(self.real)} real + {len(self.synthetic)} synthetic, {len(self.classes)} classes)"

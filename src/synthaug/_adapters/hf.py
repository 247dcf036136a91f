"""An :class:`~synthaug._augmented.AugmentedDataset` as a Hugging Face ``datasets.Dataset``.

Columns: ``image`` (``datasets.Image``), ``label`` (``ClassLabel`` whose names are
``AugmentedDataset.classes``, in that order, so indices equal ``class_to_index``),
``is_synthetic``, ``generator`` and ``seed`` (from the manifest record; None for real images)
and ``source``: for a real image its file path, for a synthetic one what the generator made
it from (the training image a classic transform started from, or the diffusion base model;
None when the record names neither).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._optional import require
from . import mixed_samples

if TYPE_CHECKING:  # pragma: no cover
    from .._dataset import Sample
    from . import AugmentedData

__all__ = ["make_hf_dataset"]


def _source(sample: Sample) -> str | None:
    if not sample.is_synthetic:
        return str(sample.path)
    record = sample.provenance or {}
    value = record.get("source") or record.get("base_model")
    return None if value is None else str(value)


def make_hf_dataset(data: AugmentedData, split: str = "train", *, include_synthetic: bool = True,
                    embed_images: bool = False) -> Any:
    """The ``datasets.Dataset`` of ``split`` (train: real then synthetic; val/test: real only).

    Images are referenced by path (decoded lazily); ``embed_images=True`` stores their bytes
    in the dataset instead, so that it survives moving or deleting the image folders.
    """
    datasets = require("datasets", purpose="AugmentedDataset.to_hf()")
    samples = mixed_samples(data, split, include_synthetic=include_synthetic).base
    features = datasets.Features({
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=list(data.classes)),
        "is_synthetic": datasets.Value("bool"),
        "generator": datasets.Value("string"),
        "seed": datasets.Value("int64"),
        "source": datasets.Value("string"),
    })
    mapping = data.class_to_index
    columns = {
        "image": [{"path": str(s.path), "bytes": s.path.read_bytes() if embed_images else None} for s in samples],
        "label": [mapping[s.label] for s in samples],
        "is_synthetic": [s.is_synthetic for s in samples],
        "generator": [(s.provenance or {}).get("generator") for s in samples],
        "seed": [(s.provenance or {}).get("seed") for s in samples],
        "source": [_source(s) for s in samples],
    }
    return datasets.Dataset.from_dict(columns, features=features)

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

from ._dataset import Dataset, Sample
from ._errors import DatasetError, LeakageError
from ._store import Store

__all__ = ["AugmentedDataset", "synthetic_samples"]


#: ``to_tf``'s keywords that may also be given by position, in order (kept for compatibility).
TF_POSITIONAL = ("image_size", "batch_size", "shuffle", "seed")


def _positional_options(values: Sequence[Any], names: Sequence[str], options: Mapping[str, Any],
                        caller: str) -> dict[str, Any]:
    """``options`` plus ``values`` given by position for the first ``names``."""
    if len(values) > len(names):
        raise TypeError(f"{caller} takes at most {len(names)} positional arguments ({', '.join(names)})")
    clash = sorted(set(names[: len(values)]) & set(options))
    if clash:
        raise TypeError(f"{caller} got multiple values for {', '.join(clash)}")
    return {**dict(zip(names, values)), **options}


def synthetic_samples(out_dir: str | os.PathLike[str], records: Sequence[Mapping[str, Any]] | None = None) -> list[Sample]:
    """Samples for the images recorded in ``out_dir/manifest.jsonl`` (in manifest order).

    Each sample's ``provenance`` is its record itself (``records``, or the parsed manifest), not
    a copy: a large run keeps one copy of its records in memory."""
    store = Store(out_dir)
    if records is None:
        if not store.manifest_path.is_file():
            raise DatasetError(f"{str(out_dir)!r} has no manifest.jsonl; is it a synthaug output folder?")
        records = store.records()
    paths = store.confiner.resolve_all(records, listed_in=store.main_manifest_path)  # confined to OUT
    return [Sample(path, r["class"], split="train", provenance=r) for path, r in zip(paths, records)]


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
        labels |= {s.label for held in (val, test) if held is not None for s in held}
        if classes is None:
            classes = sorted(labels)
        unknown = labels - set(classes)
        if unknown:
            raise DatasetError(f"labels {sorted(unknown)} are not in classes {list(classes)}")
        self.classes: list[str] = list(classes)
        self.val = val
        self.test = test
        self._check_held_out()
        self.plan = dict(plan) if plan is not None else None

    def _check_held_out(self) -> None:
        """Validation/test data are real-only and share no file with the training data."""
        if self.val is None and self.test is None:
            return
        from ._paths import realpaths

        train_paths = set(realpaths(s.path for s in self.samples))
        for name in ("val", "test"):
            held = getattr(self, name)
            if held is None:
                continue
            for s in held:
                if s.is_synthetic:
                    raise LeakageError(
                        f"{name} sample {s.path} is synthetic; validation and test data must be real images only"
                    )
                if os.path.realpath(s.path) in train_paths:
                    raise LeakageError(
                        f"{name} image {s.path} is also a training image; remove it from one of the splits"
                    )

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

    # -- framework adapters ---------------------------------------------------------------
    def to_torch(self, split: str = "train", **options: Any) -> Any:
        """A ``torch.utils.data.Dataset`` of ``(image, label[, weight][, is_synthetic])``.

        ``split``: ``"train"`` (real + synthetic), ``"val"`` or ``"test"`` (real only: asking
        for synthetic mixing there raises :class:`~synthaug._errors.LeakageError`).
        ``image``: float32 CxHxW in [0, 1] resized to ``image_size`` (int or (height, width)),
        or ``transform(pil_image)``. ``label``: index in :attr:`class_to_index` (``label_mode="soft"``:
        a float32 probability vector, a synthetic image's ``soft_label`` or one-hot).
        ``mixing="concat"`` serves real then synthetic samples; ``mixing="probability"`` serves
        each real sample, replaced with probability ``p`` by a synthetic one of its class
        (call ``set_epoch`` per epoch, or use :meth:`to_torch_loader`, which does).
        ``synthetic_weight``: add a per-sample weight (this value for synthetic, 1 for real).
        ``cache``: keep decoded images in memory (True, or a shared ``ImageCache``).
        ``options`` are the fields of :class:`synthaug._adapters.TorchOptions` (``image_size``,
        ``mixing``, ``p``, ``synthetic_weight``, ``include_synthetic``, ``return_is_synthetic``,
        ``transform``, ``cache``, ``seed``), defined once there with their defaults.
        """
        from ._adapters.torch import make_torch_dataset

        return make_torch_dataset(self, split, **options)

    def to_torch_loader(
        self, split: str = "train", *, batch_size: int = 32, shuffle: bool | None = None, seed: int = 0,
        num_workers: int = 0, drop_last: bool = False, **dataset_kwargs: Any,
    ) -> Any:
        """A ``torch.utils.data.DataLoader`` over :meth:`to_torch` (``dataset_kwargs`` go there).

        Shuffles the training split by default with a new seeded order (and new probability
        mixing draws) every epoch.
        """
        from ._adapters.torch import make_torch_loader

        return make_torch_loader(self, split, batch_size=batch_size, shuffle=shuffle, seed=seed,
                                 num_workers=num_workers, drop_last=drop_last, **dataset_kwargs)

    def to_tf(self, *positional: Any, split: str = "train", **options: Any) -> Any:
        """A prefetched ``tf.data.Dataset`` of ``(images, labels[, weights][, is_synthetic])``.

        Images are float32 (B, H, W, 3) in [0, 255] decoded with ``tf.io``; labels are int32
        indices of :attr:`class_to_index`, one-hot (``label_mode="categorical"``) or probability
        vectors (``label_mode="soft"``: a synthetic image's ``soft_label``, one-hot otherwise).
        ``shuffle`` defaults to True for the training split. Mixing, weights and the
        real-only rule for ``val``/``test`` are as in :meth:`to_torch`; probability draws
        change every epoch and are reproducible from ``seed``.
        ``options`` are the fields of :class:`synthaug._adapters.TfOptions` (``image_size=224``,
        ``batch_size=32``, ``shuffle``, ``seed``, ``label_mode``, ``mixing``, ``p``,
        ``synthetic_weight``, ``include_synthetic``, ``return_is_synthetic``, ``cache``,
        ``drop_remainder``), defined once there; the first four may also be given by position.
        """
        from ._adapters.keras import make_tf_dataset

        return make_tf_dataset(self, split, **_positional_options(positional, TF_POSITIONAL, options, "to_tf()"))

    def to_hf(self, split: str = "train", *, include_synthetic: bool = True, embed_images: bool = False) -> Any:
        """A Hugging Face ``datasets.Dataset`` with columns ``image``, ``label`` (a ``ClassLabel``
        named and ordered as :attr:`class_to_index`), ``is_synthetic``, ``generator``, ``seed``
        and ``source`` (see :mod:`synthaug._adapters.hf`). Val/test are real-only, as everywhere.
        """
        from ._adapters.hf import make_hf_dataset

        return make_hf_dataset(self, split, include_synthetic=include_synthetic, embed_images=embed_images)

    def __len__(self) -> int:
        return len(self.real) + len(self.synthetic)

    def __getitem__(self, index):  # type: ignore[override]
        return self.samples[index]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __repr__(self) -> str:
        return f"AugmentedDataset({len(self.real)} real + {len(self.synthetic)} synthetic, {len(self.classes)} classes)"

"""PyTorch adapter: an :class:`~synthaug.augmented.AugmentedDataset` as a ``torch`` dataset.

>>> ds = augmented.to_torch(image_size=224)                     # doctest: +SKIP
>>> loader = augmented.to_torch_loader(batch_size=32, image_size=224, shuffle=True)  # doctest: +SKIP

Items are ``(image, label)``: ``image`` a float32 ``CxHxW`` tensor in ``[0, 1]`` (or whatever
``transform`` returns from the RGB PIL image), ``label`` the class index of
``AugmentedDataset.class_to_index``. With ``synthetic_weight`` a per-sample weight follows
(``synthetic_weight`` for synthetic images, 1.0 for real ones); with
``return_is_synthetic=True`` a bool flag comes last. torch is imported lazily: a missing
installation raises :class:`~synthaug.errors.MissingDependencyError` with the pip command.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._optional import require
from . import MixedSamples, TorchOptions, adapter_options, mixed_samples, normalize_image_size
from ._decode import ImageCache, decode_resized

if TYPE_CHECKING:  # pragma: no cover
    from ..augmented import AugmentedDataset

__all__ = ["SynthaugTorchDataset", "make_torch_dataset", "make_torch_loader"]


def _torch():
    return require("torch", purpose="the PyTorch dataset adapter (AugmentedDataset.to_torch)")


def _pil_to_tensor(image) -> Any:
    """uint8 HxWxC PIL image -> contiguous uint8 CxHxW tensor.

    The channel reordering is done once here, on bytes, so the float conversion and the
    batch collation copy contiguous memory (a permuted view makes ``torch.stack`` gather
    strided elements, about 1 ms per 224 px image).
    """
    import numpy as np

    torch = _torch()
    return torch.from_numpy(np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)))


def _base_class():
    return _torch().utils.data.Dataset


class SynthaugTorchDataset:
    """Map-style dataset over :class:`~synthaug.adapters.MixedSamples` (built by ``to_torch``).

    Call :meth:`set_epoch` at the start of each epoch in ``probability`` mixing mode so that
    every epoch draws new replacements (like ``DistributedSampler.set_epoch``).
    """

    def __init__(
        self,
        mixed: MixedSamples,
        *,
        image_size: tuple[int, int] | None,
        transform: Callable[[Any], Any] | None = None,
        return_is_synthetic: bool = False,
        cache: ImageCache | None = None,
    ) -> None:
        self.mixed = mixed
        self.image_size = image_size
        self.transform = transform
        self.return_is_synthetic = return_is_synthetic
        self.cache = cache
        self.epoch = 0

    @property
    def classes(self) -> list[str]:
        return sorted(self.mixed.class_to_index, key=self.mixed.class_to_index.__getitem__)

    @property
    def class_to_index(self) -> dict[str, int]:
        return dict(self.mixed.class_to_index)

    @property
    def targets(self) -> list[int]:
        """Label index of every item (of the un-replaced base samples), like torchvision's."""
        return [self.mixed.label_of(s) for s in self.mixed.base]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose replacement draws are served (probability mixing)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.mixed)

    def _image(self, sample) -> Any:
        if self.transform is not None:
            return self.transform(decode_resized(sample.path, self.image_size))
        if self.cache is not None:
            pixels = self.cache.get(sample.path, self.image_size, lambda p, s: _pil_to_tensor(decode_resized(p, s)))
        else:
            pixels = _pil_to_tensor(decode_resized(sample.path, self.image_size))
        return pixels.float().div_(255.0)

    def __getitem__(self, index: int | tuple[int, int]) -> tuple[Any, ...]:
        """Item ``index``; ``(epoch, index)`` selects the epoch's draw explicitly (used by the
        loader's sampler so that worker processes see the right epoch)."""
        torch = _torch()
        epoch = self.epoch
        if isinstance(index, tuple):
            epoch, index = index
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        sample = self.mixed.draw(index % len(self), epoch)
        out: list[Any] = [self._image(sample), self.mixed.label_of(sample)]
        if self.mixed.synthetic_weight is not None:
            out.append(torch.tensor(self.mixed.weight_of(sample), dtype=torch.float32))
        if self.return_is_synthetic:
            out.append(sample.is_synthetic)
        return tuple(out)


def _as_torch_dataset(instance: SynthaugTorchDataset) -> Any:
    """Give the instance ``torch.utils.data.Dataset`` as a base class (torch imported lazily).

    The combined class is created once and stored in this module as ``TorchDataset`` so that
    instances pickle (DataLoader workers).
    """
    cls = globals().get("TorchDataset")
    if cls is None:
        cls = type("TorchDataset", (SynthaugTorchDataset, _base_class()), {"__module__": __name__})
        globals()["TorchDataset"] = cls
    instance.__class__ = cls
    return instance


def make_torch_dataset(data: AugmentedDataset, split: str = "train", **keywords: Any) -> SynthaugTorchDataset:
    """Build the torch dataset of ``split``; ``keywords`` are :class:`~synthaug.adapters.TorchOptions`
    (see :meth:`AugmentedDataset.to_torch`)."""
    _torch()
    o = adapter_options(TorchOptions, keywords, "to_torch()")
    size = normalize_image_size(o.image_size)
    mixed = mixed_samples(data, split, o)
    image_cache = ImageCache() if o.cache is True else (o.cache or None)
    dataset = SynthaugTorchDataset(mixed, image_size=size, transform=o.transform,
                                   return_is_synthetic=o.return_is_synthetic, cache=image_cache)
    return _as_torch_dataset(dataset)


class _EpochSampler:
    """Random permutation per epoch that also tells a probability-mixing dataset its epoch."""

    def __init__(self, dataset: SynthaugTorchDataset, shuffle: bool, seed: int) -> None:
        self.dataset = dataset
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self):
        torch = _torch()
        epoch = self.epoch
        self.dataset.set_epoch(epoch)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(len(self.dataset), generator=generator).tolist()
        else:
            order = list(range(len(self.dataset)))
        self.epoch += 1
        return iter([(epoch, i) for i in order])


def make_torch_loader(
    data: AugmentedDataset | SynthaugTorchDataset,
    split: str = "train",
    *,
    batch_size: int = 32,
    shuffle: bool | None = None,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool = False,
    **dataset_kwargs: Any,
) -> Any:
    """A ``DataLoader`` over ``data`` (an AugmentedDataset or a dataset from ``to_torch``).

    ``shuffle`` defaults to True for ``train`` and False otherwise; every epoch gets a new
    seeded permutation and, in probability mixing mode, new replacement draws.
    """
    torch = _torch()
    from ..errors import InvalidParameterError

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidParameterError("batch_size", batch_size, "a positive integer")
    if isinstance(data, SynthaugTorchDataset):
        if dataset_kwargs:
            raise InvalidParameterError("dataset options", sorted(dataset_kwargs), "none when a dataset is given")
        dataset = data
    else:
        dataset = make_torch_dataset(data, split, seed=seed, **dataset_kwargs)
    if shuffle is None:
        shuffle = split == "train"
    sampler = _EpochSampler(dataset, bool(shuffle), seed)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=drop_last,
        persistent_workers=False,
    )

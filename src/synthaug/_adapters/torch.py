"""PyTorch adapter: an :class:`~synthaug._augmented.AugmentedDataset` as a ``torch`` dataset.

>>> ds = augmented.to_torch(image_size=224)                     # doctest: +SKIP
>>> loader = augmented.to_torch_loader(batch_size=32, image_size=224, shuffle=True)  # doctest: +SKIP

Items are ``(image, label)``: ``image`` a float32 ``CxHxW`` tensor in ``[0, 1]`` (or whatever
``transform`` returns from the RGB PIL image), ``label`` the class index of
``AugmentedDataset.class_to_index`` (``label_mode="soft"``: a float32 probability vector over the
classes, the record's ``soft_label`` or one-hot). With ``synthetic_weight`` a per-sample weight follows
(``synthetic_weight`` for synthetic images, 1.0 for real ones); with
``return_is_synthetic=True`` a bool flag comes last. torch is imported lazily: a missing
installation raises :class:`~synthaug._errors.MissingDependencyError` with the pip command.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._optional import require
from . import MixedSamples, TorchOptions, adapter_options, mixed_samples, normalize_image_size
from ._decode import ImageCache, decode_for_size, decode_resized

if TYPE_CHECKING:  # pragma: no cover
    from . import AugmentedData

__all__ = ["SynthaugTorchDataset", "make_torch_dataset", "make_torch_loader"]


def _torch():
    return require("torch", purpose="the PyTorch dataset adapter (AugmentedDataset.to_torch)")


def _decode_tensor(path: Any, size: tuple[int, int] | None) -> Any:
    """``path`` as a contiguous uint8 ``CxHxW`` tensor at ``size`` = (height, width).

    Pillow decodes (a JPEG at a reduced DCT scale when that still covers ``size``); torch
    resizes, with its uint8 bilinear filter with antialiasing: the filter of Pillow's
    ``BILINEAR`` (values within 2 levels of Pillow's; about 1.5 % of them differ), at about
    twice its speed. The result is contiguous, so the batch collation copies plain memory.
    """
    import numpy as np

    torch = _torch()
    chw = torch.from_numpy(decode_for_size(path, size, np.array)).permute(2, 0, 1)
    if size is not None and tuple(chw.shape[1:]) != tuple(size):
        chw = torch.nn.functional.interpolate(chw[None], size=tuple(size), mode="bilinear", antialias=True,
                                              align_corners=False)[0]
    return chw.contiguous()


def _base_class():
    return _torch().utils.data.Dataset


class SynthaugTorchDataset:
    """Map-style dataset over :class:`~synthaug._adapters.MixedSamples` (built by ``to_torch``).

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
        label_mode: str = "int",
    ) -> None:
        self.mixed = mixed
        self.label_mode = label_mode
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

    def _pixels(self, sample) -> Any:
        """``sample`` as a uint8 ``CxHxW`` tensor at :attr:`image_size` (from the cache if any)."""
        if self.cache is not None:
            return self.cache.get(sample.path, self.image_size, _decode_tensor)
        return _decode_tensor(sample.path, self.image_size)

    def _image(self, sample, as_uint8: bool = False) -> Any:
        if self.transform is not None:
            return self.transform(decode_resized(sample.path, self.image_size))
        pixels = self._pixels(sample)
        return pixels if as_uint8 else pixels.float().div_(255.0)

    def __getitem__(self, index: int | tuple[int, int] | tuple[int, int, bool]) -> tuple[Any, ...]:
        """Item ``index``; ``(epoch, index)`` selects the epoch's draw explicitly (used by the
        loader's sampler so that worker processes see the right epoch). The loader also asks
        for ``(epoch, index, True)``: the same item with uint8 pixels, which it converts to
        float per batch (see :func:`make_torch_loader`)."""
        torch = _torch()
        epoch, as_uint8 = self.epoch, False
        if isinstance(index, tuple):
            epoch, index, *rest = index
            as_uint8 = bool(rest and rest[0])
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        sample = self.mixed.draw(index % len(self), epoch)
        label = (torch.tensor(self.mixed.target_of(sample), dtype=torch.float32) if self.label_mode == "soft"
                 else self.mixed.label_of(sample))
        out: list[Any] = [self._image(sample, as_uint8), label]
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


def make_torch_dataset(data: AugmentedData, split: str = "train", **keywords: Any) -> SynthaugTorchDataset:
    """Build the torch dataset of ``split``; ``keywords`` are :class:`~synthaug._adapters.TorchOptions`
    (see :meth:`AugmentedDataset.to_torch`)."""
    _torch()
    o = adapter_options(TorchOptions, keywords, "to_torch()")
    size = normalize_image_size(o.image_size)
    if o.label_mode not in ("int", "soft"):
        from .._errors import InvalidParameterError

        raise InvalidParameterError("label_mode", o.label_mode, "'int' (class indices) or 'soft' (probability vectors)")
    mixed = mixed_samples(data, split, o)
    image_cache = ImageCache() if o.cache is True else (o.cache or None)
    dataset = SynthaugTorchDataset(mixed, image_size=size, transform=o.transform,
                                   return_is_synthetic=o.return_is_synthetic, cache=image_cache,
                                   label_mode=o.label_mode)
    return _as_torch_dataset(dataset)


class _EpochSampler:
    """Random permutation per epoch that also tells a probability-mixing dataset its epoch.

    Yields ``(epoch, index, as_uint8)`` keys (see :meth:`SynthaugTorchDataset.__getitem__`).
    """

    def __init__(self, dataset: SynthaugTorchDataset, shuffle: bool, seed: int, as_uint8: bool = False) -> None:
        self.dataset = dataset
        self.shuffle = shuffle
        self.seed = seed
        self.as_uint8 = as_uint8
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
        return iter([(epoch, i, self.as_uint8) for i in order])


def _collate_uint8(batch: list[tuple[Any, ...]]) -> list[Any]:
    """``default_collate``, then the uint8 image batch to float32 in [0, 1] in one operation:
    the same values as converting each image, with a quarter of the bytes stacked and one
    conversion per batch; in a worker process the float batch is written straight into shared
    memory, so sending it to the loader copies nothing."""
    torch = _torch()
    collated = list(torch.utils.data.default_collate(batch))
    images = torch.empty(collated[0].shape, dtype=torch.float32)
    if torch.utils.data.get_worker_info() is not None:
        images.share_memory_()  # in a worker process: written once, sent to the loader without a copy
    collated[0] = images.copy_(collated[0]).div_(255.0)
    return collated


def make_torch_loader(
    data: AugmentedData | SynthaugTorchDataset,
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
    from .._errors import InvalidParameterError

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
    as_uint8 = dataset.transform is None  # a transform's output is collated as it is
    sampler = _EpochSampler(dataset, bool(shuffle), seed, as_uint8)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=drop_last,
        persistent_workers=False, collate_fn=_collate_uint8 if as_uint8 else None,
    )

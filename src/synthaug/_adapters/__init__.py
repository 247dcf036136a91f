"""Dataset adapters: an :class:`~synthaug._augmented.AugmentedDataset` as a framework dataset.

- :mod:`synthaug._adapters.torch`: a ``torch.utils.data.Dataset`` and a ``DataLoader`` builder.
- :mod:`synthaug._adapters.keras`: a prefetched ``tf.data.Dataset`` for Keras.

Both share what is defined here (no framework is imported by this module): the split rules
(validation and test data are real-only, always), the two mixing modes, and one class-to-index
mapping (``AugmentedDataset.class_to_index``) used by both adapters and by real and synthetic
samples alike.

Mixing modes (training split only):

``"concat"``
    every real sample followed by every synthetic sample;
``"probability"``
    one item per real sample; each time it is read, it is replaced with probability ``p`` by a
    synthetic sample of the same class drawn uniformly (classes without synthetic samples stay
    real). The draw changes every epoch and is reproducible from ``seed`` and the epoch.

Soft labels (``label_mode="soft"``): each item's target is a probability vector over the
classes: the ``soft_label`` of its manifest record (Diff-Mix translations, see
docs/recipes.md) or, for every other image, the one-hot vector of its class.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .._errors import InvalidParameterError, LeakageError

if TYPE_CHECKING:  # pragma: no cover
    from .._dataset import Dataset, Sample

__all__ = [
    "AugmentedData",
    "MIXING_MODES",
    "SPLITS",
    "MixedSamples",
    "MixingOptions",
    "TfOptions",
    "TorchOptions",
    "adapter_options",
    "mixed_samples",
    "normalize_image_size",
    "soft_target",
    "source_names",
]

MIXING_MODES = ("concat", "probability")
SPLITS = ("train", "val", "test")


# -- the adapters' keywords: each defined once, here ------------------------------------------
class AugmentedData(Protocol):
    """What an adapter reads of an :class:`~synthaug.AugmentedDataset` (real and synthetic
    samples, the class order, the held-out splits); the adapters depend on this, not on the class."""

    real: Dataset
    synthetic: Sequence[Sample]
    classes: list[str]
    val: Dataset | None
    test: Dataset | None

    @property
    def class_to_index(self) -> dict[str, int]: ...


@dataclass(frozen=True)
class MixingOptions:
    """The split-and-mixing keywords every adapter takes (see the module docstring).

    ``mixing``: ``"concat"`` or ``"probability"`` (training split only); ``p``: the replacement
    probability of ``"probability"`` mixing; ``synthetic_weight``: add a per-sample weight (this
    value for synthetic samples, 1 for real ones); ``include_synthetic``: False serves the real
    training images only; ``return_is_synthetic``: add an is-synthetic flag to every item;
    ``seed``: seeds shuffles and probability draws.
    """

    mixing: str = "concat"
    p: float | None = None
    synthetic_weight: float | None = None
    include_synthetic: bool = True
    return_is_synthetic: bool = False
    seed: int = 0


@dataclass(frozen=True)
class TorchOptions(MixingOptions):
    """Keywords of ``AugmentedDataset.to_torch``: the mixing ones plus ``image_size`` (int or
    ``(height, width)``; ``None`` keeps each image's size), ``transform(pil_image)`` and
    ``cache`` (keep decoded images in memory: True, or a shared ``ImageCache``)."""

    image_size: int | Sequence[int] | None = None
    transform: Callable[[Any], Any] | None = None
    cache: Any = False
    label_mode: str = "int"


@dataclass(frozen=True)
class TfOptions(MixingOptions):
    """Keywords of ``AugmentedDataset.to_tf``: the mixing ones plus the ``tf.data`` ones."""

    image_size: int | Sequence[int] = 224
    batch_size: int | None = 32
    shuffle: bool | None = None
    label_mode: str = "int"
    cache: bool = False
    drop_remainder: bool = False


_Options = TypeVar("_Options", bound=MixingOptions)


def adapter_options(cls: type[_Options], keywords: Mapping[str, Any], caller: str) -> _Options:
    """``cls(**keywords)``; an unknown keyword is an error naming ``caller`` and the valid keywords."""
    valid = [f.name for f in fields(cls)]
    unknown = sorted(set(keywords) - set(valid))
    if unknown:
        others = f" (nor {', '.join(unknown[1:])})" if len(unknown) > 1 else ""
        raise InvalidParameterError(unknown[0], keywords[unknown[0]],
                                    f"not a keyword of {caller}{others}; valid keywords: {', '.join(valid)}")
    return cls(**keywords)


def normalize_image_size(image_size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """``(height, width)`` from an int (square), a pair, or ``None`` (keep each image's size)."""
    if image_size is None:
        return None
    if isinstance(image_size, bool):
        raise InvalidParameterError("image_size", image_size, "an int or a (height, width) pair of positive ints")
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    try:
        height, width = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            "image_size", image_size, "an int or a (height, width) pair of positive ints"
        ) from None
    if height <= 0 or width <= 0:
        raise InvalidParameterError("image_size", image_size, "positive sizes")
    return height, width


@dataclass(frozen=True)
class MixedSamples:
    """What an adapter serves for one split, framework-free.

    ``base`` are the items of one epoch in order (real, then synthetic in ``concat`` mode);
    in ``probability`` mode ``synthetic_by_class`` holds the replacement pool per class index.
    """

    base: tuple[Sample, ...]
    class_to_index: Mapping[str, int]
    mode: str = "concat"
    p: float = 0.0
    synthetic_by_class: Mapping[int, tuple[Sample, ...]] = field(default_factory=dict)
    synthetic_weight: float | None = None
    seed: int = 0

    def __len__(self) -> int:
        return len(self.base)

    def label_of(self, sample: Sample) -> int:
        return self.class_to_index[sample.label]

    def draw(self, index: int, epoch: int = 0) -> Sample:
        """The sample served at ``index`` in ``epoch`` (a replacement in probability mode)."""
        sample = self.base[index]
        if self.mode != "probability" or self.p <= 0:
            return sample
        pool = self.synthetic_by_class.get(self.label_of(sample), ())
        if not pool:
            return sample
        rng = random.Random(f"{self.seed}:{epoch}:{index}")
        if rng.random() >= self.p:
            return sample
        return pool[rng.randrange(len(pool))]

    def target_of(self, sample: Sample) -> list[float]:
        """The probability target of ``sample`` (see :func:`soft_target`)."""
        return soft_target(sample, self.class_to_index)

    def weight_of(self, sample: Sample) -> float:
        """``synthetic_weight`` for synthetic samples, 1.0 for real ones."""
        if self.synthetic_weight is not None and sample.is_synthetic:
            return float(self.synthetic_weight)
        return 1.0

    @property
    def all_samples(self) -> tuple[Sample, ...]:
        """Every sample that can be served (base plus replacement pools)."""
        extra = tuple(s for pool in self.synthetic_by_class.values() for s in pool)
        return self.base + extra


def soft_target(sample: Sample, class_to_index: Mapping[str, int]) -> list[float]:
    """``sample``'s target as probabilities over the classes: its record's ``soft_label``
    (``{class: weight}``, weights >= 0 summing to 1) or the one-hot vector of its class.
    A soft label naming an unknown class, or with bad weights, is an :class:`InvalidParameterError`."""
    target = [0.0] * len(class_to_index)
    soft = (sample.provenance or {}).get("soft_label")
    if not soft:
        target[class_to_index[sample.label]] = 1.0
        return target
    unknown = sorted(set(soft) - set(class_to_index))
    weights = [float(w) for w in soft.values()]
    if unknown or min(weights) < 0 or abs(sum(weights) - 1.0) > 1e-6:
        raise InvalidParameterError("soft_label", dict(soft), f"weights >= 0 summing to 1 over the classes "
                                    f"{sorted(class_to_index)} (image {sample.path})")
    for label, weight in soft.items():
        target[class_to_index[label]] = float(weight)
    return target


def _check_real_only(samples: Sequence[Sample], split: str) -> None:
    synthetic = [s for s in samples if s.is_synthetic]
    if synthetic:
        raise LeakageError(
            f"the {split} split holds {len(synthetic)} synthetic image(s) (e.g. {synthetic[0].path}); "
            "validation and test data must be real images only"
        )


def mixed_samples(data: AugmentedData, split: str = "train", options: MixingOptions | None = None,
                  **keywords: Any) -> MixedSamples:
    """Validate adapter arguments and resolve the samples an adapter serves for ``split``.

    ``options`` (or the :class:`MixingOptions` ``keywords``) say how to mix.

    Raises :class:`~synthaug._errors.LeakageError` when synthetic images would reach ``val`` or
    ``test`` and :class:`~synthaug._errors.InvalidParameterError` for bad mixing arguments.
    """
    o = options if options is not None else adapter_options(MixingOptions, keywords, "mixed_samples()")
    mixing, p, synthetic_weight, seed = o.mixing, o.p, o.synthetic_weight, o.seed
    if split not in SPLITS:
        raise InvalidParameterError("split", split, "one of 'train', 'val', 'test'")
    if mixing not in MIXING_MODES:
        raise InvalidParameterError("mixing", mixing, "'concat' or 'probability'")
    if synthetic_weight is not None and (isinstance(synthetic_weight, bool) or not float(synthetic_weight) >= 0):
        raise InvalidParameterError("synthetic_weight", synthetic_weight, "a number >= 0, or None for no weights")
    mapping = data.class_to_index
    if split != "train":
        if mixing == "probability" or (p is not None and p > 0):
            raise LeakageError(
                f"synthetic mixing was requested for the {split} split; validation and test data are "
                "real-only (mix synthetic images into split='train' only)"
            )
        held = getattr(data, split)
        if held is None:
            raise InvalidParameterError(
                "split", split, f"a split the dataset has; this AugmentedDataset has no {split} data",
                "build it from a split root (ROOT/{train,val,test}) or pass val=/test=",
            )
        _check_real_only(list(held), split)
        return MixedSamples(tuple(held), mapping, synthetic_weight=synthetic_weight, seed=seed)
    real = tuple(data.real)
    _check_real_only(real, "real training")
    synthetic = data.synthetic if o.include_synthetic else ()
    if mixing == "concat":
        if p is not None:
            raise InvalidParameterError("p", p, "None with mixing='concat' (p is for mixing='probability')")
        return MixedSamples(real + tuple(synthetic), mapping, synthetic_weight=synthetic_weight, seed=seed)
    if p is None or isinstance(p, bool) or not 0 <= float(p) <= 1:
        raise InvalidParameterError("p", p, "a probability in [0, 1], required with mixing='probability'")
    pools: dict[int, list[Sample]] = {}
    for s in synthetic:
        pools.setdefault(mapping[s.label], []).append(s)
    return MixedSamples(
        real, mapping, "probability", float(p), {k: tuple(v) for k, v in pools.items()}, synthetic_weight, seed
    )


def source_names(samples: Sequence[Sample]) -> set[str]:
    """File names of the real images that generated samples were made from (when recorded)."""
    out = set()
    for s in samples:
        source = (s.provenance or {}).get("source")
        if isinstance(source, str):
            out.add(Path(source).name)
    return out


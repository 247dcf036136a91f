"""Keras / TensorFlow adapter: an :class:`~synthaug._augmented.AugmentedDataset` as ``tf.data``.

>>> train = augmented.to_tf(image_size=224, batch_size=32, shuffle=True, seed=0)  # doctest: +SKIP
>>> model.fit(train, validation_data=augmented.to_tf(split="val", image_size=224))  # doctest: +SKIP

Elements are batches of ``(images, labels)``: images float32 ``(B, H, W, 3)`` in ``[0, 255]``
(as ``keras.utils.image_dataset_from_directory`` gives them), labels int32 class indices or
one-hot float32 (``label_mode="categorical"``) or float32 probability vectors (``label_mode="soft"``:
the record's ``soft_label``, one-hot for other images). With ``synthetic_weight`` a per-sample
weight follows (Keras reads ``(x, y, sample_weight)``); with ``return_is_synthetic=True`` a
bool flag per sample comes last (for inspection; do not pass that form to ``fit``). Images hold
the pixels of synthaug's one decoder (:func:`synthaug._imageio.decode_image`: EXIF orientation,
16-bit grey, transparency composited on black, CMYK), the pixels of ``to_torch`` and
``synthaug.load_image``. Datasets of plain JPEGs only (RGB or grey, no EXIF rotation) are
decoded by ``tf.io`` instead, which gives those same pixels at full scale (the accurate integer
IDCT, as Pillow's) and, when the target size allows it, decodes at a reduced DCT scale (1/2,
1/4, 1/8; pixels then differ from the full decode by resampling only). Any other dataset is
decoded by synthaug's decoder through ``tf.numpy_function``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._errors import InvalidParameterError
from .._optional import require
from . import MixedSamples, TfOptions, adapter_options, mixed_samples, normalize_image_size

if TYPE_CHECKING:  # pragma: no cover
    from . import AugmentedData

__all__ = ["make_tf_dataset", "jpeg_ratio"]

LABEL_MODES = ("int", "categorical", "soft")


def _tf():
    return require("tensorflow", purpose="the Keras/TensorFlow dataset adapter (AugmentedDataset.to_tf)")


def jpeg_ratio(paths: Sequence[Any], size: tuple[int, int] | None) -> int | None:
    """The largest JPEG DCT downscale (1, 2, 4 or 8) keeping every image >= ``size`` (1 when
    ``size`` is None).

    ``None`` when some file is not a plain JPEG (RGB or grey, no EXIF rotation): then the one
    decoder of synthaug is used (see the module docstring).
    """
    from PIL import Image

    if not paths:
        return None
    ratio = 1 if size is None else 8
    for path in paths:
        with Image.open(path) as image:
            if image.format != "JPEG" or image.mode not in ("RGB", "L") or image.getexif().get(0x0112, 1) != 1:
                return None
            width, height = image.size
        while ratio > 1 and (height // ratio < size[0] or width // ratio < size[1]):
            ratio //= 2
    return ratio


def _shared_pixels(path: bytes) -> Any:
    """``path`` (bytes, from the graph) decoded by synthaug's one decoder, as a uint8 HxWx3 array."""
    import numpy as np

    from .._imageio import load_image

    return np.asarray(load_image(path.decode()), dtype=np.uint8)


def _decoder(size: tuple[int, int] | None, ratio: int | None):
    tf = _tf()

    def decode(path):
        if ratio is not None:  # plain JPEGs only: at full scale Pillow's pixels, else the DCT speed path
            image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3, ratio=ratio,
                                      dct_method="INTEGER_ACCURATE" if ratio == 1 else "INTEGER_FAST")
        else:
            image = tf.numpy_function(_shared_pixels, [path], tf.uint8, stateful=False)
            image.set_shape([None, None, 3])
        if size is not None:
            image = tf.image.resize(image, size, method="bilinear")
        else:
            image = tf.cast(image, tf.float32)
        return image

    return decode


def _selector(mixed: MixedSamples, n_classes: int, soft_labels: bool = False):
    """(real index, seed pair) -> (path, label, is_synthetic) with probability replacement
    (``soft_labels``: the label is the served sample's probability target)."""
    tf = _tf()
    real_paths = tf.constant([str(s.path) for s in mixed.base])
    real_labels = tf.constant([mixed.label_of(s) for s in mixed.base], dtype=tf.int32)
    pool_paths, offsets, counts = [], [], []
    for k in range(n_classes):
        pool = mixed.synthetic_by_class.get(k, ())
        offsets.append(len(pool_paths))
        counts.append(len(pool))
        pool_paths.extend(str(s.path) for s in pool)
    synth_paths = tf.constant(pool_paths or [""])
    offsets_t = tf.constant(offsets, dtype=tf.int32)
    counts_t = tf.constant(counts, dtype=tf.int32)
    p = float(mixed.p)
    soft = None
    if soft_labels:
        pool = [s for k in range(n_classes) for s in mixed.synthetic_by_class.get(k, ())]
        soft = (tf.constant([mixed.target_of(s) for s in mixed.base], dtype=tf.float32),
                tf.constant([mixed.target_of(s) for s in pool] or [[0.0] * n_classes], dtype=tf.float32))

    def select(index, seed):
        label = real_labels[index]
        draws = tf.random.stateless_uniform([2], seed=seed)
        count = counts_t[label]
        replace = tf.logical_and(draws[0] < p, count > 0)
        pick = offsets_t[label] + tf.minimum(tf.cast(draws[1] * tf.cast(count, tf.float32), tf.int32),
                                             tf.maximum(count - 1, 0))
        pick = tf.minimum(pick, tf.size(synth_paths) - 1)
        path = tf.where(replace, synth_paths[pick], real_paths[index])
        if soft is not None:  # the probability target of the sample served
            label = tf.where(replace, soft[1][pick], soft[0][index])
        return path, label, replace

    return select


def make_tf_dataset(data: AugmentedData, split: str = "train", **keywords: Any) -> Any:
    """Build the ``tf.data.Dataset`` of ``split``; ``keywords`` are :class:`~synthaug._adapters.TfOptions`
    (see :meth:`AugmentedDataset.to_tf`)."""
    tf = _tf()
    o = adapter_options(TfOptions, keywords, "to_tf()")
    size = normalize_image_size(o.image_size)
    if o.label_mode not in LABEL_MODES:
        raise InvalidParameterError("label_mode", o.label_mode, "'int', 'categorical' or 'soft'")
    batch_size = o.batch_size
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise InvalidParameterError("batch_size", batch_size, "a positive integer or None (unbatched)")
    mixed = mixed_samples(data, split, o)
    cache, seed, label_mode, return_is_synthetic = o.cache, o.seed, o.label_mode, o.return_is_synthetic
    if cache and mixed.mode == "probability":
        raise InvalidParameterError("cache", cache, "False with mixing='probability' (draws change every epoch)")
    shuffle = split == "train" if o.shuffle is None else o.shuffle
    n_classes = len(mixed.class_to_index)
    decode = _decoder(size, jpeg_ratio([s.path for s in mixed.all_samples], size))
    autotune = tf.data.AUTOTUNE
    n = len(mixed)

    weight = mixed.synthetic_weight

    def finish(image, label, syn):
        target = tf.one_hot(label, n_classes, dtype=tf.float32) if label_mode == "categorical" else label
        # label_mode="soft": label is already the probability vector
        out: list[Any] = [image, target]
        if weight is not None:
            out.append(tf.where(syn, tf.constant(float(weight)), tf.constant(1.0)))
        if return_is_synthetic:
            out.append(syn)
        return tuple(out)

    if mixed.mode == "probability":
        select = _selector(mixed, n_classes, soft_labels=label_mode == "soft")

        def load(index, seed):
            path, label, syn = select(tf.cast(index, tf.int32), seed)
            return finish(decode(path), label, syn)

        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(tf.data.Dataset.range(n), seeds)
        if shuffle:
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(load, num_parallel_calls=autotune)
    else:
        paths = tf.constant([str(s.path) for s in mixed.base])
        labels = (tf.constant([mixed.target_of(s) for s in mixed.base], dtype=tf.float32) if label_mode == "soft"
                  else tf.constant([mixed.label_of(s) for s in mixed.base], dtype=tf.int32))
        flags = tf.constant([s.is_synthetic for s in mixed.base], dtype=tf.bool)
        ds = tf.data.Dataset.from_tensor_slices((paths, labels, flags))
        if cache:  # decode once, then reshuffle the decoded images every epoch
            ds = ds.map(lambda path, label, syn: (decode(path), label, syn), num_parallel_calls=autotune).cache()
            if shuffle:
                ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
            ds = ds.map(finish, num_parallel_calls=autotune)
        else:
            if shuffle:
                ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
            ds = ds.map(lambda path, label, syn: finish(decode(path), label, syn), num_parallel_calls=autotune)
    if batch_size is not None:
        ds = ds.batch(batch_size, drop_remainder=o.drop_remainder)
    return ds.prefetch(autotune)

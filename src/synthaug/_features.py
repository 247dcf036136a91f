"""Image feature spaces for sub-groups and the quality report, and the copy descriptor.

A *feature space* turns images into one vector each (rows of a float array). Three kinds:

- :class:`ColourTextureFeatures` (``"colour-texture"``): colour and texture statistics computed
  with numpy from the pixels; needs no download and works everywhere. It is the default.
- :class:`InceptionFeatures` (``"inception"``): the 2048-d pool features of the FID Inception
  network, through ``torch-fidelity``, used only when the package *and* its weights file are
  already on disk (nothing is downloaded).
- :class:`GeneratorFeatures`: any generator that defines ``features(paths) -> array`` (for
  example a diffusion generator returning pooled VAE latents) can serve as a feature space.

:func:`synthaug._extractors.resolve_feature_space` picks one from a spec (``"auto"`` prefers
Inception when it is available locally; DINOv2, CLIP and other learned spaces come from local
checkpoints through the ``register_feature_extractors`` hook, :mod:`synthaug._learned_features`).

Separately, :func:`copy_descriptor` gives the descriptor used to find near-copies: a
high-pass-filtered, normalised grey thumbnail compared by shift-tolerant normalised
cross-correlation (see :mod:`synthaug._quality.metrics`). It is deliberately *not* invariant
to flips and rotations: a flipped training image is a new image for a classifier.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ._errors import InvalidParameterError, MissingDependencyError

__all__ = [
    "COPY_MARGIN",
    "COPY_SIDE",
    "ColourTextureFeatures",
    "FeatureSpace",
    "GeneratorFeatures",
    "ImageInfo",
    "InceptionFeatures",
    "copy_descriptor",
    "image_info",
    "inception_weights_path",
]

#: Side of the compared window of the copy descriptor, and the shift tolerance around it (pixels).
COPY_SIDE = 32
COPY_MARGIN = 2
_FEATURE_SIDE = 64


@runtime_checkable
class FeatureSpace(Protocol):
    """Maps image files to feature vectors (one row each)."""

    #: Short name recorded in reports and plan files, e.g. ``"colour-texture"``.
    name: str

    def extract(self, paths: Sequence[Path]) -> Any:  # -> numpy.ndarray (n, d) float64
        """Feature rows of ``paths``, in order."""


# -- pixels ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageInfo:
    """What the report needs to know about an image's pixels besides its features."""

    readable: bool
    std: float  # largest per-channel standard deviation of the 8-bit values (0 for a constant image)
    mean: float
    error: str = ""

    @property
    def blank(self) -> bool:
        """Constant (or nearly constant) image: all black from a NaN decode, all grey, …"""
        return self.readable and self.std < 2.0


def _load_rgb(path: Path):
    from ._imageio import load_image

    return load_image(path)


def image_info(image) -> ImageInfo:  # noqa: ANN001 - PIL image
    """Pixel statistics of a decoded RGB image."""
    from PIL import ImageStat

    stat = ImageStat.Stat(image)
    return ImageInfo(True, float(max(stat.stddev)), float(sum(stat.mean) / len(stat.mean)))


# -- the download-free feature space ------------------------------------------------------------
def _box_blur(gray, radius: int):
    """Mean filter of side ``2 * radius + 1`` with edge padding (numpy only)."""
    import numpy as np

    k = 2 * radius + 1
    padded = np.pad(gray, radius, mode="edge")
    csum = padded.cumsum(0).cumsum(1)
    csum = np.pad(csum, ((1, 0), (1, 0)))
    h, w = gray.shape
    total = csum[k : k + h, k : k + w] - csum[:h, k : k + w] - csum[k : k + h, :w] + csum[:h, :w]
    return total / (k * k)


def _lbp_histogram(gray):
    """10-bin histogram of rotation-invariant uniform local binary patterns (8 neighbours)."""
    import numpy as np

    c = gray[1:-1, 1:-1]
    # the 8 neighbours in circular order: N, NE, E, SE, S, SW, W, NW
    ring = [(0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0), (0, 0)]
    h, w = c.shape
    bits = np.stack([gray[dy : dy + h, dx : dx + w] >= c for dy, dx in ring]).astype(np.int8)
    transitions = np.abs(np.diff(np.concatenate([bits, bits[:1]]), axis=0)).sum(0)
    ones = bits.sum(0)
    codes = np.where(transitions <= 2, ones, 9)
    hist = np.bincount(codes.ravel(), minlength=10).astype(np.float64)
    return hist / hist.sum()


def _radial_masks(side: int, rings: int = 4):
    import numpy as np

    yy, xx = np.mgrid[0:side, 0:side]
    centre = (side - 1) / 2
    radius = np.sqrt((yy - centre) ** 2 + (xx - centre) ** 2) / (centre * np.sqrt(2))
    edges = np.linspace(0, 1.0001, rings + 1)
    return [(radius >= lo) & (radius < hi) for lo, hi in zip(edges[:-1], edges[1:])]


def colour_texture_vector(image) -> Any:  # noqa: ANN001 - PIL RGB image -> numpy (d,)
    """The ``colour-texture`` feature vector of one RGB image (66 numbers).

    Colour: RGB mean/std/quantiles, saturation-weighted mean hue (as cos/sin), saturation and
    value statistics, hue/saturation/value histograms. Texture: gradient magnitude statistics,
    band-pass energy at three scales, uniform LBP histogram. Layout: grey level and saturation
    in four concentric rings (rotation-invariant: centre lesion vs border, vignettes).
    """
    import numpy as np
    from PIL import Image

    small = image.resize((_FEATURE_SIDE, _FEATURE_SIDE), Image.Resampling.BILINEAR, reducing_gap=2.0)
    rgb = np.asarray(small, dtype=np.float64) / 255.0
    hsv = np.asarray(small.convert("HSV"), dtype=np.float64) / 255.0
    gray = rgb @ np.array([0.299, 0.587, 0.114])
    flat = rgb.reshape(-1, 3)
    parts = [flat.mean(0), flat.std(0), *np.quantile(flat, [0.1, 0.5, 0.9], axis=0)]
    hue, sat, val = (hsv[..., i].ravel() for i in range(3))
    angle = 2 * np.pi * hue
    weight = sat / max(sat.sum(), 1e-9)
    parts.append(np.array([(weight * np.cos(angle)).sum(), (weight * np.sin(angle)).sum(),
                           sat.mean(), sat.std(), np.quantile(sat, 0.9), val.mean(), val.std()]))
    hue_hist = np.bincount((hue * 12).astype(int).clip(0, 11), weights=sat, minlength=12)
    parts.append(hue_hist / max(hue_hist.sum(), 1e-9))
    parts.append(np.bincount((sat * 4).astype(int).clip(0, 3), minlength=4) / sat.size)
    parts.append(np.bincount((val * 4).astype(int).clip(0, 3), minlength=4) / val.size)
    gy, gx = np.gradient(gray)
    magnitude = np.hypot(gx, gy)
    parts.append(np.array([magnitude.mean(), magnitude.std(), np.quantile(magnitude, 0.9)]))
    blurred = [gray] + [_box_blur(gray, r) for r in (1, 3, 7)]
    parts.append(np.array([np.abs(a - b).mean() for a, b in zip(blurred[:-1], blurred[1:])]))
    parts.append(_lbp_histogram(gray))
    masks = _radial_masks(_FEATURE_SIDE)
    sat2 = hsv[..., 1]
    parts.append(np.array([gray[m].mean() for m in masks] + [sat2[m].mean() for m in masks]))
    return np.concatenate([np.ravel(p) for p in parts])


def copy_descriptor(image) -> Any:  # noqa: ANN001 - PIL RGB image -> numpy (side+2m, side+2m)
    """Descriptor used to find near-copies: a ``COPY_SIDE + 2 * COPY_MARGIN`` square array.

    The image is resized to a fixed square (aspect is ignored), turned grey, histogram-
    equalised (rank transform: brightness and contrast changes drop out) and high-pass
    filtered (the 5x5 mean is subtracted), so that what is compared is the image's own fine
    structure (hair, borders, texture) rather than the blob-and-vignette layout that all
    dermoscopy images share. Calibrated on the skin-lesion set: distinct training images
    score at most ~0.49 against each other, lightly jittered copies at least ~0.52.
    """
    import numpy as np
    from PIL import Image

    side = COPY_SIDE + 2 * COPY_MARGIN
    gray = np.asarray(image.convert("L").resize((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0),
                      dtype=np.float32)
    ranks = gray.ravel().argsort(kind="stable").argsort(kind="stable").reshape(gray.shape)
    equalised = (ranks / ranks.size).astype(np.float32)
    return (equalised - _box_blur(equalised, 2)).astype(np.float32)


class ColourTextureFeatures:
    """The download-free feature space: :func:`colour_texture_vector` of each image."""

    name = "colour-texture"

    def extract(self, paths: Sequence[Path]) -> Any:
        import numpy as np

        return np.stack([colour_texture_vector(_load_rgb(Path(p))) for p in paths]) if paths else np.zeros((0, 66))


# -- Inception through torch-fidelity (only when already on disk) ----------------------------------
_INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


def inception_weights_path() -> Path | None:
    """Where torch-fidelity's FID Inception weights are cached, if they are (never downloads).

    ``SYNTHAUG_INCEPTION_WEIGHTS`` may point at the ``.pth`` file directly.
    """
    explicit = os.environ.get("SYNTHAUG_INCEPTION_WEIGHTS")
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
    candidate = hub / _INCEPTION_FILE
    return candidate if candidate.is_file() else None


def inception_unavailable_reason() -> str | None:
    """Why Inception features cannot be used here (``None`` when they can)."""
    import importlib.util

    if importlib.util.find_spec("torch_fidelity") is None:
        return "torch-fidelity is not installed"
    if inception_weights_path() is None:
        return f"the Inception weights ({_INCEPTION_FILE}) are not in the torch hub cache"
    return None


class InceptionFeatures:
    """2048-d pool3 features of the FID Inception network (torch-fidelity, local weights only)."""

    name = "inception"

    def __init__(self, batch_size: int = 32) -> None:
        reason = inception_unavailable_reason()
        if reason:
            raise MissingDependencyError(
                f"Inception features need torch-fidelity and its weights on disk: {reason} "
                "(pip install torch-fidelity; the weights are fetched once by torch-fidelity on a machine "
                "with internet, or set SYNTHAUG_INCEPTION_WEIGHTS to the .pth file)"
            )
        self.batch_size = batch_size
        self._model = None

    def _network(self):
        if self._model is None:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

            self._model = FeatureExtractorInceptionV3(
                "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(inception_weights_path())
            ).eval()
        return self._model

    def extract(self, paths: Sequence[Path]) -> Any:
        import numpy as np
        import torch

        rows = []
        for start in range(0, len(paths), self.batch_size):
            batch = [np.asarray(_load_rgb(Path(p)).resize((299, 299))) for p in paths[start : start + self.batch_size]]
            tensor = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).contiguous()  # uint8 NCHW
            with torch.no_grad():
                rows.append(self._network()(tensor)[0].double().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, 2048))


class GeneratorFeatures:
    """A generator's own ``features(paths)`` (e.g. pooled VAE latents) as a feature space."""

    def __init__(self, generator: Any) -> None:
        from ._generator import has_features

        if not has_features(generator):
            raise InvalidParameterError(
                "features", "generator", f"a generator with a features(paths) method ({generator.name!r} has none)"
            )
        self._extract: Callable[[Sequence[Path]], Any] = generator.features
        self.name = f"generator:{generator.name}"

    def extract(self, paths: Sequence[Path]) -> Any:
        import numpy as np

        out = np.asarray(self._extract(list(paths)), dtype=np.float64)
        if out.ndim != 2 or out.shape[0] != len(paths):
            raise InvalidParameterError(
                "features", self.name, f"an array with one row per image (got shape {out.shape} for {len(paths)} images)"
            )
        return out

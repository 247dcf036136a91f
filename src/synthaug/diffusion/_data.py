"""Training images as tensors, and their VAE latents computed once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import DatasetError

__all__ = ["CROP_MODES", "LatentSource", "PixelSource", "TrainingImage", "load_training_images"]

#: Pixels the VAE encodes per call when caching latents (8 images of 512 x 512).
ENCODE_PIXELS_PER_CALL = 8 * 512 * 512
#: How a training image becomes a ``resolution`` square: ``center`` resizes the shorter side and
#: crops the centre; ``resize`` squeezes the whole image (the aspect ratio changes).
CROP_MODES = ("center", "resize")


@dataclass(frozen=True)
class TrainingImage:
    """Geometry of one training square (SDXL's micro-conditioning): the file's ``(height, width)``,
    the ``(top, left)`` corner of the crop in the resized image, and the ``(height, width)`` trained on."""

    original_size: tuple[int, int]
    crop_top_left: tuple[int, int]
    target_size: tuple[int, int]


def _resized_size(width: int, height: int, resolution: int, crop: str) -> tuple[int, int]:
    if crop == "resize":
        return resolution, resolution
    scale = resolution / min(width, height)
    return max(resolution, round(width * scale)), max(resolution, round(height * scale))


def _square(image: Any, resolution: int, crop: str = "center") -> Any:
    """Resize the shorter side to ``resolution`` and crop the centre square (``crop="resize"``: squeeze)."""
    from PIL import Image

    w, h = image.size
    image = image.resize(_resized_size(w, h, resolution, crop), Image.Resampling.BICUBIC)
    left, top = (image.width - resolution) // 2, (image.height - resolution) // 2
    return image.crop((left, top, left + resolution, top + resolution))


def _geometry(size: tuple[int, int], resolution: int, crop: str, *, flipped: bool) -> TrainingImage:
    w, h = size
    width, height = _resized_size(w, h, resolution, crop)
    left, top = (width - resolution) // 2, (height - resolution) // 2
    if flipped:
        left = width - resolution - left
    return TrainingImage((h, w), (top, left), (resolution, resolution))


def load_training_images(
    paths: Sequence[Path], resolution: int, *, flip: bool, crop: str = "center"
) -> tuple[Any, list[TrainingImage]]:
    """uint8 pixels ``(N, 3, R, R)`` of the images (then their horizontal flips when ``flip``) and
    one :class:`TrainingImage` per row."""
    import numpy as np
    import torch

    from .._imageio import load_image

    if not paths:
        raise DatasetError("no training images for this concept; a diffusion generator needs at least one")
    if crop not in CROP_MODES:
        raise ValueError(f"crop={crop!r}: use one of {', '.join(CROP_MODES)}")
    arrays, sizes = [], []
    for path in paths:
        image = load_image(path)
        sizes.append(image.size)
        arrays.append(np.asarray(_square(image, resolution, crop), dtype=np.uint8))
    info = [_geometry(size, resolution, crop, flipped=False) for size in sizes]
    pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    if not flip:
        return pixels, info
    mirrored = [_geometry(size, resolution, crop, flipped=True) for size in sizes]
    return torch.cat([pixels, pixels.flip(-1)]), info + mirrored


def to_model_range(pixels: Any, *, device: Any, dtype: Any) -> Any:
    """uint8 pixels -> floats in [-1, 1] on ``device``."""
    return (pixels.to(device=device, dtype=dtype) / 127.5) - 1.0


@dataclass
class LatentSource:
    """Where training latents come from: a cache of VAE posteriors, or the VAE every step.

    ``sample(indices, noise)`` returns scaled latents ``(mean + std * noise) * scaling``; with
    the cache the VAE ran once per image, without it the VAE encodes the images each call.
    Both give the same numbers, so the choice only changes speed.
    """

    vae: Any
    pixels: Any  # uint8 (N, 3, R, R) on the CPU
    cached: bool
    device: Any
    dtype: Any
    mean: Any = None
    std: Any = None

    def __post_init__(self) -> None:
        config = self.vae.config
        self.scaling = float(config.scaling_factor)
        self.shift = float(getattr(config, "shift_factor", None) or 0.0)
        if self.cached:
            self.mean, self.std = self._encode_all()

    def __len__(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def latent_shape(self) -> tuple[int, ...]:
        if self.mean is not None:
            return tuple(self.mean.shape[1:])
        factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        side = self.pixels.shape[-1] // factor
        return (int(self.vae.config.latent_channels), side, side)

    @contextlib.contextmanager
    def _vae_in_encoding_dtype(self) -> Iterator[None]:
        """Run the VAE in ``dtype`` (e.g. float32 for a float16 VAE marked ``force_upcast``), then
        give it back its own dtype, so the pipeline still decodes in the dtype it expects."""
        original = self.vae.dtype
        if original != self.dtype:
            self.vae.to(dtype=self.dtype)
        try:
            yield
        finally:
            if original != self.dtype:
                self.vae.to(dtype=original)

    def _posterior(self, pixels: Any) -> tuple[Any, Any]:
        import torch

        with torch.no_grad(), self._vae_in_encoding_dtype():
            dist = self.vae.encode(to_model_range(pixels, device=self.device, dtype=self.dtype)).latent_dist
        return dist.mean.float(), dist.std.float()

    def _encode_all(self, chunk: int | None = None) -> tuple[Any, Any]:
        import torch

        # 8 images per VAE call up to 512 px; fewer above (1024 px: 2), so encoding fits a 16 GB GPU
        chunk = chunk or max(1, ENCODE_PIXELS_PER_CALL // (self.pixels.shape[-1] * self.pixels.shape[-2]))

        with self._vae_in_encoding_dtype():
            means, stds = zip(*(self._posterior(self.pixels[i : i + chunk]) for i in range(0, len(self), chunk)))
        return torch.cat(means), torch.cat(stds)

    def draw_indices(self, batch: int, generator: Any) -> Any:
        """``batch`` rows drawn uniformly with ``generator``."""
        import torch

        return torch.randint(len(self), (batch,), generator=generator)

    def sample(self, indices: Any, noise: Any) -> Any:
        """Scaled latents of images ``indices`` drawn with the given standard-normal ``noise``."""
        if self.cached:
            mean, std = self.mean[indices.to(self.mean.device)], self.std[indices.to(self.std.device)]
        else:
            mean, std = self._posterior(self.pixels[indices])
        return (mean + std * noise.to(mean.device)) * self.scaling - self.shift * self.scaling


@dataclass
class PixelSource:
    """Training data in pixel space (no VAE): rows of ``pixels`` (uint8 ``(N, 3, R, R)`` on the CPU)
    as floats in [-1, 1] on ``device``. Rows are drawn with probability proportional to
    ``weights`` (``None``: uniformly); ``sample`` ignores its ``noise`` argument."""

    pixels: Any
    device: Any = "cpu"
    weights: Any = None

    def __len__(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return tuple(self.pixels.shape[1:])

    def draw_indices(self, batch: int, generator: Any) -> Any:
        import torch

        if self.weights is None:
            return torch.randint(len(self), (batch,), generator=generator)
        return torch.multinomial(self.weights, batch, replacement=True, generator=generator)

    def sample(self, indices: Any, noise: Any) -> Any:
        import torch

        return to_model_range(self.pixels[indices], device=self.device, dtype=torch.float32)

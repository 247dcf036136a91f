"""Training images as tensors, and their VAE latents computed once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DatasetError

__all__ = ["LatentSource", "load_training_pixels"]


def _square(image: Any, resolution: int) -> Any:
    """Resize the shorter side to ``resolution`` and crop the centre square."""
    from PIL import Image

    w, h = image.size
    scale = resolution / min(w, h)
    image = image.resize((max(resolution, round(w * scale)), max(resolution, round(h * scale))),
                         Image.Resampling.BICUBIC)
    left, top = (image.width - resolution) // 2, (image.height - resolution) // 2
    return image.crop((left, top, left + resolution, top + resolution))


def load_training_pixels(paths: Sequence[Path], resolution: int, *, flip: bool) -> Any:
    """uint8 tensor ``(N, 3, R, R)`` of the images (then their horizontal flips when ``flip``)."""
    import numpy as np
    import torch

    from .._imageio import load_image

    if not paths:
        raise DatasetError("no training images for this concept; a diffusion generator needs at least one")
    arrays = [np.asarray(_square(load_image(p), resolution), dtype=np.uint8) for p in paths]
    pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return torch.cat([pixels, pixels.flip(-1)]) if flip else pixels


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

    def _posterior(self, pixels: Any) -> tuple[Any, Any]:
        import torch

        with torch.no_grad():
            dist = self.vae.encode(to_model_range(pixels, device=self.device, dtype=self.dtype)).latent_dist
        return dist.mean.float(), dist.std.float()

    def _encode_all(self, chunk: int = 8) -> tuple[Any, Any]:
        import torch

        means, stds = zip(*(self._posterior(self.pixels[i : i + chunk]) for i in range(0, len(self), chunk)))
        return torch.cat(means), torch.cat(stds)

    def sample(self, indices: Any, noise: Any) -> Any:
        """Scaled latents of images ``indices`` drawn with the given standard-normal ``noise``."""
        if self.cached:
            mean, std = self.mean[indices.to(self.mean.device)], self.std[indices.to(self.std.device)]
        else:
            mean, std = self._posterior(self.pixels[indices])
        return (mean + std * noise.to(mean.device)) * self.scaling - self.shift * self.scaling

"""Sampling from a fitted model: per-image seeded noise, DDIM or DPM-Solver++, guidance.

Each image's starting noise comes from its own CPU ``torch.Generator`` seeded with the
image's seed, and both samplers are deterministic after that; batches are padded to a
fixed shape, so an image depends on its seed only, not on the batch it was made in.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synthaug import require
from synthaug.diffusion import resolve_device


def load_model(folder: Path, device_spec: str) -> Any:
    """The fitted EMA UNet from ``folder`` in eval mode on the chosen device."""
    diffusers = require("diffusers", purpose="the ddpm generator")
    unet = diffusers.UNet2DModel.from_pretrained(folder)
    unet.requires_grad_(False)
    return unet.eval().to(resolve_device(device_spec))


def make_sampler(name: str) -> Any:
    """A fresh sampling scheduler (they keep state between steps, so one per batch)."""
    diffusers = require("diffusers", purpose="the ddpm generator")
    from .training import make_noise_scheduler

    config = make_noise_scheduler().config
    if name == "dpm-solver":
        return diffusers.DPMSolverMultistepScheduler.from_config(
            config, algorithm_type="dpmsolver++", solver_order=2, timestep_spacing="trailing"
        )
    return diffusers.DDIMScheduler.from_config(config, timestep_spacing="trailing", clip_sample=True)


def initial_noise(seeds: Sequence[int], resolution: int) -> Any:
    """Starting noise (len(seeds), 3, R, R): image ``i`` from a CPU generator seeded ``seeds[i]``."""
    import torch

    return torch.stack([
        torch.randn((3, resolution, resolution), generator=torch.Generator().manual_seed(int(seed)))
        for seed in seeds
    ])


def to_pil(batch: Any) -> list[Any]:
    """Tensors in [-1, 1] (N, 3, H, W) -> RGB PIL images."""
    from PIL import Image

    pixels = ((batch.clamp(-1, 1) + 1) * 127.5).round().to("cpu").byte().permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(p, "RGB") for p in pixels]


def sample(model: Any, *, seeds: Sequence[int], class_index: int, null_index: int, resolution: int,
           sampler: str, steps: int, guidance_scale: float, batch_shape: int) -> list[Any]:
    """Denoise one image per seed, conditioned on ``class_index``; return PIL images.

    With ``guidance_scale != 1`` the prediction is ``uncond + scale * (cond - uncond)``, the
    unconditional one taken with ``null_index``. The batch is padded to ``batch_shape``
    images (zeros) so that the computation, and hence each image, does not depend on how
    many seeds were asked for together.
    """
    import torch

    device = next(model.parameters()).device
    n = len(seeds)
    if n > batch_shape:
        raise ValueError(f"{n} seeds for a batch of {batch_shape}")
    latents = torch.zeros((batch_shape, 3, resolution, resolution))
    latents[:n] = initial_noise(seeds, resolution)
    latents = latents.to(device)
    guided = guidance_scale != 1.0
    labels = torch.full((batch_shape,), class_index, dtype=torch.long)
    if guided:
        labels = torch.cat([labels, torch.full((batch_shape,), null_index, dtype=torch.long)])
    labels = labels.to(device)
    scheduler = make_sampler(sampler)
    scheduler.set_timesteps(steps, device=device)
    latents = latents * scheduler.init_noise_sigma
    with torch.inference_mode():
        for t in scheduler.timesteps:
            model_in = torch.cat([latents, latents]) if guided else latents
            model_in = scheduler.scale_model_input(model_in, t)
            out = model(model_in, t, class_labels=labels).sample
            if guided:
                cond, uncond = out.chunk(2)
                out = uncond + guidance_scale * (cond - uncond)
            latents = scheduler.step(out, t, latents).prev_sample
    return to_pil(latents[:n])

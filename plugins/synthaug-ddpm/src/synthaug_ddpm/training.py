"""Training the class-conditional UNet with the synthaug diffusion engine.

The model is a pixel-space ``diffusers.UNet2DModel`` with class embeddings. The engine's
:class:`~synthaug.diffusion.TrainingLoop` trains it from parts: a
:class:`~synthaug.diffusion.UNetDenoiser`, the v-prediction
:class:`~synthaug.diffusion.DdpmRule` on a cosine schedule,
:class:`~synthaug.diffusion.ClassConditioning` (labels with classifier-free-guidance
dropout) and a :class:`~synthaug.diffusion.PixelSource` (images drawn with per-class
weights, flipped copies included). The loop brings EMA weights, the time budget, resumable
checkpoints (safetensors + JSON) and exact resume; this module builds the parts and exports
the EMA model.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from synthaug import NULL_PROGRESS, Concept, GenerationError, Progress, require

from .options import MODEL_DIR, DdpmOptions

NUM_TRAIN_TIMESTEPS = 1000
BETA_SCHEDULE = "squaredcos_cap_v2"
PREDICTION_TYPE = "v_prediction"
#: Losses are averaged over windows of this many steps in the saved history.
LOSS_WINDOW = 10


def build_unet(options: DdpmOptions, n_classes: int) -> Any:
    """A fresh pixel-space ``UNet2DModel`` with ``n_classes + 1`` class embeddings (the last = null)."""
    diffusers = require("diffusers", purpose="the ddpm generator")
    channels = tuple(options.width * m for m in options.channel_multipliers)
    levels = len(channels)
    last_down = "AttnDownBlock2D" if options.attention else "DownBlock2D"
    first_up = "AttnUpBlock2D" if options.attention else "UpBlock2D"
    return diffusers.UNet2DModel(
        sample_size=options.resolution,
        in_channels=3,
        out_channels=3,
        layers_per_block=options.layers_per_block,
        block_out_channels=channels,
        down_block_types=("DownBlock2D",) * (levels - 1) + (last_down,),
        up_block_types=(first_up,) + ("UpBlock2D",) * (levels - 1),
        norm_num_groups=math.gcd(options.width, 32),
        attention_head_dim=min(32, channels[-1]),
        num_class_embeds=n_classes + 1,
    )


def make_noise_scheduler() -> Any:
    """The training noise schedule: cosine betas, 1000 steps, v-prediction.

    The model predicts ``v = sqrt(a) * noise - sqrt(1 - a) * image`` rather than the noise:
    with the noise target, the image estimated at the noisiest steps (``a`` near 0) is the
    prediction error amplified ~70x, which sends few-step samplers off towards the wrong colours.
    """
    diffusers = require("diffusers", purpose="the ddpm generator")
    return diffusers.DDPMScheduler(
        num_train_timesteps=NUM_TRAIN_TIMESTEPS, beta_schedule=BETA_SCHEDULE, prediction_type=PREDICTION_TYPE
    )


def load_images(concepts: Sequence[Concept], resolution: int) -> tuple[Any, Any]:
    """All training images as a uint8 tensor (N, 3, R, R) and their class indices (N,).

    Images are read like everywhere in synthaug (EXIF, modes -> RGB), centre-cropped to a
    square and resized with a bicubic filter. Concept ``i`` of ``concepts`` is class ``i``.
    """
    import numpy as np
    import torch
    from PIL import Image, ImageOps

    from synthaug import load_image

    pixels, labels = [], []
    for index, concept in enumerate(concepts):
        for path in sorted(concept.images):
            try:
                image = load_image(path)
            except Exception as exc:  # noqa: BLE001 - name the file
                raise GenerationError(f"ddpm: cannot read training image {path} of {concept.name!r}: {exc}") from exc
            square = ImageOps.fit(image, (resolution, resolution), Image.Resampling.BICUBIC)
            pixels.append(np.asarray(square, dtype=np.uint8))
            labels.append(index)
    data = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous()
    return data, torch.tensor(labels, dtype=torch.long)


def sampling_weights(labels: Any, power: float) -> Any:
    """Per-image draw weights ``n_class ** -power`` (0: uniform over images, 1: over classes)."""
    import torch

    counts = torch.bincount(labels).double()
    return counts[labels] ** (-power)


def flipped_copies(pixels: Any, labels: Any, options: DdpmOptions) -> tuple[Any, Any]:
    """The images plus their horizontal (``hflip``) and vertical (``vflip``) mirror images."""
    import torch

    for enabled, dim in ((options.hflip, -1), (options.vflip, -2)):
        if enabled:
            pixels, labels = torch.cat([pixels, pixels.flip(dim)]), torch.cat([labels, labels])
    return pixels, labels


def training_parts(options: DdpmOptions, concepts: Sequence[Concept], device: Any) -> Any:
    """The engine parts of a fresh model on ``concepts`` (class ``i`` = ``concepts[i]``)."""
    from synthaug.diffusion import ClassConditioning, DdpmRule, PixelSource, TrainingParts, UNetDenoiser

    pixels, labels = load_images(concepts, options.resolution)
    pixels, labels = flipped_copies(pixels, labels, options)
    unet = build_unet(options, len(concepts)).to(device)
    return TrainingParts(
        denoiser=UNetDenoiser(unet),
        rule=DdpmRule(make_noise_scheduler()),
        conditioning=ClassConditioning(labels, null_index=len(concepts), dropout=options.class_dropout, device=device),
        source=PixelSource(pixels, device, sampling_weights(labels, options.class_sampling_power)),
        params=dict(unet.named_parameters()),
        modules=[unet],
    )


def export_model(work_dir: Path, unet: Any) -> None:
    """Write ``unet`` and the scheduler config to ``work_dir/model`` (safetensors), replacing it at once."""
    tmp = work_dir / (MODEL_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    unet.save_pretrained(tmp, safe_serialization=True)
    make_noise_scheduler().save_pretrained(tmp)
    shutil.rmtree(work_dir / MODEL_DIR, ignore_errors=True)
    os.replace(tmp, work_dir / MODEL_DIR)


def loss_windows(losses: Sequence[float]) -> list[list[float]]:
    """``[step, mean loss]`` over consecutive windows of :data:`LOSS_WINDOW` steps (the last may be shorter)."""
    return [[min(start + LOSS_WINDOW, len(losses)), sum(chunk) / len(chunk)]
            for start in range(0, len(losses), LOSS_WINDOW) if (chunk := losses[start : start + LOSS_WINDOW])]


def train(options: DdpmOptions, concepts: Sequence[Concept], work_dir: Path, *, identity: Mapping[str, Any],
          progress: Progress = NULL_PROGRESS) -> dict[str, Any]:
    """Train (or resume) the model on ``concepts`` (class ``i`` = ``concepts[i]``); export its EMA weights.

    Stops at ``options.max_train_steps`` or when the summed training time passes
    ``options.time_budget_s``. A checkpoint of the same ``identity`` in ``work_dir`` is resumed;
    the last step is checkpointed too, so more steps extend a finished model. Returns the
    training summary stored in artifact.json.
    """
    require("torch", purpose="the ddpm generator")
    require("diffusers", purpose="the ddpm generator")
    from synthaug.diffusion import TrainingLoop, resolve_device

    device = resolve_device(options.device)
    loop = TrainingLoop(lambda: training_parts(options, concepts, device), key="ddpm", folder=work_dir,
                        options=options, progress=progress, identity=identity, keep_final_checkpoint=True)
    result = loop.run()
    unet = loop.denoiser.module
    if loop.ema is not None:
        loop.ema.copy_to(unet.parameters())
    export_model(work_dir, unet)
    return {
        "steps": result.steps,
        "resumed_from_step": result.resumed_from_step or None,
        "stopped_by": result.stopped_by,
        "training_seconds": result.training_seconds,
        "device": str(device),
        "n_images": sum(len(c.images) for c in concepts),
        "target": result.target,
        "probe_loss_start": result.probe_loss_start,
        "probe_loss_end": result.probe_loss_end,
        "loss_window": LOSS_WINDOW,
        "loss_history": loss_windows(result.losses),
    }

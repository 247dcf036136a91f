"""Options of the ``ddpm`` generator and the names of its files (no torch import).

The training and sampling options use synthaug's shared vocabulary
(:class:`synthaug.diffusion.DiffusionTrainingOptions`, :class:`synthaug._options.SamplingOptions`);
the names of version 0.1 still work until synthaug 0.3.0, with a warning.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from synthaug import DeviceOptions, SamplingOptions, TrainingOptions, fit_neutral_field
from synthaug.diffusion import DiffusionTrainingOptions

__all__ = ["MODEL_DIR", "WEIGHTS_FILE", "DdpmOptions", "RESUMABLE_CHANGES"]

#: Folder (in ``work_dir``) of the exported EMA model and its noise-scheduler config.
MODEL_DIR = "model"
#: The model's weights file inside :data:`MODEL_DIR`.
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"
#: Options that only say how long to train: a checkpoint made with other values of these is resumed
#: (the step count continues, so raising ``max_train_steps`` extends a finished model).
RESUMABLE_CHANGES = frozenset({"max_train_steps", "time_budget_s"})


class DdpmOptions(SamplingOptions, DiffusionTrainingOptions, TrainingOptions, DeviceOptions):
    """Options of the ``ddpm`` generator (model, training, and sampling settings)."""

    # -- model ----------------------------------------------------------------------------
    resolution: int = Field(64, ge=8, le=512, description="Side of the square images the model learns and generates, in pixels (training images are centre-cropped to a square and resized).")
    width: int = Field(64, ge=4, le=512, description="Channels of the UNet's first level; deeper levels multiply it by channel_multipliers.")
    channel_multipliers: tuple[int, ...] = Field((1, 2, 2, 4), min_length=1, max_length=6, description="Channel multiplier of each UNet level (its length is the number of levels; the resolution must be divisible by 2**(levels-1)).")
    layers_per_block: int = Field(1, ge=1, le=4, description="ResNet layers in each UNet level.")
    attention: bool = Field(True, description="Self-attention at the lowest-resolution level of the UNet.")
    # -- training -------------------------------------------------------------------------
    max_train_steps: int = Field(4000, ge=1, description="Optimizer steps to train for (a stop sooner is possible with time_budget_s). Raising it later resumes a finished model.")
    time_budget_s: float | None = Field(None, gt=0, description="Stop training after this many seconds of training time (summed over resumed runs), even before max_train_steps; None = no limit.")
    train_batch_size: int = Field(16, ge=1, le=4096, description="Training images per optimizer step.")
    learning_rate: float = Field(5e-4, gt=0, le=1, description="AdamW learning rate (after warm-up; constant afterwards so that resuming with more steps continues smoothly).")
    lr_warmup_steps: int = Field(100, ge=0, description="Linear learning-rate warm-up, in steps.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="Decay of the exponential moving average of the weights used for generation (warmed up as min(decay, (1+step)/(10+step))); 0: no EMA, generate with the trained weights.")
    class_dropout: float = Field(0.1, ge=0, lt=1, description="Probability of replacing a training image's class by the 'null' class, which teaches the unconditional model used by classifier-free guidance.")
    class_sampling_power: float = Field(0.5, ge=0, le=1, description="Training images are drawn with weight n_class**(-power): 0 = every image equally often, 1 = every class equally often.")
    hflip: bool = Field(True, description="Also train on horizontally flipped images.")
    vflip: bool = Field(False, description="Also train on vertically flipped images (sensible for dermoscopy or microscopy, not for digits).")
    seed: int = Field(0, ge=0, description="Seed of all training randomness (initial weights, batches, noise).")
    parallel: Literal["concepts"] = Field("concepts", description="ddpm fits one model for all classes in one process; data-parallel training is not supported.")
    # -- sampling ---------------------------------------------------------------------------
    sampler: Literal["ddim", "dpm-solver"] = fit_neutral_field("ddim", description="Sampler used to generate: deterministic DDIM or DPM-Solver++ (multistep).")
    num_inference_steps: int = fit_neutral_field(25, ge=1, le=1000, description="Denoising steps per generated image.")
    guidance_scale: float = fit_neutral_field(2.0, ge=0, le=20, description="Classifier-free guidance scale: 1 = plain conditional model, higher = more typical of the class, less varied.")
    generation_batch_size: int = fit_neutral_field(16, ge=1, le=1024, description="Images denoised together when generating (does not change the images beyond float rounding).")

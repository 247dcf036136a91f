"""Options shared by every Stable Diffusion generator (plugins subclass and extend them)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..generator import GeneratorOptions
from .casting import BaseWeights

__all__ = ["DEFAULT_BASE_MODEL", "DEFAULT_NEGATIVE_PROMPT", "DEFAULT_PROMPT_TEMPLATE", "DiffusionOptions",
           "GENERATION_ONLY_OPTIONS"]

#: The SD1.5 weights on the Hugging Face hub (the community mirror of runwayml/stable-diffusion-v1-5).
DEFAULT_BASE_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_PROMPT_TEMPLATE = "a dermoscopic image of {concept}"
DEFAULT_NEGATIVE_PROMPT = "blurry, low quality, text, watermark, cartoon"

#: Options that change how images are generated (or shown) but not the fitted adapter.
GENERATION_ONLY_OPTIONS = frozenset({
    "negative_prompt", "guidance_scale", "num_inference_steps", "batch_size", "scheduler", "max_retries",
    "device", "safety_checker", "validation_images", "checkpoint_every", "keep_checkpoints",
})


class DiffusionOptions(GeneratorOptions):
    """Options of a Stable Diffusion fine-tuning generator (loading, training, prompts, sampling)."""

    # -- the base model ------------------------------------------------------------------
    base_model: str = Field(
        DEFAULT_BASE_MODEL,
        description="Base pipeline: a Hugging Face hub id or a local folder saved with save_pretrained.",
    )
    variant: str | None = Field(None, description="Weights variant to load from the hub, e.g. 'fp16'.")
    safety_checker: bool = Field(
        False,
        description="Run the model's NSFW safety checker. Off by default: it blacks out many skin images.",
    )
    device: str | None = Field(None, description="Torch device ('cuda', 'cuda:1', 'mps', 'cpu'); default cuda > mps > cpu.")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="Dtype of the frozen base weights; auto: float16 on GPU, float32 on CPU."
    )
    base_weights: BaseWeights = Field(
        "dtype",
        description="Storage of the frozen UNet weights: dtype (as the dtype option says) or float8 (float8_e4m3fn, "
                    "upcast layer by layer to dtype for compute: half the UNet memory of float16; saves memory while "
                    "training only with gradient_checkpointing).",
    )
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = Field(
        "auto", description="Autocast dtype of training forward passes; auto follows dtype on GPU, 'no' on CPU."
    )
    # -- prompts ---------------------------------------------------------------------------
    prompt_template: str = Field(
        DEFAULT_PROMPT_TEMPLATE, description="Prompt for training and generation; {concept} is replaced by the concept."
    )
    prompts: dict[str, str] = Field(
        default_factory=dict, description="Per-concept prompt templates (concept name -> template) overriding prompt_template."
    )
    negative_prompt: str = Field(DEFAULT_NEGATIVE_PROMPT, description="Negative prompt used when generating ('' for none).")
    # -- training data -----------------------------------------------------------------------
    resolution: int = Field(512, ge=8, description="Training and generation side length in pixels (multiple of 8).")
    flip: bool = Field(True, description="Also train on horizontally flipped copies of the images.")
    crop: Literal["center", "resize"] = Field(
        "center", description="How images become resolution squares: center (resize the shorter side, crop the "
                              "centre) or resize (squeeze the whole image; the aspect ratio changes).",
    )
    cache_latents: bool = Field(True, description="Encode each training image with the VAE once instead of every step.")
    # -- training loop -------------------------------------------------------------------------
    max_train_steps: int = Field(1000, ge=1, description="Optimizer steps per concept.")
    train_batch_size: int = Field(1, ge=1, description="Images per micro-batch.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    gradient_checkpointing: bool = Field(False, description="Trade compute for memory in the UNet/text encoder.")
    learning_rate: float = Field(1e-4, gt=0, description="Peak learning rate.")
    lr_scheduler: Literal[
        "constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"
    ] = Field("constant", description="Learning-rate schedule after warmup.")
    lr_warmup_steps: int = Field(0, ge=0, description="Linear learning-rate warmup steps.")
    optimizer: Literal["adamw", "adamw8bit", "auto"] = Field(
        "adamw", description="AdamW, or 8-bit AdamW from bitsandbytes (less optimizer memory); auto: adamw8bit on "
                             "CUDA, adamw elsewhere."
    )
    weight_decay: float = Field(1e-2, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    snr_gamma: float | None = Field(None, gt=0, description="Min-SNR loss weighting gamma (5.0 is typical); None: off.")
    noise_offset: float = Field(0.0, ge=0, description="Noise offset (e.g. 0.05) to learn darker/brighter images.")
    seed: int = Field(0, ge=0, description="Training seed (data order, noise, timesteps, adapter initialisation).")
    parallel: Literal["concepts", "data"] = Field(
        "concepts",
        description="How a multi-process run (--processes N) trains: concepts (each concept on one process, "
                    "different concepts in parallel) or data (every process trains every concept on its own "
                    "images, noise and timesteps; gradients are averaged, so each step sees N x train_batch_size "
                    "images: for one large class). Same result as concepts in a single process.",
    )
    checkpoint_every: int = Field(500, ge=0, description="Save a resumable checkpoint every N steps (0: never).")
    keep_checkpoints: int = Field(1, ge=1, description="How many recent checkpoints to keep while training.")
    validation_images: int = Field(4, ge=0, description="Images in the validation grid saved at each checkpoint (0: none).")
    # -- generation --------------------------------------------------------------------------
    guidance_scale: float = Field(7.5, ge=0, description="Classifier-free guidance scale.")
    num_inference_steps: int = Field(30, ge=1, description="Denoising steps per generated image.")
    scheduler: str | None = Field(
        None, description="Inference scheduler class from diffusers (e.g. DPMSolverMultistepScheduler); default: the model's."
    )
    batch_size: int = Field(
        1, ge=1,
        description="Images per pipeline call. 1 is bit-for-bit reproducible; larger is faster on GPU and equal up "
                    "to floating-point rounding (rare pixel values off by one).",
    )
    max_retries: int = Field(3, ge=0, description="Regenerations (with derived seeds) of a black, NaN or flat image.")

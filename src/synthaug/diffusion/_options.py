"""Options of the diffusion engine: the training loop's vocabulary, Stable Diffusion options, flow matching.

Option groups (one level: each derives from ``GeneratorOptions`` and no field is in two groups;
a generator changes a default in its own ``Options`` with :func:`~synthaug.override_default`):

- :class:`DiffusionTrainingOptions`: what the engine's training loop reads besides the shared
  :class:`~synthaug.TrainingOptions`: optimizer, schedule, precision, accumulation.
- :class:`PipelineOptions`: a Stable Diffusion pipeline's base model, prompts, data and generation.
- :class:`FlowMatchingOptions`: mix-in for flow-matching models (SD3, FLUX): timestep sampling
  and loss weighting of :class:`~synthaug.diffusion._targets.FlowMatchingRule`.
- :class:`LoraOptions`: the LoRA vocabulary (``rank``, ``alpha``, ``target_modules``,
  ``lora_dropout``) of every LoRA generator.
- :class:`LargeModelOptions`: SDXL, SD3 and FLUX (prompt embeddings cached with the text
  encoders off the GPU).

Compositions (no fields of their own): :class:`LoopOptions`, what the training loop reads;
:class:`DiffusionOptions`, every option of a Stable Diffusion fine-tuning generator
(:data:`SD_OPTION_GROUPS`); a plugin's ``Options`` extends it with its own groups and fields.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from .._generator import GeneratorOptions
from .._options import DeviceOptions, SamplingOptions, TrainingOptions, fit_neutral_field, override_default
from ._casting import BaseWeights

__all__ = ["DEFAULT_BASE_MODEL", "DEFAULT_NEGATIVE_PROMPT", "DEFAULT_PROMPT_TEMPLATE", "DiffusionOptions", "fill_preset",
           "DiffusionTrainingOptions", "FlowMatchingOptions", "LargeModelOptions", "LoraOptions", "PipelineOptions",
           "LoopOptions", "SD_OPTION_GROUPS", "auto_optimizer", "ImageGuidanceOptions", "RECIPES"]

#: The SD1.5 weights on the Hugging Face hub (the community mirror of runwayml/stable-diffusion-v1-5).
DEFAULT_BASE_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_PROMPT_TEMPLATE = "a dermoscopic image of {concept}"
DEFAULT_NEGATIVE_PROMPT = "blurry, low quality, text, watermark, cartoon"


class DiffusionTrainingOptions(GeneratorOptions):
    """The training loop's options beyond :class:`~synthaug.TrainingOptions` (every diffusion generator that
    trains with the engine)."""

    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = Field(
        "auto", description="Autocast dtype of training forward passes; auto follows dtype on GPU, 'no' on CPU."
    )
    gradient_accumulation_steps: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    gradient_checkpointing: bool = fit_neutral_field(
        False, description="Trade compute for memory in the denoiser/text encoder (same training, slower).")
    lr_scheduler: Literal[
        "constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"
    ] = Field("constant", description="Learning-rate schedule after warmup.")
    optimizer: Literal["adamw", "adamw8bit", "auto"] = Field(
        "adamw", description="AdamW, or 8-bit AdamW from bitsandbytes (less optimizer memory); auto: adamw8bit on "
                             "CUDA, adamw elsewhere."
    )
    weight_decay: float = Field(1e-2, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    noise_offset: float = Field(0.0, ge=0, description="Noise offset (e.g. 0.05) to learn darker/brighter images.")
    keep_checkpoints: int = fit_neutral_field(1, ge=1, description="How many recent checkpoints to keep while training.")
    parallel: Literal["concepts", "data"] = Field(
        "concepts",
        description="How a multi-process run (--processes N) trains: concepts (each concept on one process, "
                    "different concepts in parallel) or data (every process trains every concept on its own "
                    "images, noise and timesteps; gradients are averaged, so each step sees N x train_batch_size "
                    "images: for one large class). Same result as concepts in a single process.",
    )


#: What each ``recipe`` fills (only the options the user did not set; see docs/recipes.md).
RECIPES: dict[str, dict[str, Any]] = {
    # DA-Fusion (Trabucco et al., ICLR 2024): SDEdit from a real image of the class at strength 0.5
    # (the paper learns a textual-inversion token per class: use generator textual-inversion).
    "da-fusion": {"strength": 0.5, "init_from": "own-class"},
    # Real Guidance (He et al., ICLR 2023): no fine-tuning; the base model, img2img from real images.
    "real-guidance": {"fine_tune": False, "strength": 0.5, "init_from": "own-class"},
    # Diff-Mix (Wang et al., CVPR 2024): other classes' images translated into the class at about 0.7,
    # labelled with a soft label (target weight strength**gamma).
    "diff-mix": {"strength": 0.7, "init_from": "other-classes", "soft_labels": True, "soft_label_gamma": 0.5},
}


class ImageGuidanceOptions(GeneratorOptions):
    """Generation guided by real images (SDEdit / img2img), soft labels, the recipes, and ``fine_tune``.

    Every field but ``fine_tune`` is fit-neutral: changing it never forces a refit.
    """

    strength: float = fit_neutral_field(
        1.0, gt=0, le=1,
        description="Img2img strength: each image starts from a real training image noised to this level (0 < s < 1; "
                    "lower keeps more of the source). 1.0: text-to-image, no source image (the default).")
    init_from: Literal["own-class", "other-classes"] = fit_neutral_field(
        "own-class",
        description="Where the source images of strength < 1 come from: own-class (the concept's own training "
                    "images) or other-classes (the other classes' training images, translated into the concept: "
                    "Diff-Mix). The per-image seed chooses the source.")
    soft_labels: bool = fit_neutral_field(
        False, description="With init_from=other-classes: record a soft label per image (target class weight "
                           "strength**soft_label_gamma, the source class the rest) for label_mode='soft' training.")
    soft_label_gamma: float = fit_neutral_field(
        0.5, gt=0, description="Exponent of the soft label: target weight = strength**gamma (Diff-Mix's annotation).")
    fine_tune: bool = Field(
        True, description="Fine-tune an adapter per concept (LoRA or embedding). false: nothing is trained, the base "
                          "model generates from the concept's text (real-guidance); training options are ignored.")
    recipe: Literal["da-fusion", "real-guidance", "diff-mix"] | None = fit_neutral_field(
        None,
        description="Named method from the literature (docs/recipes.md): da-fusion (strength 0.5 from the class's own "
                    "images), real-guidance (no fine-tuning, strength 0.5 from real images), diff-mix (other classes' "
                    "images translated at strength 0.7, soft labels). Options you set explicitly override it.")

    @model_validator(mode="after")
    def _apply_recipe(self) -> ImageGuidanceOptions:
        """Fill the recipe's options that the user did not set (``model_fields_set``)."""
        fill_preset(self, RECIPES, key="recipe")
        return self


class PipelineOptions(GeneratorOptions):
    """A Stable Diffusion pipeline: base model, prompts, training data and generation settings."""

    # -- the base model ------------------------------------------------------------------
    base_model: str = Field(
        DEFAULT_BASE_MODEL,
        description="Base pipeline: a Hugging Face hub id or a local folder saved with save_pretrained.",
    )
    variant: str | None = Field(None, description="Weights variant to load from the hub, e.g. 'fp16'.")
    safety_checker: bool = fit_neutral_field(
        False,
        description="Run the model's NSFW safety checker. Off by default: it blacks out many skin images.",
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="Dtype of the frozen base weights; auto: float16 on GPU, float32 on CPU."
    )
    base_weights: BaseWeights = Field(
        "dtype",
        description="Storage of the frozen UNet weights: dtype (as the dtype option says) or float8 (float8_e4m3fn, "
                    "upcast layer by layer to dtype for compute: half the UNet memory of float16; saves memory while "
                    "training only with gradient_checkpointing).",
    )
    # -- prompts ---------------------------------------------------------------------------
    prompt_template: str = Field(
        DEFAULT_PROMPT_TEMPLATE, description="Prompt for training and generation; {concept} is replaced by the concept."
    )
    prompts: dict[str, str] = Field(
        default_factory=dict, description="Per-concept prompt templates (concept name -> template) overriding prompt_template."
    )
    negative_prompt: str = fit_neutral_field(DEFAULT_NEGATIVE_PROMPT,
                                             description="Negative prompt used when generating ('' for none).")
    # -- training data -----------------------------------------------------------------------
    resolution: int = Field(512, ge=8, description="Training and generation side length in pixels (multiple of 8).")
    flip: bool = Field(True, description="Also train on horizontally flipped copies of the images.")
    crop: Literal["center", "resize"] = Field(
        "center", description="How images become resolution squares: center (resize the shorter side, crop the "
                              "centre) or resize (squeeze the whole image; the aspect ratio changes).",
    )
    cache_latents: bool = fit_neutral_field(
        True, description="Encode each training image with the VAE once instead of every step (same training, faster).")
    # -- training loss ------------------------------------------------------------------------
    snr_gamma: float | None = Field(None, gt=0, description="Min-SNR loss weighting gamma (5.0 is typical); None: off. "
                                                            "Epsilon/v-prediction models only.")
    validation_images: int = fit_neutral_field(
        4, ge=0, description="Images in the validation grid saved at each checkpoint (0: none).")
    # -- generation --------------------------------------------------------------------------
    scheduler: str | None = fit_neutral_field(
        None, description="Inference scheduler class from diffusers (e.g. DPMSolverMultistepScheduler); default: the model's."
    )
    max_retries: int = fit_neutral_field(3, ge=0,
                                         description="Regenerations (with derived seeds) of a black, NaN or flat image.")


class LoopOptions(DiffusionTrainingOptions, TrainingOptions, DeviceOptions):
    """Every option the engine's training loop reads (a composition: no fields of its own)."""


#: The groups of a Stable Diffusion fine-tuning generator's options.
SD_OPTION_GROUPS = (PipelineOptions, ImageGuidanceOptions, DiffusionTrainingOptions, SamplingOptions, TrainingOptions,
                    DeviceOptions)


class DiffusionOptions(*SD_OPTION_GROUPS):  # type: ignore[misc]  # a composition: no fields of its own
    """Every option of a Stable Diffusion fine-tuning generator (loading, training, prompts, sampling)."""


class FlowMatchingOptions(GeneratorOptions):
    """Flow-matching training options (mix into a plugin's options next to :class:`DiffusionOptions`)."""

    timestep_sampling: Literal["logit_normal", "uniform", "mode"] = Field(
        "logit_normal", description="How training noise levels are drawn: logit_normal (SD3's default), uniform, "
                                    "or mode (SD3's mode sampling, see mode_scale).")
    logit_mean: float = Field(0.0, description="Mean of the normal behind logit_normal timestep sampling.")
    logit_std: float = Field(1.0, gt=0, description="Standard deviation of the normal behind logit_normal sampling.")
    mode_scale: float = Field(1.29, description="Scale of mode timestep sampling.")
    flow_shift: float | None = Field(
        None, gt=0, description="Shift of training noise levels towards noise (SD3: 3.0); None: the scheduler's.")
    loss_weighting: Literal["none", "sigma_sqrt", "cosmap"] = Field(
        "none", description="Per-noise-level loss weights: none, sigma_sqrt (sigma**-2) or cosmap.")

    def flow_rule_overrides(self) -> dict[str, Any]:
        """Keyword overrides for :meth:`~synthaug.diffusion._targets.FlowMatchingRule.from_config`."""
        return {"timestep_sampling": self.timestep_sampling, "logit_mean": self.logit_mean,
                "logit_std": self.logit_std, "mode_scale": self.mode_scale, "shift": self.flow_shift,
                "loss_weighting": self.loss_weighting}


class LoraOptions(GeneratorOptions):
    """Mix-in: the LoRA vocabulary shared by every LoRA generator (one meaning, defaults per model)."""

    rank: int = Field(8, ge=1, description="LoRA rank (r).")
    alpha: float | None = Field(None, gt=0, description="LoRA alpha (scale = alpha / rank); default: the rank.")
    target_modules: list[str] = Field(
        ["to_k", "to_q", "to_v", "to_out.0"], min_length=1, description="UNet module names that get LoRA layers."
    )
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA branch while training.")


class LargeModelOptions(GeneratorOptions):
    """Base models that need care to fit one GPU (SDXL, SD3, FLUX): the prompt encoded once with
    the text encoders moved off the GPU (their ``Options`` also set ``optimizer=`` :func:`auto_optimizer`)."""

    cache_text_embeddings: bool = fit_neutral_field(
        True,
        description="Encode the prompt once, then move the text encoders (and the VAE, with cache_latents) off the "
                    "GPU while the denoiser trains. Gives the same training as encoding every step.",
    )


def auto_optimizer() -> Any:
    """The ``optimizer`` field with default ``auto`` (8-bit AdamW on CUDA, AdamW elsewhere), for large models."""
    return override_default(DiffusionTrainingOptions, "optimizer", "auto",
                            description="auto: 8-bit AdamW (bitsandbytes) on CUDA, AdamW elsewhere; or adamw / adamw8bit.")


def fill_preset(options: Any, presets: dict[str, dict[str, Any]], *, key: str = "preset") -> None:
    """Give the options of ``presets[options.<key>]`` (a preset, a recipe) that the user did not set
    (``model_fields_set``) the preset's values; call it from an ``after`` model validator."""
    for name, value in presets.get(getattr(options, key, None) or "", {}).items():
        if name not in options.model_fields_set:
            object.__setattr__(options, name, value)  # the model is frozen; preset values are valid by construction

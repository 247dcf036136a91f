"""Options of ``lora-sdxl`` and the ``preset`` that makes SDXL LoRA training fit a 16 GB GPU."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from synthaug import fit_neutral_field
from synthaug.diffusion import DiffusionOptions, LargeModelOptions, LoraOptions, auto_optimizer, fill_preset

__all__ = ["DEFAULT_SDXL_MODEL", "FP16_FIX_VAE", "PRESETS", "LoraSDXLOptions"]

#: The SDXL 1.0 base weights on the Hugging Face hub.
DEFAULT_SDXL_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"
#: An SDXL VAE fine-tuned to run in float16 without NaNs (pass it as ``vae=``).
FP16_FIX_VAE = "madebyollin/sdxl-vae-fp16-fix"

#: Named combinations of options. A preset fills only the options the user did not set.
PRESETS: dict[str, dict[str, Any]] = {
    # SDXL at 1024 px on a 16 GB card (free Colab/Kaggle T4): float16 frozen weights with
    # float32 LoRA parameters, 8-bit AdamW, micro-batch 1 accumulated to an effective batch
    # of 4, gradient checkpointing, VAE latents and text embeddings computed once (the text
    # encoders and the VAE leave the GPU while the UNet trains), a 2-image validation grid.
    "t4": {
        "resolution": 1024,
        "dtype": "float16",
        "mixed_precision": "fp16",
        "optimizer": "adamw8bit",
        "train_batch_size": 1,
        "gradient_accumulation_steps": 4,
        "gradient_checkpointing": True,
        "cache_latents": True,
        "cache_text_embeddings": True,
        "validation_images": 2,
    },
}


class LoraSDXLOptions(LoraOptions, LargeModelOptions, DiffusionOptions):
    """Options of ``lora-sdxl`` (plus every shared diffusion option)."""

    optimizer: Literal["adamw", "adamw8bit", "auto"] = auto_optimizer()
    preset: Literal["t4"] | None = Field(
        None,
        description="Named option set; t4 fits SDXL LoRA training at 1024 px in 16 GB (fp16, 8-bit AdamW, batch 1 x 4 "
                    "accumulation, gradient checkpointing, cached latents and text embeddings). Options you set "
                    "explicitly override it.",
    )
    base_model: str = Field(
        DEFAULT_SDXL_MODEL,
        description="Base SDXL pipeline: a Hugging Face hub id or a local folder saved with save_pretrained.",
    )
    safety_checker: bool = fit_neutral_field(
        False, description="SDXL pipelines have no safety checker: must stay false (black, NaN and flat images are "
                           "detected and regenerated instead).",
    )
    vae: str | None = Field(
        None,
        description=f"Separate VAE (hub id or local folder), e.g. {FP16_FIX_VAE} to encode/decode in float16 "
                    "without NaNs; default: the base model's VAE (run in float32 when its config asks to upcast).",
    )
    resolution: int = Field(1024, ge=8, description="Training and generation side length in pixels (multiple of 8).")
    export_format: Literal["diffusers", "kohya"] = Field(
        "diffusers",
        description="diffusers: pytorch_lora_weights.safetensors (StableDiffusionXLPipeline.load_lora_weights); "
                    "kohya: also <concept>.safetensors in the kohya-ss/AUTOMATIC1111 layout (lora_unet_... keys).",
    )

    @model_validator(mode="after")
    def _apply_preset(self) -> LoraSDXLOptions:
        """Fill the preset's options that the user did not set (``model_fields_set``)."""
        fill_preset(self, PRESETS)
        return self

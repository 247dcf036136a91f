"""Options of ``lora-sd3``: SD3.5 defaults on top of the shared flow-matching LoRA options."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from synthaug import fit_neutral_field, override_default
from synthaug.diffusion import (
    FlowLoraOptions,
    LoraOptions,
    auto_optimizer,
    flow_lora_dtype,
    flow_lora_resolution,
    flow_lora_target_modules,
)

__all__ = ["DEFAULT_SD3_MODEL", "LoraSD3Options"]

#: Stable Diffusion 3.5 Medium (2.5 B-parameter MMDiT-X) on the Hugging Face hub (gated: accept its licence).
DEFAULT_SD3_MODEL = "stabilityai/stable-diffusion-3.5-medium"


class LoraSD3Options(FlowLoraOptions):
    """Options of ``lora-sd3`` (plus every shared flow-matching LoRA and diffusion option)."""

    dtype: Literal["auto", "float32", "float16", "bfloat16"] = flow_lora_dtype()
    resolution: int = flow_lora_resolution()
    rank: int = override_default(LoraOptions, "rank", 16)
    target_modules: list[str] = flow_lora_target_modules()
    optimizer: Literal["adamw", "adamw8bit", "auto"] = auto_optimizer()

    base_model: str = Field(
        DEFAULT_SD3_MODEL,
        description="Base StableDiffusion3Pipeline: a hub id (stabilityai/stable-diffusion-3.5-medium or -large) or "
                    "a local folder saved with save_pretrained.",
    )
    guidance_scale: float = fit_neutral_field(4.5, ge=0, description="Classifier-free guidance scale when generating.")
    num_inference_steps: int = fit_neutral_field(28, ge=1, description="Denoising steps per generated image.")
    export_format: Literal["diffusers", "kohya"] = Field(
        "diffusers",
        description="diffusers: pytorch_lora_weights.safetensors (StableDiffusion3Pipeline.load_lora_weights, "
                    "ComfyUI); kohya: also <concept>.safetensors in the kohya-ss sd-scripts SD3 layout "
                    "(lora_unet_joint_blocks_..., fused qkv), which ComfyUI loads too.",
    )

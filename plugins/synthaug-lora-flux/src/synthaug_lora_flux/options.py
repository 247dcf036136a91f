"""Options of ``lora-flux``: FLUX.1-dev defaults on top of the shared flow-matching LoRA options."""

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

__all__ = ["DEFAULT_FLUX_MODEL", "LoraFluxOptions"]

#: FLUX.1 [dev] on the Hugging Face hub (gated; weights under the non-commercial FLUX.1 [dev] licence).
DEFAULT_FLUX_MODEL = "black-forest-labs/FLUX.1-dev"


class LoraFluxOptions(FlowLoraOptions):
    """Options of ``lora-flux`` (plus every shared flow-matching LoRA and diffusion option)."""

    dtype: Literal["auto", "float32", "float16", "bfloat16"] = flow_lora_dtype()
    resolution: int = flow_lora_resolution()
    rank: int = override_default(LoraOptions, "rank", 16)
    target_modules: list[str] = flow_lora_target_modules()
    optimizer: Literal["adamw", "adamw8bit", "auto"] = auto_optimizer()

    base_model: str = Field(
        DEFAULT_FLUX_MODEL,
        description="Base FluxPipeline: a hub id (black-forest-labs/FLUX.1-dev; FLUX.1-schnell has no guidance input) "
                    "or a local folder saved with save_pretrained.",
    )
    guidance_scale: float = fit_neutral_field(
        3.5, ge=0,
        description="FLUX.1-dev's distilled guidance when generating: an input of the transformer (no second, "
                    "unconditional pass); ignored by models without a guidance embedding (FLUX.1-schnell).",
    )
    train_guidance_scale: float = Field(
        3.5, ge=0,
        description="The distilled guidance fed to FLUX.1-dev's transformer while training (diffusers' example: 3.5); "
                    "ignored by models without a guidance embedding.",
    )
    negative_prompt: str = fit_neutral_field(
        "", description="FLUX.1 takes no negative prompt (its guidance is distilled); must stay ''."
    )
    num_inference_steps: int = fit_neutral_field(28, ge=1, description="Denoising steps per generated image.")
    max_sequence_length: int = Field(
        512, ge=8, le=512, description="T5 tokens of the prompt (training and generation); longer prompts are cut."
    )
    export_format: Literal["diffusers", "kohya"] = Field(
        "diffusers",
        description="diffusers: pytorch_lora_weights.safetensors (FluxPipeline.load_lora_weights, ComfyUI); "
                    "kohya: also <concept>.safetensors in the kohya-ss sd-scripts FLUX layout "
                    "(lora_unet_double_blocks_..., fused qkv).",
    )

"""Options shared by the LoRA generators on flow-matching transformers (SD3.5, FLUX.1), and their presets.

The noise-level sampling and loss weighting options come from the engine's
:class:`~synthaug.diffusion._options.FlowMatchingOptions` (``timestep_sampling``, ``logit_mean``,
``logit_std``, ``mode_scale``, ``flow_shift``, ``loss_weighting``).

:class:`FlowModelOptions` is the group of a flow transformer's own options (preset,
quantization, prompt length); :class:`FlowLoraOptions` composes every group such a LoRA
generator has. A plugin's ``Options`` extends it and sets its defaults (base model, dtype,
resolution, rank, target modules, sampling) with :func:`~synthaug.override_default`;
the ``flow_lora_*`` functions give the fields SD3.5 and FLUX.1 share.

``preset=16gb`` is the QLoRA recipe: the frozen transformer in 4-bit NF4, LoRA on
top in float32, 8-bit AdamW, gradient checkpointing, cached latents and text embeddings (the
text encoders and the VAE leave the GPU while the transformer trains; T5 is loaded in 8-bit).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from .._generator import GeneratorOptions
from .._options import override_default
from ._options import (
    SD_OPTION_GROUPS,
    FlowMatchingOptions,
    LargeModelOptions,
    LoraOptions,
    PipelineOptions,
    fill_preset,
)

__all__ = ["ATTENTION_LORA_TARGETS", "FLOW_PRESETS", "FlowLoraOptions", "FlowModelOptions", "flow_lora_dtype",
           "flow_lora_resolution", "flow_lora_target_modules"]

#: The joint-attention projections of both streams (image: to_q/k/v/out; text: add_*/to_add_out), the
#: layers diffusers' SD3 and FLUX LoRA examples train by default.
ATTENTION_LORA_TARGETS = ("to_k", "to_q", "to_v", "to_out.0", "add_k_proj", "add_q_proj", "add_v_proj", "to_add_out")

#: Named combinations of options. A preset fills only the options the user did not set.
FLOW_PRESETS: dict[str, dict[str, Any]] = {
    # QLoRA on a 16 GB card at 1024 px: NF4 frozen transformer (bfloat16 compute), float32 LoRA,
    # 8-bit AdamW, micro-batch 1 accumulated to 4, gradient checkpointing, latents and prompt
    # embeddings computed once, a 2-image validation grid.
    "16gb": {
        "resolution": 1024,
        "quantize_base": "nf4",
        "quantize_text_encoder": "int8",
        "dtype": "bfloat16",
        "mixed_precision": "bf16",
        "optimizer": "adamw8bit",
        "train_batch_size": 1,
        "gradient_accumulation_steps": 4,
        "gradient_checkpointing": True,
        "cache_latents": True,
        "cache_text_embeddings": True,
        "validation_images": 2,
    },
}


class FlowModelOptions(GeneratorOptions):
    """A flow-matching transformer's own options: the preset, quantization and prompt length."""

    preset: Literal["16gb"] | None = Field(
        None,
        description="Named option set; 16gb: QLoRA at 1024 px for a 16 GB GPU (NF4 base, int8 T5, bfloat16, "
                    "8-bit AdamW, batch 1 x 4 accumulation, gradient checkpointing, cached latents and text "
                    "embeddings). Options you set explicitly override it.",
    )
    quantize_base: Literal["none", "nf4"] = Field(
        "none",
        description="nf4: load the frozen transformer in 4-bit NF4 through bitsandbytes (diffusers' "
                    "BitsAndBytesConfig; needs a CUDA GPU) and train LoRA on top (QLoRA); none: full precision.",
    )
    quantize_text_encoder: Literal["none", "int8", "nf4"] = Field(
        "none",
        description="int8 / nf4: load the T5 text encoder through bitsandbytes (transformers' BitsAndBytesConfig; "
                    "needs a CUDA GPU): 4.4 / about 2.5 GiB instead of 8.9 for T5-XXL. It then stays on the GPU.",
    )
    max_sequence_length: int = Field(
        256, ge=8, le=512, description="T5 tokens of the prompt (training and generation); longer prompts are cut."
    )

    @model_validator(mode="after")
    def _apply_preset(self) -> FlowModelOptions:
        """Fill the preset's options that the user did not set (``model_fields_set``)."""
        fill_preset(self, FLOW_PRESETS)
        return self


class FlowLoraOptions(FlowModelOptions, LoraOptions, LargeModelOptions, FlowMatchingOptions,  # type: ignore[misc]
                      *SD_OPTION_GROUPS):
    """Every option of a LoRA generator on a flow-matching transformer (a composition: no fields
    of its own; a plugin's ``Options`` sets the defaults with the ``flow_lora_*`` fields below)."""


def flow_lora_dtype() -> Any:
    """``dtype`` defaulting to bfloat16 (SD3 and FLUX overflow in float16)."""
    return override_default(PipelineOptions, "dtype", "bfloat16", description=(
        "Dtype of the frozen base weights (bfloat16: SD3/FLUX overflow in float16); auto: float16 on GPU, float32 on "
        "CPU; float32 for CPU tests."))


def flow_lora_resolution() -> Any:
    """``resolution`` defaulting to 1024 px, a multiple of 16 (the transformer's patch size x VAE factor)."""
    return override_default(PipelineOptions, "resolution", 1024, description=(
        "Training and generation side length in pixels (multiple of 16)."), ge=16)


def flow_lora_target_modules() -> Any:
    """``target_modules``: the attention projections of both streams."""
    return override_default(LoraOptions, "target_modules", list(ATTENTION_LORA_TARGETS), description=(
        "Transformer module names that get LoRA layers (default: the attention projections of the image and text "
        "streams)."))

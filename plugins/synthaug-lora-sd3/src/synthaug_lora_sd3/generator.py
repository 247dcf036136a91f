"""The ``lora-sd3`` generator: one LoRA per concept on a Stable Diffusion 3.5 transformer (MMDiT).

Everything but SD3's conditioning comes from :class:`synthaug.diffusion.FlowLoraGenerator`
and the engine: flow-matching training (logit-normal noise levels shifted by the scheduler's
``shift``), cached latents and prompt embeddings, QLoRA, checkpoints, seeded generation.
``export_format=kohya`` adds the kohya-ss SD3 layout (:mod:`synthaug_lora_sd3.kohya`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthaug import Concept
from synthaug.diffusion import FlowLoraGenerator

from .options import LoraSD3Options

__all__ = ["LoraSD3Generator", "kohya_file_name"]


def kohya_file_name(concept: Concept) -> str:
    """Name of the kohya-layout file of ``concept`` (UIs show the file name as the LoRA's name)."""
    return f"{concept.slug}.safetensors"


class LoraSD3Generator(FlowLoraGenerator):
    """Fine-tune a LoRA per concept on SD3.5; generate the concept from it."""

    name = "lora-sd3"
    version = "1"
    description = "Stable Diffusion 3.5 (flow matching) fine-tuned with one LoRA per class; QLoRA for 16 GB GPUs."
    Options = LoraSD3Options
    pipeline_class = "StableDiffusion3Pipeline"
    transformer_class = "SD3Transformer2DModel"
    t5_attribute = "text_encoder_3"

    def training_conditioning(self, pipe: Any, prompts: list[str]) -> dict[str, Any]:
        """Token embeddings (both CLIPs side by side, then T5 along the sequence) and both pooled CLIP embeddings."""
        embeds, _, pooled, _ = pipe.encode_prompt(
            prompt=prompts, prompt_2=None, prompt_3=None, device=pipe.transformer.device, num_images_per_prompt=1,
            do_classifier_free_guidance=False, max_sequence_length=self.options.max_sequence_length,
        )
        return {"encoder_hidden_states": embeds, "pooled_projections": pooled}

    # -- kohya-ss export (the engine calls these with export_format=kohya) ------------------------
    def kohya_module(self, module: str) -> Any:
        from .kohya import kohya_module

        return kohya_module(module)

    def write_kohya(self, path: Path, state: Any, out_features: Any, *, alpha: float, rank: int,
                    metadata: Any) -> Path:
        from .kohya import save_kohya_sd3_lora

        return save_kohya_sd3_lora(path, state, out_features, alpha=alpha, rank=rank, metadata=metadata)

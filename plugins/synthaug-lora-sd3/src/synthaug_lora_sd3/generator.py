"""The ``lora-sd3`` generator: one LoRA per concept on a Stable Diffusion 3.5 transformer (MMDiT).

Everything but SD3's conditioning comes from :class:`synthaug.diffusion.FlowLoraGenerator`
and the engine: flow-matching training (logit-normal noise levels shifted by the scheduler's
``shift``), cached latents and prompt embeddings, QLoRA, checkpoints, seeded generation.
``export_format=kohya`` adds the kohya-ss SD3 layout (:mod:`synthaug_lora_sd3.kohya`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthaug import Concept, InvalidOptionsError
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

    # -- kohya-ss export --------------------------------------------------------------------------
    def add_trainable(self, pipe: Any, concept: Concept) -> dict[str, Any]:
        """The shared LoRA; with ``export_format=kohya`` every LoRA module must have a kohya name (checked first)."""
        params = super().add_trainable(pipe, concept)
        if self.options.export_format == "kohya":
            from .kohya import kohya_module

            for name in params:
                try:
                    kohya_module(name.removeprefix("transformer.").split(".lora_")[0])
                except ValueError as exc:
                    pipe.unload_lora_weights()
                    raise InvalidOptionsError(f"generator {self.name!r}: option export_format=kohya with "
                                              f"target_modules={self.options.target_modules}: {exc}") from None
        return params

    def save_adapter(self, pipe: Any, concept: Concept, folder: Path) -> list[Path]:
        """The diffusers-layout file, and with ``export_format=kohya`` the kohya-layout file too."""
        files = super().save_adapter(pipe, concept, folder)
        if self.options.export_format != "kohya":
            return files
        import torch

        from .kohya import save_kohya_sd3_lora

        o = self.options
        out_features = {n.removesuffix(".base_layer"): m.out_features for n, m in pipe.transformer.named_modules()
                        if isinstance(m, torch.nn.Linear)}
        metadata = {"ss_output_name": concept.slug, "synthaug_prompt": self.prompt_for(concept)}
        return [*files, save_kohya_sd3_lora(folder / kohya_file_name(concept), self.lora_state(pipe), out_features,
                                            alpha=o.alpha or o.rank, rank=o.rank, metadata=metadata)]

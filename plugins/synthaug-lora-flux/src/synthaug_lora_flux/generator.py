"""The ``lora-flux`` generator: one LoRA per concept on a FLUX.1 transformer.

Everything but FLUX's specifics comes from :class:`synthaug.diffusion.FlowLoraGenerator`
and the engine. FLUX adds three things, here:

- the denoiser works on 2x2-packed latent tokens with 3-axis position ids, takes the noise level
  in [0, 1] and, for FLUX.1-dev, the distilled guidance scale as an input (:class:`FluxDenoiser`,
  ``train_guidance_scale``; generation uses ``guidance_scale``);
- the noise-level shift depends on the resolution (the scheduler's ``use_dynamic_shifting``: the
  shift ``exp(mu)`` the pipeline samples with at that image size), unless ``flow_shift`` is set;
- prompts give T5 token embeddings, CLIP's pooled embedding and text position ids.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from synthaug import Concept, InvalidOptionsError
from synthaug.diffusion import FlowLoraGenerator, TransformerDenoiser

from .options import LoraFluxOptions

__all__ = ["FluxDenoiser", "LoraFluxGenerator", "kohya_file_name", "training_shift"]


def kohya_file_name(concept: Concept) -> str:
    """Name of the kohya-layout file of ``concept`` (UIs show the file name as the LoRA's name)."""
    return f"{concept.slug}.safetensors"


class FluxDenoiser(TransformerDenoiser):
    """``FluxTransformer2DModel`` as a denoiser of unpacked latents ``(B, C, H, W)``.

    Packs the latents into 2x2 tokens, adds image position ids, divides the engine's timesteps
    (noise level x 1000) back to FLUX's [0, 1] and, when the model has a guidance embedding,
    passes ``guidance`` (FLUX.1-dev's distilled guidance scale); unpacks the prediction.
    """

    def __init__(self, module: Any, *, guidance: float, vae_scale_factor: int) -> None:
        super().__init__(module)
        self.guidance, self.vae_scale_factor = float(guidance), int(vae_scale_factor)

    def __call__(self, noisy: Any, timesteps: Any, conditioning: dict[str, Any]) -> Any:
        import torch
        from diffusers import FluxPipeline

        b, c, h, w = noisy.shape
        packed = FluxPipeline._pack_latents(noisy.to(self.dtype), b, c, h, w)
        image_ids = FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, noisy.device, self.dtype)
        guidance = (torch.full((b,), self.guidance, device=noisy.device, dtype=torch.float32)
                    if self.module.config.guidance_embeds else None)
        out = self.module(hidden_states=packed, timestep=timesteps / 1000, guidance=guidance, img_ids=image_ids,
                          return_dict=False, **conditioning)[0]
        s = self.vae_scale_factor
        return FluxPipeline._unpack_latents(out, h * s, w * s, s)


def training_shift(scheduler_config: Any, resolution: int, vae_scale_factor: int) -> float:
    """The noise-level shift FLUX samples with at ``resolution``: ``exp(mu)``, ``mu`` linear in the token count."""
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    tokens = (resolution // vae_scale_factor // 2) ** 2
    mu = calculate_shift(tokens, scheduler_config.get("base_image_seq_len", 256),
                         scheduler_config.get("max_image_seq_len", 4096), scheduler_config.get("base_shift", 0.5),
                         scheduler_config.get("max_shift", 1.15))
    return math.exp(mu)


class LoraFluxGenerator(FlowLoraGenerator):
    """Fine-tune a LoRA per concept on FLUX.1; generate the concept from it."""

    name = "lora-flux"
    version = "1"
    description = "FLUX.1-dev (flow matching) fine-tuned with one LoRA per class; QLoRA for 16 GB GPUs (preset=16gb)."
    Options = LoraFluxOptions
    pipeline_class = "FluxPipeline"
    transformer_class = "FluxTransformer2DModel"
    t5_attribute = "text_encoder_2"

    def check_options(self) -> None:
        super().check_options()
        if self.options.negative_prompt:
            raise InvalidOptionsError(f"generator {self.name!r}: option negative_prompt="
                                      f"{self.options.negative_prompt!r}: FLUX.1 takes no negative prompt (its "
                                      "guidance is distilled); set negative_prompt=''")

    def denoiser(self, pipe: Any) -> FluxDenoiser:
        return FluxDenoiser(pipe.transformer, guidance=self.options.train_guidance_scale,
                            vae_scale_factor=pipe.vae_scale_factor)

    def target_rule(self, pipe: Any) -> Any:
        """Flow matching with the scheduler's shift, or FLUX's resolution-dependent one (``use_dynamic_shifting``)."""
        from synthaug.diffusion import FlowMatchingRule

        config = pipe.scheduler.config
        overrides = self.options.flow_rule_overrides()
        if overrides.get("shift") is None and config.get("use_dynamic_shifting"):
            overrides["shift"] = training_shift(config, self.options.resolution, pipe.vae_scale_factor)
        return FlowMatchingRule.from_config(config, **overrides)

    def training_conditioning(self, pipe: Any, prompts: list[str]) -> dict[str, Any]:
        """T5 token embeddings, CLIP's pooled embedding and the text position ids."""
        embeds, pooled, text_ids = pipe.encode_prompt(
            prompt=prompts, prompt_2=None, device=pipe.transformer.device, num_images_per_prompt=1,
            max_sequence_length=self.options.max_sequence_length,
        )
        return {"encoder_hidden_states": embeds, "pooled_projections": pooled, "txt_ids": text_ids}

    # -- kohya-ss export (the engine calls these with export_format=kohya) ------------------------
    def kohya_module(self, module: str) -> Any:
        from .kohya import kohya_module

        return kohya_module(module)

    def write_kohya(self, path: Path, state: Any, out_features: Any, *, alpha: float, rank: int,
                    metadata: Any) -> Path:
        from .kohya import save_kohya_flux_lora

        return save_kohya_flux_lora(path, state, out_features, alpha=alpha, rank=rank, metadata=metadata)

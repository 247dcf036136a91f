"""The ``lora-sdxl`` generator: one LoRA per concept on a Stable Diffusion XL UNet.

Training, checkpoints, prompts and generation come from :mod:`synthaug.diffusion`; this module
says what SDXL needs on top: two text encoders giving token and pooled embeddings, time ids
(original size, crop corner, target size) per training image, an optional separate VAE, the
text encoders and VAE leaving the GPU once their outputs are cached, 8-bit AdamW by default
on CUDA, and export in the diffusers and (optionally) kohya-ss layouts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from synthaug import Concept, GenerationError, InvalidOptionsError
from synthaug.diffusion import DiffusionGeneratorBase

from .options import LoraSDXLOptions

__all__ = ["LORA_FILE", "LoraSDXLGenerator", "kohya_file_name"]

#: The diffusers-layout LoRA file (the diffusers default name).
LORA_FILE = "pytorch_lora_weights.safetensors"
_ADAPTER = "synthaug"


def kohya_file_name(concept: Concept) -> str:
    """Name of the kohya-layout file of ``concept`` (UIs show the file name as the LoRA's name)."""
    return f"{concept.slug}.safetensors"


class LoraSDXLGenerator(DiffusionGeneratorBase):
    """Fine-tune a LoRA per concept on SDXL; generate the concept from it."""

    name = "lora-sdxl"
    version = "1"
    description = "Stable Diffusion XL fine-tuned with one LoRA per class; fits 16 GB GPUs (preset=t4)."
    Options = LoraSDXLOptions
    pipeline_class = "StableDiffusionXLPipeline"

    def __init__(self, options: Any = None, /, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        self._offloaded: list[tuple[Any, Any]] = []  # (module, its device before offloading)

    def check_options(self) -> None:
        super().check_options()
        if self.options.safety_checker:
            raise InvalidOptionsError(f"generator {self.name!r}: option safety_checker=true: SDXL pipelines have "
                                      "no safety checker; leave it false")

    # -- loading -------------------------------------------------------------------------------
    def load_kwargs(self) -> dict[str, Any]:
        """No invisible watermark (it alters pixels); the separate VAE when ``vae`` is set."""
        kwargs: dict[str, Any] = {"add_watermarker": False}
        if self.options.vae:
            from synthaug.diffusion import load_vae, resolve_device, resolve_dtype

            kwargs["vae"] = load_vae(self.options.vae, dtype=resolve_dtype(self.options.dtype,
                                                                            resolve_device(self.options.device)))
        return kwargs

    # -- what is trained -----------------------------------------------------------------------
    def _lora_config(self) -> Any:
        from synthaug.diffusion import lora_config

        o = self.options
        return lora_config(rank=o.rank, alpha=o.alpha, target_modules=o.target_modules, dropout=o.lora_dropout)

    def add_trainable(self, pipe: Any, concept: Concept) -> dict[str, Any]:
        from synthaug.diffusion import add_lora, lora_parameters

        add_lora(pipe.unet, self._lora_config(), adapter_name=_ADAPTER, generator=self.name)
        params = lora_parameters({"unet": pipe.unet})
        if self.options.export_format == "kohya":
            self._check_kohya_names(pipe, params)
        return params

    def _check_kohya_names(self, pipe: Any, params: Mapping[str, Any]) -> None:
        """Fail before training when a LoRA module has no kohya name (export_format=kohya)."""
        from synthaug.diffusion import require_kohya_names

        try:
            require_kohya_names({name.removeprefix("unet.").split(".lora_")[0] for name in params}, pipe.unet.config,
                                naming="sgm", generator=self.name, target_modules=self.options.target_modules)
        except InvalidOptionsError:
            pipe.unload_lora_weights()
            raise

    def conditions_need_grad(self) -> bool:
        """Without ``cache_text_embeddings`` the prompt is encoded again at every step."""
        return not self.options.cache_text_embeddings

    def training_conditioning(self, pipe: Any, prompts: list[str]) -> dict[str, Any]:
        """Token embeddings of both text encoders and the pooled embedding of the second."""
        embeds, _, pooled, _ = pipe.encode_prompt(prompt=prompts, device=pipe.unet.device, num_images_per_prompt=1,
                                                  do_classifier_free_guidance=False)
        return {"encoder_hidden_states": embeds, "added_cond_kwargs": {"text_embeds": pooled}}

    def image_conditioning(self, pipe: Any, conditioning: dict[str, Any], images: list[Any]) -> dict[str, Any]:
        """Add SDXL's time ids: each image's original (height, width), crop (top, left) and target size."""
        import torch

        embeds = conditioning["encoder_hidden_states"]
        time_ids = torch.tensor([[*im.original_size, *im.crop_top_left, *im.target_size] for im in images],
                                dtype=embeds.dtype, device=embeds.device)
        return {**conditioning, "added_cond_kwargs": {**conditioning["added_cond_kwargs"], "time_ids": time_ids}}

    # -- GPU memory while training ---------------------------------------------------------------
    def before_training(self, pipe: Any, trainer: Any) -> None:
        """Check the cached latents; cache the prompt embeddings; move what the UNet no longer needs to the CPU."""
        o = self.options
        if o.cache_latents:
            self._check_latents(trainer.latents)
        modules = []
        if o.cache_text_embeddings:
            trainer.conditioning(1)
            modules += self.text_encoders(pipe)
        if o.cache_latents:
            modules.append(pipe.vae)
        self._offloaded = [(m, m.device) for m in modules if m.device.type != "cpu"]
        self._move_offloaded(to_cpu=True)

    def _check_latents(self, latents: Any) -> None:
        import torch

        if not (torch.isfinite(latents.mean).all() and torch.isfinite(latents.std).all()):
            raise GenerationError(
                f"generator {self.name!r}: the VAE gave NaN/inf latents in {latents.dtype}; use a VAE that "
                "works in float16 (vae=madebyollin/sdxl-vae-fp16-fix) or dtype=float32"
            )

    def _move_offloaded(self, *, to_cpu: bool) -> None:
        if not self._offloaded:
            return
        import torch

        for module, device in self._offloaded:
            module.to("cpu" if to_cpu else device)
        if to_cpu and torch.cuda.is_available():
            torch.cuda.empty_cache()

    @contextlib.contextmanager
    def _onloaded(self) -> Iterator[None]:
        """Bring offloaded modules back to their device for the duration (e.g. a validation grid)."""
        self._move_offloaded(to_cpu=False)
        try:
            yield
        finally:
            self._move_offloaded(to_cpu=True)

    def save_validation_grid(self, concept: Concept, folder: Path, step: int) -> Path:
        """The shared validation grid, with offloaded modules back on the GPU and the VAE decoding one
        image at a time (a batch of 1024 px images decoded at once would not fit next to the training state)."""
        vae = self.pipeline.vae
        with self._onloaded():
            vae.enable_slicing()
            try:
                return super().save_validation_grid(concept, folder, step)
            finally:
                vae.disable_slicing()

    def finish_training(self, pipe: Any, concept: Concept) -> None:
        self._move_offloaded(to_cpu=False)
        self._offloaded = []
        pipe.unload_lora_weights()

    # -- files -----------------------------------------------------------------------------------
    def save_adapter(self, pipe: Any, concept: Concept, folder: Path) -> list[Path]:
        """Write the LoRA in peft's key layout (one layout for every target module, ``alpha / rank`` baked
        into ``lora_B`` so that every loader applies the same delta), and with ``export_format=kohya``
        the kohya-layout file too (unbaked, with ``.alpha``)."""
        from diffusers import StableDiffusionXLPipeline

        from synthaug.diffusion import baked_lora, lora_state_dict

        o = self.options
        state = lora_state_dict(pipe.unet, adapter_name=_ADAPTER)
        baked, metadata = baked_lora(state, self._lora_config())
        StableDiffusionXLPipeline.save_lora_weights(
            str(folder), unet_lora_layers=baked, unet_lora_adapter_metadata=metadata, weight_name=LORA_FILE,
            safe_serialization=True,
        )
        files = [folder / LORA_FILE]
        if o.export_format == "kohya":
            files.append(self._save_kohya(pipe, concept, folder, state))
        return files

    def _save_kohya(self, pipe: Any, concept: Concept, folder: Path, state: Mapping[str, Any]) -> Path:
        from synthaug.diffusion import KOHYA_SDXL_METADATA, save_kohya_lora

        o = self.options
        try:
            return save_kohya_lora(folder / kohya_file_name(concept), state, pipe.unet.config,
                                   alpha=o.alpha or o.rank, rank=o.rank,
                                   metadata={**KOHYA_SDXL_METADATA, "ss_output_name": concept.slug,
                                             "synthaug_prompt": self.prompt_for(concept)})
        except ValueError as exc:
            raise InvalidOptionsError(f"generator {self.name!r}: option export_format=kohya: {exc}") from None

    def activate_adapter(self, pipe: Any, concept: Concept, folder: Path) -> None:
        """Load the concept's LoRA file; every saved module must be active (else GenerationError)."""
        from synthaug.diffusion import check_lora_loaded

        pipe.unload_lora_weights()
        pipe.load_lora_weights(str(folder), weight_name=LORA_FILE, adapter_name=_ADAPTER)
        check_lora_loaded(pipe, folder / LORA_FILE, adapter_name=_ADAPTER)

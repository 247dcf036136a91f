"""The ``lora-sd15`` generator: one LoRA per concept on a Stable Diffusion 1.x UNet (peft).

Training, checkpoints, prompts and generation come from :mod:`synthaug.diffusion`; this
module only says what is trained (LoRA on the UNet attention projections, optionally on
the text encoder) and how it is saved: ``pytorch_lora_weights.safetensors`` in one key layout
(peft's), loadable with ``pipe.load_lora_weights(folder)``, and with ``export_format=kohya``
also ``<concept>.safetensors`` in the kohya-ss layout that AUTOMATIC1111, ComfyUI and kohya-ss
load. Every load for generation is checked: all saved modules must be active.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from synthaug import Concept, SynthaugError, hookimpl
from synthaug.diffusion import (
    KOHYA_SD15_METADATA,
    DiffusionGeneratorBase,
    DiffusionOptions,
    LoraOptions,
    add_lora,
    baked_lora,
    check_lora_loaded,
    clip_lora_file_keys,
    lora_config,
    lora_parameters,
    lora_state_dict,
    require_kohya_names,
    save_kohya_lora,
)

__all__ = ["LORA_FILE", "LoraSD15Generator", "LoraSD15Options", "kohya_file_name", "register_generators"]
__version__ = "0.1.0"

#: The file the LoRA is saved to (the diffusers default name).
LORA_FILE = "pytorch_lora_weights.safetensors"
_ADAPTER = "synthaug"


def kohya_file_name(concept: Concept) -> str:
    """Name of the kohya-layout file of ``concept`` (UIs show the file name as the LoRA's name)."""
    return f"{concept.slug}.safetensors"


class LoraSD15Options(LoraOptions, DiffusionOptions):
    """Options of ``lora-sd15`` (plus every shared diffusion and LoRA option)."""

    train_text_encoder: bool = Field(False, description="Also train a LoRA on the text encoder's attention.")
    text_encoder_target_modules: list[str] = Field(
        ["q_proj", "k_proj", "v_proj", "out_proj"], min_length=1,
        description="Text-encoder module names that get LoRA layers (with train_text_encoder).",
    )
    learning_rate: float = Field(1e-4, gt=0, description="Peak learning rate.")
    max_train_steps: int = Field(1500, ge=1, description="Optimizer steps per concept.")
    export_format: Literal["diffusers", "kohya"] = Field(
        "diffusers",
        description="diffusers: pytorch_lora_weights.safetensors (StableDiffusionPipeline.load_lora_weights); "
                    "kohya: also <concept>.safetensors in the kohya-ss/AUTOMATIC1111/ComfyUI layout "
                    "(lora_unet_down_blocks_..., lora_te_... keys).",
    )


class LoraSD15Generator(DiffusionGeneratorBase):
    """Fine-tune a LoRA per concept on Stable Diffusion 1.x; generate the concept from it."""

    name = "lora-sd15"
    version = "1"
    description = "Stable Diffusion 1.x fine-tuned with one LoRA per class (peft, diffusers-compatible files)."
    Options = LoraSD15Options

    def _lora_config(self, targets: list[str]) -> Any:
        o = self.options
        return lora_config(rank=o.rank, alpha=o.alpha, target_modules=targets, dropout=o.lora_dropout)

    def add_trainable(self, pipe: Any, concept: Concept) -> dict[str, Any]:
        o = self.options
        modules = {"unet": pipe.unet}
        try:
            add_lora(pipe.unet, self._lora_config(o.target_modules), adapter_name=_ADAPTER, generator=self.name)
            if o.train_text_encoder:
                add_lora(pipe.text_encoder, self._lora_config(o.text_encoder_target_modules), adapter_name=_ADAPTER,
                         generator=self.name)
                modules["text_encoder"] = pipe.text_encoder
            params = lora_parameters(modules)
            if o.export_format == "kohya":
                unet_modules = {n.removeprefix("unet.").split(".lora_")[0] for n in params if n.startswith("unet.")}
                require_kohya_names(unet_modules, pipe.unet.config, naming="diffusers", generator=self.name,
                                    target_modules=o.target_modules)
        except SynthaugError:
            pipe.unload_lora_weights()
            raise
        return params

    def trainable_modules(self, pipe: Any) -> list[Any]:
        return [pipe.unet, pipe.text_encoder] if self.options.train_text_encoder else [pipe.unet]

    def conditions_need_grad(self) -> bool:
        return self.options.train_text_encoder

    def save_adapter(self, pipe: Any, concept: Concept, folder: Path) -> list[Path]:
        """Write the LoRA in peft's key layout (one layout for every target module, ``alpha / rank`` baked
        into ``lora_B`` so that every loader applies the same delta), and with ``export_format=kohya``
        the kohya-layout file too (unbaked, with ``.alpha``)."""
        from diffusers import StableDiffusionPipeline

        o = self.options
        states = {"unet": lora_state_dict(pipe.unet, adapter_name=_ADAPTER)}
        layers: dict[str, Any] = dict(zip(("unet_lora_layers", "unet_lora_adapter_metadata"),
                                          baked_lora(states["unet"], self._lora_config(o.target_modules))))
        if o.train_text_encoder:
            states["text_encoder"] = lora_state_dict(pipe.text_encoder, adapter_name=_ADAPTER)
            # keys as ComfyUI reads them (text_encoder.text_model.encoder.layers.*), which diffusers loads too
            layers.update(zip(("text_encoder_lora_layers", "text_encoder_lora_adapter_metadata"),
                              baked_lora(clip_lora_file_keys(states["text_encoder"]),
                                         self._lora_config(o.text_encoder_target_modules))))
        StableDiffusionPipeline.save_lora_weights(str(folder), weight_name=LORA_FILE, safe_serialization=True, **layers)
        files = [folder / LORA_FILE]
        if o.export_format == "kohya":
            files.append(save_kohya_lora(
                folder / kohya_file_name(concept), states["unet"], pipe.unet.config, alpha=o.alpha or o.rank,
                rank=o.rank, naming="diffusers", text_encoder_state_dict=states.get("text_encoder"),
                metadata={**KOHYA_SD15_METADATA, "ss_output_name": concept.slug,
                          "synthaug_prompt": self.prompt_for(concept)},
            ))
        return files

    def finish_training(self, pipe: Any, concept: Concept) -> None:
        pipe.unload_lora_weights()

    def activate_adapter(self, pipe: Any, concept: Concept, folder: Path) -> None:
        pipe.unload_lora_weights()
        pipe.load_lora_weights(str(folder), weight_name=LORA_FILE, adapter_name=_ADAPTER)
        check_lora_loaded(pipe, folder / LORA_FILE, adapter_name=_ADAPTER)


@hookimpl
def register_generators(register) -> None:
    register(LoraSD15Generator)

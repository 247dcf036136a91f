"""``FlowLoraGenerator``: one LoRA per concept on a flow-matching transformer (SD3.5, FLUX.1), QLoRA optional.

The training loop, target rule (flow matching, from :class:`~synthaug.diffusion._targets`),
checkpoints, prompts and seeded generation are the engine's (:class:`DiffusionGeneratorBase`).
This module adds what transformer LoRA plugins share:

- LoRA layers (peft) on the pipeline's ``transformer``, saved with the pipeline class's own
  ``save_lora_weights`` (keys ``transformer.<module>.lora_A/B.weight``) so stock diffusers
  ``load_lora_weights`` loads them (ComfyUI maps the same ``transformer.`` keys for SD3 and FLUX),
  with ``alpha / rank`` baked into ``lora_B`` so that loaders ignoring the peft metadata apply it right;
- ``quantize_base=nf4``: the frozen transformer loaded in 4-bit NF4 through diffusers'
  ``BitsAndBytesConfig`` (QLoRA), and ``quantize_text_encoder=int8|nf4`` for the T5 encoder
  through transformers' ``BitsAndBytesConfig`` (both need a CUDA GPU);
- cached prompt embeddings with the text encoders and the VAE moved off the GPU while the
  transformer trains (bitsandbytes-quantized modules stay where they are: moving them needs recent
  bitsandbytes and is untested here);
- the training's peak GPU memory in the artifact (``peak_gpu_memory_gib``) when on CUDA.

A plugin sets ``name``, ``Options``, ``pipeline_class``, ``t5_attribute`` and implements
:meth:`~DiffusionGeneratorBase.training_conditioning` (and, for FLUX, the denoiser and shift).
Importing this module does not import torch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from .._errors import InvalidOptionsError
from .._generator import Concept
from .._progress import NULL_PROGRESS, Progress
from ._base import DiffusionGeneratorBase
from ._flow_options import FlowLoraOptions

__all__ = ["ADAPTER_NAME", "LORA_FILE", "FlowLoraGenerator", "ModuleOffloader"]

#: The diffusers-layout LoRA file (the diffusers default name).
LORA_FILE = "pytorch_lora_weights.safetensors"
#: The peft adapter name of the LoRA being trained or generated with.
ADAPTER_NAME = "synthaug"
GIB = 2**30


def _is_quantized(module: Any) -> bool:
    """True for a model loaded through bitsandbytes (diffusers or transformers quantization)."""
    return bool(getattr(module, "is_loaded_in_4bit", False) or getattr(module, "is_loaded_in_8bit", False)
                or getattr(module, "is_quantized", False))


class ModuleOffloader:
    """Moves modules to the CPU while the denoiser trains and back for validation, generation and the end.

    Quantized (bitsandbytes) modules and modules already on the CPU are left alone.
    """

    def __init__(self) -> None:
        self._moved: list[tuple[Any, Any]] = []  # (module, its device before offloading)

    def offload(self, modules: list[Any]) -> None:
        import torch

        self._moved = [(m, m.device) for m in modules if m.device.type != "cpu" and not _is_quantized(m)]
        for module, _ in self._moved:
            module.to("cpu")
        if self._moved and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def restore(self) -> None:
        for module, device in self._moved:
            module.to(device)
        self._moved = []

    @contextlib.contextmanager
    def restored(self) -> Iterator[None]:
        """Bring the offloaded modules back for the duration (e.g. a validation grid)."""
        moved = list(self._moved)
        self.restore()
        try:
            yield
        finally:
            self.offload([m for m, _ in moved])


class FlowLoraGenerator(DiffusionGeneratorBase):
    """Fine-tune a LoRA per concept on a flow-matching transformer pipeline; generate the concept from it."""

    Options: ClassVar[type[FlowLoraOptions]] = FlowLoraOptions
    #: The diffusers transformer class (loaded separately when quantized).
    transformer_class: ClassVar[str] = "SD3Transformer2DModel"
    #: The pipeline attribute holding the T5 encoder (SD3: text_encoder_3, FLUX: text_encoder_2).
    t5_attribute: ClassVar[str] = "text_encoder_3"

    def __init__(self, options: Any = None, /, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        self._offloader = ModuleOffloader()

    def check_options(self) -> None:
        o = self.options
        if o.resolution % 16:
            raise InvalidOptionsError(f"generator {self.name!r}: option resolution={o.resolution}: use a multiple of "
                                      "16 (8x VAE downsampling, then 2x2 transformer patches)")
        if o.safety_checker:
            raise InvalidOptionsError(f"generator {self.name!r}: option safety_checker=true: {self.pipeline_class} "
                                      "has no safety checker; leave it false")

    # -- loading -----------------------------------------------------------------------------
    def _quantized_on_cuda(self, what: str) -> tuple[Any, Any]:
        """(device, dtype) for a bitsandbytes-quantized component; a clear error off CUDA or without bitsandbytes."""
        from .._optional import require
        from ._loading import resolve_device, resolve_dtype

        device = resolve_device(self.options.device)
        if device.type != "cuda":
            raise InvalidOptionsError(
                f"generator {self.name!r}: option {what} loads weights through bitsandbytes, which diffusers and "
                f"transformers allow only on a CUDA GPU (device is {device.type}); set {what.split('=')[0]}=none "
                "or run on a GPU"
            )
        require("bitsandbytes", purpose=f"generator {self.name!r} option {what}")
        return device, resolve_dtype(self.options.dtype, device)

    def load_kwargs(self) -> dict[str, Any]:
        """The quantized transformer / T5 encoder when asked for (loaded here, handed to ``from_pretrained``)."""
        o = self.options
        kwargs: dict[str, Any] = {}
        if o.quantize_base == "nf4":
            kwargs["transformer"] = self._load_nf4_transformer()
        if o.quantize_text_encoder != "none":
            kwargs[self.t5_attribute] = self._load_quantized_t5()
        return kwargs

    def _load_nf4_transformer(self) -> Any:
        import diffusers

        from ._loading import _source, quiet_libraries

        _, dtype = self._quantized_on_cuda("quantize_base=nf4")
        config = diffusers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                              bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype)
        with quiet_libraries():
            return getattr(diffusers, self.transformer_class).from_pretrained(
                _source(self.options.base_model), subfolder="transformer", quantization_config=config, dtype=dtype,
                variant=self.options.variant)

    def _load_quantized_t5(self) -> Any:
        import transformers

        from ._loading import _source, quiet_libraries

        o = self.options
        _, dtype = self._quantized_on_cuda(f"quantize_text_encoder={o.quantize_text_encoder}")
        if o.quantize_text_encoder == "int8":
            config = transformers.BitsAndBytesConfig(load_in_8bit=True)
        else:
            config = transformers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                     bnb_4bit_compute_dtype=dtype)
        with quiet_libraries():
            return transformers.T5EncoderModel.from_pretrained(
                _source(o.base_model), subfolder=self.t5_attribute, quantization_config=config, dtype=dtype)

    # -- what is trained -----------------------------------------------------------------------
    def lora_config(self) -> Any:
        """The peft ``LoraConfig`` of the options (rank, alpha, target modules, dropout)."""
        from ._lora import lora_config

        o = self.options
        return lora_config(rank=o.rank, alpha=o.alpha, target_modules=o.target_modules, dropout=o.lora_dropout)

    def add_trainable(self, pipe: Any, concept: Concept) -> dict[str, Any]:
        """The LoRA on the transformer; with ``export_format=kohya`` every LoRA module must have a
        kohya name (:meth:`kohya_module`), checked before training."""
        from ._lora import add_lora, lora_parameters

        add_lora(pipe.transformer, self.lora_config(), adapter_name=ADAPTER_NAME, generator=self.name)
        params = lora_parameters({"transformer": pipe.transformer})
        if self._exports_kohya():
            for name in params:
                try:
                    self.kohya_module(name.removeprefix("transformer.").split(".lora_")[0])
                except ValueError as exc:
                    pipe.unload_lora_weights()
                    raise InvalidOptionsError(f"generator {self.name!r}: option export_format=kohya with "
                                              f"target_modules={self.options.target_modules}: {exc}") from None
        return params

    # -- kohya-ss export (a plugin gives the naming and the writer) --------------------------------
    def _exports_kohya(self) -> bool:
        return getattr(self.options, "export_format", "diffusers") == "kohya"

    def kohya_module(self, module: str) -> Any:
        """The kohya name of a transformer module (``ValueError`` if it has none); plugins with
        ``export_format=kohya`` implement it."""
        raise NotImplementedError

    def write_kohya(self, path: Path, state: Mapping[str, Any], out_features: Mapping[str, int], *, alpha: float,
                    rank: int, metadata: Mapping[str, str]) -> Path:
        """Write the kohya-layout file of the peft ``state``; plugins with ``export_format=kohya`` implement it."""
        raise NotImplementedError

    def conditions_need_grad(self) -> bool:
        """Without ``cache_text_embeddings`` the prompt is encoded again at every step."""
        return not self.options.cache_text_embeddings

    # -- GPU memory while training ---------------------------------------------------------------
    def before_training(self, pipe: Any, trainer: Any) -> None:
        """Cache the prompt embeddings; move the text encoders (and the VAE with cached latents) off the GPU."""
        modules: list[Any] = []
        if self.options.cache_text_embeddings:
            trainer.conditioning(1)
            modules += self.text_encoders(pipe)
        if self.options.cache_latents:
            modules.append(pipe.vae)
        self._offloader.offload(modules)

    def save_validation_grid(self, concept: Concept, folder: Path, step: int) -> Path:
        """The shared validation grid, with the offloaded modules back on their device."""
        with self._offloader.restored():
            return super().save_validation_grid(concept, folder, step)

    def finish_training(self, pipe: Any, concept: Concept) -> None:
        self._offloader.restore()
        pipe.unload_lora_weights()

    def fit_concept(self, concept: Concept, folder: Path, *, progress: Progress = NULL_PROGRESS) -> Mapping[str, Any]:
        """The engine's fit, plus the peak GPU memory of loading-free training (CUDA only) in the artifact."""
        import torch

        cuda = torch.cuda.is_available() and self.pipeline.transformer.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        result = dict(super().fit_concept(concept, folder, progress=progress))
        if cuda and result:
            result["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / GIB, 3)
        return result

    # -- files -----------------------------------------------------------------------------------
    @staticmethod
    def lora_state(pipe: Any) -> dict[str, Any]:
        """The transformer's LoRA weights in peft layout (``<module>.lora_A.weight`` / ``.lora_B.weight``)."""
        from ._lora import lora_state_dict

        return lora_state_dict(pipe.transformer, adapter_name=ADAPTER_NAME)

    def save_adapter(self, pipe: Any, concept: Concept, folder: Path) -> list[Path]:
        """Write ``pytorch_lora_weights.safetensors`` with the pipeline class's ``save_lora_weights``, in peft's
        ``lora_A``/``lora_B`` layout as diffusers' own SD3 and FLUX training scripts save it, with the
        scale ``alpha / rank`` baked into ``lora_B`` (:func:`~synthaug.diffusion._lora.baked_lora`)."""
        from ._lora import baked_lora

        raw = self.lora_state(pipe)
        state, metadata = baked_lora(raw, self.lora_config())  # same delta in every loader
        type(pipe).save_lora_weights(str(folder), transformer_lora_layers=state,
                                     transformer_lora_adapter_metadata=metadata,
                                     weight_name=LORA_FILE, safe_serialization=True)
        files = [folder / LORA_FILE]
        if self._exports_kohya():  # also <concept>.safetensors (UIs show the file name as the LoRA's name)
            import torch

            o = self.options
            out_features = {n.removesuffix(".base_layer"): m.out_features for n, m in pipe.transformer.named_modules()
                            if isinstance(m, torch.nn.Linear)}
            files.append(self.write_kohya(folder / f"{concept.slug}.safetensors", raw, out_features,
                                          alpha=o.alpha or o.rank, rank=o.rank,
                                          metadata={"ss_output_name": concept.slug,
                                                    "synthaug_prompt": self.prompt_for(concept)}))
        return files

    def activate_adapter(self, pipe: Any, concept: Concept, folder: Path) -> None:
        pipe.unload_lora_weights()
        pipe.load_lora_weights(str(folder), weight_name=LORA_FILE, adapter_name=ADAPTER_NAME)

    def generation_kwargs(self) -> dict[str, Any]:
        """The engine's sampling options plus the prompt's T5 length."""
        return {**super().generation_kwargs(), "max_sequence_length": self.options.max_sequence_length}

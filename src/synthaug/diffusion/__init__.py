"""The diffusion SDK: everything a diffusion generator plugin needs, in one public module.

Plugin authors import from here (and from :mod:`synthaug` and :mod:`synthaug.testing`) only;
the ``synthaug.diffusion._*`` modules behind these names are private and may move.

- Generators: :class:`DiffusionGeneratorBase` (subclass it, implement the adapter hooks) and
  :class:`FlowLoraGenerator` (the SD3.5/FLUX.1 LoRA generator); :meth:`check_options` is the
  public hook for option checks a plugin adds.
- Option groups: :class:`DiffusionOptions`, :class:`DiffusionTrainingOptions`,
  :class:`FlowMatchingOptions`, :class:`LoraOptions`, :class:`LargeModelOptions`,
  :class:`FlowLoraOptions`, :func:`fill_preset`.
- The engine's parts: denoisers (:class:`UNetDenoiser`, :class:`TransformerDenoiser`),
  conditioning (:class:`PromptConditioning`, :class:`ClassConditioning`,
  :class:`NoConditioning`), data sources (:class:`PixelSource`, :class:`LatentSource`), target
  rules (:class:`DdpmRule`, :class:`FlowMatchingRule`) and the loop (:class:`TrainingLoop`;
  :class:`Trainer` is its SD-pipeline form).
- LoRA and kohya helpers (:func:`add_lora`, :func:`lora_state_dict`, :func:`save_kohya_lora` …),
  the A1111 embedding writer, device/dtype choice and pipeline loading.
- Artifacts: :func:`write_artifact`, :func:`read_artifact`, :data:`ARTIFACT_FILE`,
  :func:`file_digest`, :func:`adapter_digest`.

Importing this module imports neither torch nor diffusers; names load on first access.
"""

from __future__ import annotations

from .._lazy import lazy_attributes

#: public name -> the private module (relative to this package) that defines it
_EXPORTS: dict[str, str] = {
    # generators
    "DiffusionGeneratorBase": "._base",
    "adapter_digest": "._base",
    "library_versions": "._base",
    "FlowLoraGenerator": "._flow_lora",
    "LORA_FILE": "._flow_lora",
    # option groups
    "DEFAULT_BASE_MODEL": "._options",
    "DEFAULT_NEGATIVE_PROMPT": "._options",
    "DEFAULT_PROMPT_TEMPLATE": "._options",
    "DiffusionOptions": "._options",
    "DiffusionTrainingOptions": "._options",
    "FlowMatchingOptions": "._options",
    "LargeModelOptions": "._options",
    "LoraOptions": "._options",
    "fill_preset": "._options",
    "FlowLoraOptions": "._flow_options",
    "FlowModelOptions": "._flow_options",
    "flow_lora_dtype": "._flow_options",
    "flow_lora_resolution": "._flow_options",
    "flow_lora_target_modules": "._flow_options",
    "PipelineOptions": "._options",
    "LoopOptions": "._options",
    "SD_OPTION_GROUPS": "._options",
    "auto_optimizer": "._options",
    "ATTENTION_LORA_TARGETS": "._flow_options",
    # engine parts
    "ClassConditioning": "._parts",
    "Conditioning": "._parts",
    "DataSource": "._parts",
    "Denoiser": "._parts",
    "NoConditioning": "._parts",
    "PromptConditioning": "._parts",
    "CaptionConditioning": "._parts",
    "TrainingParts": "._parts",
    "TransformerDenoiser": "._parts",
    "UNetDenoiser": "._parts",
    "LatentSource": "._data",
    "PixelSource": "._data",
    "TrainingImage": "._data",
    "load_training_images": "._data",
    "DdpmRule": "._targets",
    "FlowMatchingRule": "._targets",
    "TargetRule": "._targets",
    "TrainingLoop": "._loop",
    "TrainResult": "._train_result",
    "Trainer": "._training",
    "TrainingHooks": "._training",
    "generate_images": "._generation",
    # LoRA, kohya and embeddings
    "TARGET_MODULE_SETS": "._lora",
    "add_lora": "._lora",
    "baked_lora": "._lora",
    "check_lora_loaded": "._lora",
    "clip_lora_file_keys": "._lora",
    "lora_config": "._lora",
    "lora_parameters": "._lora",
    "lora_state_dict": "._lora",
    "KOHYA_SD15_METADATA": "._kohya",
    "KOHYA_SDXL_METADATA": "._kohya",
    "fused_lora_to_kohya": "._kohya",
    "require_kohya_names": "._kohya",
    "save_kohya_lora": "._kohya",
    "unet_module_to_kohya": "._kohya",
    "save_a1111_embedding": "._embeddings",
    # loading
    "load_pipeline": "._loading",
    "load_vae": "._loading",
    "resolve_device": "._loading",
    "resolve_dtype": "._loading",
    # artifacts
    "ARTIFACT_FILE": ".._artifacts",
    "file_digest": ".._artifacts",
    "read_artifact": ".._artifacts",
    "write_artifact": ".._artifacts",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)

"""Shared diffusion machinery for generator plugins (written once, used by every diffusion plugin).

- :class:`DiffusionGeneratorBase`: subclass it, implement the adapter hooks, done.
- :class:`DiffusionOptions`: the options every SD plugin shares (extend it in your ``Options``);
  :class:`DiffusionTrainingOptions` (the training loop's options), :class:`FlowMatchingOptions`
  :class:`LoraOptions` (rank, alpha, target modules, dropout of every LoRA generator) and
  :class:`LargeModelOptions` (SDXL, SD3, FLUX: 8-bit AdamW on CUDA, cached prompt embeddings).
- :mod:`~synthaug.diffusion.parts`: the engine's parts — denoiser (UNet or transformer),
  conditioning (prompts through 1-3 text encoders, class labels, none), data source.
- :mod:`~synthaug.diffusion.targets`: target rules — epsilon, v-prediction, flow matching.
- :mod:`~synthaug.diffusion.loop`: the model-agnostic training loop (:class:`~synthaug.diffusion.loop.TrainingLoop`);
  :mod:`~synthaug.diffusion.training`: its SD-pipeline form (:class:`~synthaug.diffusion.training.Trainer`).
- :mod:`~synthaug.diffusion.generation`: seeded batched generation with defect retries.
- :mod:`~synthaug.diffusion.loading`: device/dtype choice and pipeline loading.
- :mod:`~synthaug.diffusion.testing`: tiny SD1.5/SDXL pipelines written to disk.

Importing this package does not import torch or diffusers; they load when a model is used.
"""

from .base import DiffusionGeneratorBase, adapter_digest, library_versions
from .options import (
    DEFAULT_BASE_MODEL,
    DEFAULT_NEGATIVE_PROMPT,
    DEFAULT_PROMPT_TEMPLATE,
    DiffusionOptions,
    DiffusionTrainingOptions,
    FlowMatchingOptions,
    LargeModelOptions,
    LoraOptions,
    fill_preset,
)

__all__ = [
    "DEFAULT_BASE_MODEL",
    "DEFAULT_NEGATIVE_PROMPT",
    "DEFAULT_PROMPT_TEMPLATE",
    "DiffusionGeneratorBase",
    "DiffusionOptions",
    "DiffusionTrainingOptions",
    "FlowMatchingOptions",
    "LargeModelOptions",
    "LoraOptions",
    "adapter_digest",
    "fill_preset",
    "library_versions",
]

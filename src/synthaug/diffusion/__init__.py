"""Shared Stable Diffusion machinery for generator plugins (written once, used by every SD plugin).

- :class:`DiffusionGeneratorBase`: subclass it, implement the adapter hooks, done.
- :class:`DiffusionOptions`: the options every SD plugin shares (extend it in your ``Options``).
- :mod:`~synthaug.diffusion.training`: the training loop (:class:`~synthaug.diffusion.training.Trainer`).
- :mod:`~synthaug.diffusion.generation`: seeded batched generation with defect retries.
- :mod:`~synthaug.diffusion.loading`: device/dtype choice and pipeline loading.
- :mod:`~synthaug.diffusion.testing`: tiny SD1.5/SDXL pipelines written to disk.

Importing this package does not import torch or diffusers; they load when a model is used.
"""

from .base import DiffusionGeneratorBase, adapter_digest, library_versions
from .options import DEFAULT_BASE_MODEL, DEFAULT_NEGATIVE_PROMPT, DEFAULT_PROMPT_TEMPLATE, DiffusionOptions

__all__ = [
    "DEFAULT_BASE_MODEL",
    "DEFAULT_NEGATIVE_PROMPT",
    "DEFAULT_PROMPT_TEMPLATE",
    "DiffusionGeneratorBase",
    "DiffusionOptions",
    "adapter_digest",
    "library_versions",
]

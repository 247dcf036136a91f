"""``lora-sdxl``: Stable Diffusion XL fine-tuned with one LoRA per class, fitting a 16 GB GPU.

Install this distribution and the generator registers itself through the ``synthaug``
entry-point group (``synthaug generators`` lists it). See ``docs/sdxl.md``.
Importing this package does not import torch or diffusers.
"""

from __future__ import annotations

from synthaug import hookimpl

from .generator import LORA_FILE, LoraSDXLGenerator, kohya_file_name
from .options import DEFAULT_SDXL_MODEL, FP16_FIX_VAE, PRESETS, LoraSDXLOptions

__all__ = ["DEFAULT_SDXL_MODEL", "FP16_FIX_VAE", "LORA_FILE", "PRESETS", "LoraSDXLGenerator", "LoraSDXLOptions",
           "kohya_file_name", "register_generators"]
__version__ = "0.1.0"


@hookimpl
def register_generators(register) -> None:
    register(LoraSDXLGenerator)

"""``lora-sd3``: Stable Diffusion 3.5 fine-tuned with one LoRA per class; ``preset=16gb`` is QLoRA for 16 GB GPUs.

Install this distribution and the generator registers itself through the ``synthaug``
entry-point group (``synthaug generators`` lists it). See ``docs/sd3-flux.md``.
Importing this package does not import torch or diffusers.
"""

from __future__ import annotations

from synthaug import hookimpl
from synthaug.diffusion import LORA_FILE

from .generator import LoraSD3Generator, kohya_file_name
from .options import DEFAULT_SD3_MODEL, LoraSD3Options

__all__ = ["DEFAULT_SD3_MODEL", "LORA_FILE", "LoraSD3Generator", "LoraSD3Options", "kohya_file_name",
           "register_generators"]
__version__ = "0.1.0"


@hookimpl
def register_generators(register) -> None:
    register(LoraSD3Generator)

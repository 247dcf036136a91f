"""``lora-flux``: FLUX.1 fine-tuned with one LoRA per class; ``preset=16gb`` is QLoRA for 16 GB GPUs.

Install this distribution and the generator registers itself through the ``synthaug``
entry-point group (``synthaug generators`` lists it). See ``docs/sd3-flux.md``; FLUX.1-dev's
weights are under a non-commercial licence. Importing this package does not import torch or diffusers.
"""

from __future__ import annotations

from synthaug import hookimpl
from synthaug.diffusion import LORA_FILE

from .generator import FluxDenoiser, LoraFluxGenerator, kohya_file_name, training_shift
from .options import DEFAULT_FLUX_MODEL, LoraFluxOptions

__all__ = ["DEFAULT_FLUX_MODEL", "LORA_FILE", "FluxDenoiser", "LoraFluxGenerator", "LoraFluxOptions",
           "kohya_file_name", "register_generators", "training_shift"]
__version__ = "0.1.0"


@hookimpl
def register_generators(register) -> None:
    register(LoraFluxGenerator)

"""synthaug generator ``ddpm``: a class-conditional diffusion model trained from scratch.

One small pixel-space UNet learns every class of the training split at once (rare classes
borrow structure from common ones), with classifier-free guidance, EMA weights and fast
DDIM / DPM-Solver sampling. Nothing is downloaded; it trains on a CPU or a GPU.

Importing this module imports neither torch nor diffusers (they load on first use).
"""

from __future__ import annotations

from synthaug import hookimpl

from .generator import DdpmGenerator
from .options import DdpmOptions

__all__ = ["DdpmGenerator", "DdpmOptions", "register_generators"]
__version__ = "0.1.0"


@hookimpl
def register_generators(register) -> None:  # noqa: ANN001 - pluggy hook signature
    """Register the ``ddpm`` generator."""
    register(DdpmGenerator)

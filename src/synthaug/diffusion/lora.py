"""LoRA adapters on diffusers models with peft: add, collect, export (shared by the LoRA plugins).

The adapter is added under one name (``adapter_name``) with gaussian initialisation, its
parameters are returned by unique name for the training loop, and its weights are exported
in the diffusers layout (``pipe.load_lora_weights`` reads it) and, optionally, in the
kohya-ss layout (:mod:`synthaug.diffusion.kohya`). Importing this module does not import torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InvalidOptionsError, MissingDependencyError

__all__ = ["add_lora", "lora_config", "lora_parameters", "lora_state_dict"]


def lora_config(*, rank: int, alpha: float | None, target_modules: Sequence[str], dropout: float = 0.0) -> Any:
    """A peft ``LoraConfig`` (gaussian init; ``alpha`` defaults to ``rank``, i.e. scale 1)."""
    from peft import LoraConfig

    return LoraConfig(r=rank, lora_alpha=alpha or rank, lora_dropout=dropout, init_lora_weights="gaussian",
                      target_modules=list(target_modules))


def add_lora(module: Any, config: Any, *, adapter_name: str, generator: str) -> None:
    """Add a LoRA adapter to a diffusers/transformers model; bad target modules are a clear error."""
    try:
        module.add_adapter(config, adapter_name=adapter_name)
    except ValueError as exc:
        if "version of PEFT" in str(exc):  # transformers 5 models need peft >= 0.22 for adapters
            raise MissingDependencyError(
                f"generator {generator!r}: a LoRA on {type(module).__name__} needs a newer peft ({exc}); "
                "run: pip install -U peft"
            ) from None
        raise InvalidOptionsError(
            f"generator {generator!r}: cannot add LoRA layers with target_modules={sorted(config.target_modules)}: "
            f"{exc} (use module names of the model, e.g. to_q, to_k, to_v, to_out.0)"
        ) from None


def lora_parameters(modules: Mapping[str, Any]) -> dict[str, Any]:
    """The LoRA parameters of ``{prefix: module}`` by unique name ``prefix.<parameter name>``."""
    return {f"{prefix}.{n}": p for prefix, m in modules.items() for n, p in m.named_parameters() if "lora_" in n}


def lora_state_dict(module: Any, *, adapter_name: str) -> dict[str, Any]:
    """The adapter's weights in peft layout (``<module>.lora_A.weight`` / ``<module>.lora_B.weight``)."""
    from peft.utils import get_peft_model_state_dict

    return get_peft_model_state_dict(module, adapter_name=adapter_name)

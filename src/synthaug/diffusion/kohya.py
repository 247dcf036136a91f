"""LoRA weights in the kohya-ss / AUTOMATIC1111 layout (``lora_unet_…`` keys).

kohya-ss sd-scripts trains SDXL on the original (SGM/LDM) UNet, so its LoRA files name modules
by that UNet's blocks: ``input_blocks``, ``middle_block``, ``output_blocks``. Each module gets
``<name>.lora_down.weight``, ``<name>.lora_up.weight`` and a scalar ``<name>.alpha`` (the
LoRA scale is ``alpha / rank``). AUTOMATIC1111, ComfyUI, Forge, InvokeAI and diffusers'
``load_lora_weights`` read this layout.

:func:`unet_lora_to_kohya` converts a peft state dict of a diffusers ``UNet2DConditionModel``
(``get_peft_model_state_dict(unet)``) to it. Only LoRA on the attention blocks
(``down_blocks.*.attentions``, ``mid_block.attentions``, ``up_blocks.*.attentions``, whatever
the module inside: ``to_q``, ``proj_in``, ``ff.net.2``…) is converted; other modules are
named differently in the original UNet and are refused with a clear error.
Importing this module does not import torch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["KOHYA_SDXL_METADATA", "save_kohya_lora", "unet_lora_to_kohya", "unet_module_to_kohya"]

#: safetensors metadata kohya-ss writes for an SDXL LoRA (some UIs read the architecture from it).
KOHYA_SDXL_METADATA = {
    "ss_network_module": "networks.lora",
    "ss_base_model_version": "sdxl_base_v1-0",
    "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
}

_BLOCK = re.compile(r"^(down_blocks|up_blocks)\.(\d+)\.attentions\.(\d+)\.(.+)$")
_MID = re.compile(r"^mid_block\.attentions\.0\.(.+)$")
_PEFT_KEY = re.compile(r"^(.+)\.lora_([AB])\.weight$")


def _layers(unet_config: Any) -> tuple[list[int], list[int]]:
    """Layers per down block and per up block of a diffusers UNet config."""
    config = dict(unet_config)
    n_blocks = len(config["down_block_types"])
    per_block = config["layers_per_block"]
    down = list(per_block) if isinstance(per_block, Sequence) else [int(per_block)] * n_blocks
    up = [n + 1 for n in reversed(down)]
    return down, up


def unet_module_to_kohya(module: str, unet_config: Any) -> str:
    """``down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q`` ->
    ``lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q`` (for SDXL's config)."""
    down, up = _layers(unet_config)
    if match := _BLOCK.match(module):
        kind, block, layer, rest = match[1], int(match[2]), int(match[3]), match[4]
        if kind == "down_blocks":
            index, name = 1 + sum(n + 1 for n in down[:block]) + layer, "input_blocks"
        else:
            index, name = sum(up[:block]) + layer, "output_blocks"
        original = f"{name}.{index}.1.{rest}"
    elif match := _MID.match(module):
        original = f"middle_block.1.{match[1]}"
    else:
        raise ValueError(
            f"LoRA module {module!r} has no kohya name: only attention-block modules (down_blocks.*.attentions, "
            "mid_block.attentions, up_blocks.*.attentions) can be exported to the kohya layout"
        )
    return "lora_unet_" + original.replace(".", "_")


def unet_lora_to_kohya(state_dict: Mapping[str, Any], unet_config: Any, *, alpha: float) -> dict[str, Any]:
    """A peft LoRA state dict of a diffusers UNet (``….lora_A.weight`` / ``….lora_B.weight``) in the
    kohya layout, with one ``.alpha`` tensor per module. Tensors are made contiguous float copies."""
    import torch

    out: dict[str, Any] = {}
    for key, tensor in state_dict.items():
        match = _PEFT_KEY.match(key)
        if match is None:
            raise ValueError(f"not a peft LoRA key: {key!r} (expected '<module>.lora_A.weight' or '.lora_B.weight')")
        name = unet_module_to_kohya(match[1], unet_config)
        out[f"{name}.lora_{'down' if match[2] == 'A' else 'up'}.weight"] = tensor.detach().contiguous().clone()
        out[f"{name}.alpha"] = torch.tensor(float(alpha), dtype=tensor.dtype)
    return out


def save_kohya_lora(path: str | Path, state_dict: Mapping[str, Any], unet_config: Any, *, alpha: float, rank: int,
                    metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``state_dict`` (peft format) as a kohya-layout safetensors file at ``path``; return it."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = unet_lora_to_kohya(state_dict, unet_config, alpha=alpha)
    info = {"ss_network_dim": str(rank), "ss_network_alpha": str(alpha), **dict(metadata or {})}
    save_file({k: v.cpu() for k, v in tensors.items()}, str(path), metadata=info)
    return path

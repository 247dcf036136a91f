"""SD3.5 LoRA in the kohya-ss sd-scripts layout (``export_format=kohya``), which ComfyUI loads too.

kohya-ss (``networks/lora_sd3.py``) puts LoRA modules on the ``Linear`` children of the MMDiT's
per-stream blocks, named after Stability AI's original checkpoint with prefix ``lora_unet``:
``lora_unet_joint_blocks_<i>_<x_block|context_block>_<attn_qkv|attn_proj|attn2_qkv|attn2_proj|
mlp_fc1|mlp_fc2|adaLN_modulation_1>``, keys ``.lora_down.weight``, ``.lora_up.weight`` and ``.alpha``.
ComfyUI (``comfy/lora.py``, ``model_lora_keys_unet``) recognises ``lora_unet_`` + any weight name of
its SD3 model (the same original names), so it loads the same file.

The original checkpoint fuses diffusers' ``to_q``/``to_k``/``to_v`` into ``attn.qkv`` (rows q, k, v,
as ComfyUI's ``mmdit_to_diffusers`` maps them): such a module holds the separate LoRAs exactly
(:func:`synthaug.diffusion.fused_lora_to_kohya`). diffusers module -> original module:

- ``transformer_blocks.<i>.attn.to_q|to_k|to_v`` -> ``joint_blocks.<i>.x_block.attn.qkv``;
  ``attn.to_out.0`` -> ``x_block.attn.proj``;
- ``attn.add_q_proj|add_k_proj|add_v_proj`` -> ``context_block.attn.qkv``; ``attn.to_add_out`` ->
  ``context_block.attn.proj``;
- SD3.5's second image attention: ``attn2.to_q|to_k|to_v`` -> ``x_block.attn2.qkv``,
  ``attn2.to_out.0`` -> ``x_block.attn2.proj``;
- ``ff.net.0.proj`` / ``ff.net.2`` -> ``x_block.mlp.fc1`` / ``fc2``; ``ff_context.…`` -> ``context_block.mlp.…``.

The modulation layers (``norm1.linear``, ``norm1_context.linear``; the last block's is stored with
scale and shift swapped) and the embedders are not converted: such ``target_modules`` are refused
before training. Importing this module does not import torch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["KOHYA_SD3_METADATA", "kohya_module", "save_kohya_sd3_lora", "sd3_lora_to_kohya"]

#: kohya layer (after ``lora_unet_joint_blocks_<i>_``) -> the diffusers modules of block ``i`` it fuses, in order.
_BLOCK = {
    "x_block_attn_qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "x_block_attn_proj": ("attn.to_out.0",),
    "context_block_attn_qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
    "context_block_attn_proj": ("attn.to_add_out",),
    "x_block_attn2_qkv": ("attn2.to_q", "attn2.to_k", "attn2.to_v"),
    "x_block_attn2_proj": ("attn2.to_out.0",),
    "x_block_mlp_fc1": ("ff.net.0.proj",),
    "x_block_mlp_fc2": ("ff.net.2",),
    "context_block_mlp_fc1": ("ff_context.net.0.proj",),
    "context_block_mlp_fc2": ("ff_context.net.2",),
}
#: safetensors metadata kohya-ss writes for an SD3 LoRA (the network module and base model family).
KOHYA_SD3_METADATA = {"ss_network_module": "networks.lora_sd3", "ss_base_model_version": "sd3"}


def kohya_module(module: str) -> tuple[str, tuple[str, ...], int]:
    """``(kohya name, diffusers modules it fuses, this module's slot)`` of an ``SD3Transformer2DModel`` module.

    Raises ValueError for a module this export has no kohya-ss SD3 name for.
    """
    if match := re.fullmatch(r"transformer_blocks\.(\d+)\.(.+)", module):
        block, rest = match.groups()
        for name, slots in _BLOCK.items():
            if rest in slots:
                return (f"lora_unet_joint_blocks_{block}_{name}",
                        tuple(f"transformer_blocks.{block}.{s}" for s in slots), slots.index(rest))
    raise ValueError(f"transformer module {module!r} has no kohya-ss SD3 LoRA name in this export (it converts the "
                     "joint blocks' attention and MLP layers: to_q, to_k, to_v, to_out.0, add_q_proj, add_k_proj, "
                     "add_v_proj, to_add_out, attn2.*, ff.net.*, ff_context.net.*)")


def sd3_lora_to_kohya(state: Mapping[str, Any], out_features: Mapping[str, int], *, alpha: float) -> dict[str, Any]:
    """kohya-layout tensors from a peft LoRA state dict (unbaked, scale ``alpha / rank``) of an SD3 transformer."""
    from synthaug.diffusion import fused_lora_to_kohya

    return fused_lora_to_kohya(state, out_features, alpha=alpha, kohya_module=kohya_module)


def save_kohya_sd3_lora(path: str | Path, state: Mapping[str, Any], out_features: Mapping[str, int], *, alpha: float,
                        rank: int, metadata: Mapping[str, str] | None = None) -> Path:
    """Write the kohya-layout file of an SD3 LoRA (safetensors with kohya's ``ss_*`` metadata); return its path."""
    from safetensors.torch import save_file

    tensors = sd3_lora_to_kohya(state, out_features, alpha=alpha)
    info = {**KOHYA_SD3_METADATA, "ss_network_dim": str(rank), "ss_network_alpha": str(alpha), **dict(metadata or {})}
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path), metadata=info)
    return Path(path)

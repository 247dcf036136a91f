"""FLUX LoRA in the kohya-ss sd-scripts layout (``export_format=kohya``).

kohya-ss names FLUX LoRA modules after Black Forest Labs' original modules
(``lora_unet_double_blocks_<i>_img_attn_qkv``, ``lora_unet_single_blocks_<i>_linear1`` …) with
``.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha``, where diffusers' separate q, k, v
(and, in single blocks, the MLP input) projections are one fused layer. A fused module holds the
separate LoRAs exactly: the ``down`` matrices stacked (rank x number of slots) and the ``up``
matrices on the block diagonal, with ``alpha`` scaled by the number of slots so that
``alpha / rank`` is unchanged. A slot without a LoRA gets zero rows. diffusers'
``FluxPipeline.load_lora_weights`` reads this layout too (it splits the fused modules back).
Importing this module does not import torch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["KOHYA_FLUX_METADATA", "flux_lora_to_kohya", "kohya_module", "save_kohya_flux_lora"]

#: kohya module name (after the block prefix) -> the diffusers modules it fuses, in order.
_DOUBLE_BLOCK = {
    "img_attn_qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "img_attn_proj": ("attn.to_out.0",),
    "txt_attn_qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
    "txt_attn_proj": ("attn.to_add_out",),
    "img_mlp_0": ("ff.net.0.proj",),
    "img_mlp_2": ("ff.net.2",),
    "txt_mlp_0": ("ff_context.net.0.proj",),
    "txt_mlp_2": ("ff_context.net.2",),
    "img_mod_lin": ("norm1.linear",),
    "txt_mod_lin": ("norm1_context.linear",),
}
_SINGLE_BLOCK = {
    "linear1": ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"),
    "linear2": ("proj_out",),
    "modulation_lin": ("norm.linear",),
}
_BLOCKS = {"transformer_blocks": ("double_blocks", _DOUBLE_BLOCK),
           "single_transformer_blocks": ("single_blocks", _SINGLE_BLOCK)}
#: kohya-ss training metadata readers look for (the network module and base model of FLUX LoRAs).
KOHYA_FLUX_METADATA = {"ss_network_module": "networks.lora_flux", "ss_base_model_version": "flux1",
                       "modelspec.architecture": "flux-1-dev/lora"}


def kohya_module(module: str) -> tuple[str, tuple[str, ...], int]:
    """``(kohya name, diffusers modules it fuses, this module's slot)`` of a diffusers transformer module.

    Raises ValueError for a module kohya-ss has no FLUX LoRA name for.
    """
    match = re.fullmatch(r"(transformer_blocks|single_transformer_blocks)\.(\d+)\.(.+)", module)
    if match:
        prefix, table = _BLOCKS[match.group(1)]
        for name, slots in table.items():
            if match.group(3) in slots:
                return (f"lora_unet_{prefix}_{match.group(2)}_{name}",
                        tuple(f"{match.group(1)}.{match.group(2)}.{s}" for s in slots), slots.index(match.group(3)))
    raise ValueError(f"transformer module {module!r} has no kohya-ss FLUX LoRA name (kohya-ss adapts the "
                     "double/single blocks' attention, MLP and modulation layers)")


def flux_lora_to_kohya(state: Mapping[str, Any], out_features: Mapping[str, int], *, alpha: float) -> dict[str, Any]:
    """kohya-layout tensors from a peft LoRA state dict of a ``FluxTransformer2DModel``.

    ``state`` has ``<module>.lora_A.weight`` / ``<module>.lora_B.weight`` keys; ``out_features``
    gives the output width of every linear module (for slots without a LoRA); ``alpha`` is the
    LoRA alpha (scale ``alpha / rank``).
    """
    from synthaug.diffusion import fused_lora_to_kohya

    return fused_lora_to_kohya(state, out_features, alpha=alpha, kohya_module=kohya_module)


def save_kohya_flux_lora(path: str | Path, state: Mapping[str, Any], out_features: Mapping[str, int], *, alpha: float,
                         rank: int, metadata: Mapping[str, str] | None = None) -> Path:
    """Write the kohya-layout file of a FLUX LoRA (safetensors with kohya's ``ss_*`` metadata); return its path."""
    from safetensors.torch import save_file

    tensors = flux_lora_to_kohya(state, out_features, alpha=alpha)
    info = {**KOHYA_FLUX_METADATA, "ss_network_dim": str(rank), "ss_network_alpha": str(alpha), **dict(metadata or {})}
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path), metadata=info)
    return Path(path)

"""LoRA weights in the kohya-ss / AUTOMATIC1111 layout (``lora_unet_…`` / ``lora_te_…`` keys).

Each module gets ``<name>.lora_down.weight``, ``<name>.lora_up.weight`` and a scalar
``<name>.alpha`` (the LoRA scale is ``alpha / rank``). AUTOMATIC1111, ComfyUI, Forge,
InvokeAI, kohya-ss and diffusers' ``load_lora_weights`` read this layout. Module names come
in two styles, chosen by ``naming``:

- ``"sgm"`` (SDXL): kohya-ss trains SDXL on the original (SGM/LDM) UNet, so names follow its
  blocks: ``lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q``;
- ``"diffusers"`` (SD1.x): kohya-ss trains SD1.x on a UNet with the diffusers block names, so
  names follow them: ``lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q``.

Text-encoder modules (CLIP attention ``q/k/v/out_proj`` and ``mlp.fc1/fc2``) become
``lora_te_text_model_encoder_layers_<i>_<module>`` in both styles.

Only UNet LoRA on the attention blocks (``down_blocks.*.attentions``, ``mid_block.attentions``,
``up_blocks.*.attentions``, whatever the module inside: ``to_q``, ``proj_in``, ``ff.net.2``…)
is converted: that is what both kohya-ss (``Transformer2DModel`` children) and ComfyUI's key
map name the same way; other modules are refused with a clear error.
Transformer models (FLUX.1, SD3.5) are named after their original checkpoints, where several
diffusers modules are one fused layer (q, k and v); :func:`fused_lora_to_kohya` converts a peft
state dict for them, given the plugin's naming function.
Importing this module does not import torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from .._errors import InvalidOptionsError

__all__ = ["KOHYA_SD15_METADATA", "KOHYA_SDXL_METADATA", "Naming", "fused_lora_to_kohya", "lora_to_kohya", "require_kohya_names",
           "save_kohya_lora", "text_encoder_module_to_kohya", "unet_lora_to_kohya", "unet_module_to_kohya"]

#: How UNet module names are written: after the original SGM UNet (SDXL) or the diffusers blocks (SD1.x).
Naming = Literal["sgm", "diffusers"]

#: safetensors metadata kohya-ss writes for an SDXL LoRA (some UIs read the architecture from it).
KOHYA_SDXL_METADATA = {
    "ss_network_module": "networks.lora",
    "ss_base_model_version": "sdxl_base_v1-0",
    "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
}
#: safetensors metadata kohya-ss writes for an SD1.x LoRA.
KOHYA_SD15_METADATA = {
    "ss_network_module": "networks.lora",
    "ss_base_model_version": "sd_v1",
    "ss_v2": "False",
    "modelspec.architecture": "stable-diffusion-v1/lora",
}

_BLOCK = re.compile(r"^(down_blocks|up_blocks)\.(\d+)\.attentions\.(\d+)\.(.+)$")
_MID = re.compile(r"^mid_block\.attentions\.0\.(.+)$")
_PEFT_KEY = re.compile(r"^(.+)\.lora_([AB])\.weight$")
_CLIP_MODULE = re.compile(r"^(?:text_model\.)?(encoder\.layers\.\d+\.(?:self_attn\.(?:q|k|v|out)_proj|mlp\.fc[12]))$")
#: Key prefix of each component in the kohya layout.
_PREFIX = {"unet": "lora_unet_", "text_encoder": "lora_te_"}


def _layers(unet_config: Any) -> tuple[list[int], list[int]]:
    """Layers per down block and per up block of a diffusers UNet config."""
    config = dict(unet_config)
    n_blocks = len(config["down_block_types"])
    per_block = config["layers_per_block"]
    down = list(per_block) if isinstance(per_block, Sequence) else [int(per_block)] * n_blocks
    up = [n + 1 for n in reversed(down)]
    return down, up


def _sgm_name(module: str, unet_config: Any) -> str | None:
    """The original-UNet name of an attention-block module (``input_blocks.4.1.…``), or None."""
    down, up = _layers(unet_config)
    if match := _BLOCK.match(module):
        kind, block, layer, rest = match[1], int(match[2]), int(match[3]), match[4]
        if kind == "down_blocks":
            return f"input_blocks.{1 + sum(n + 1 for n in down[:block]) + layer}.1.{rest}"
        return f"output_blocks.{sum(up[:block]) + layer}.1.{rest}"
    if match := _MID.match(module):
        return f"middle_block.1.{match[1]}"
    return None


def unet_module_to_kohya(module: str, unet_config: Any, *, naming: Naming = "sgm") -> str:
    """``down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q`` ->
    ``lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q`` (``naming="sgm"``, SDXL's config) or
    ``lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q`` (``naming="diffusers"``).
    Raises ValueError for a module outside the attention blocks."""
    original = _sgm_name(module, unet_config)
    if original is None:
        raise ValueError(
            f"LoRA module {module!r} has no kohya name: only attention-block modules (down_blocks.*.attentions, "
            "mid_block.attentions, up_blocks.*.attentions) can be exported to the kohya layout"
        )
    return _PREFIX["unet"] + (original if naming == "sgm" else module).replace(".", "_")


def text_encoder_module_to_kohya(module: str) -> str:
    """``encoder.layers.0.self_attn.q_proj`` (with or without ``text_model.``) ->
    ``lora_te_text_model_encoder_layers_0_self_attn_q_proj``. Raises ValueError for other modules."""
    match = _CLIP_MODULE.match(module)
    if match is None:
        raise ValueError(
            f"text-encoder LoRA module {module!r} has no kohya name: only encoder.layers.N.self_attn.(q|k|v|out)_proj "
            "and encoder.layers.N.mlp.fc1/fc2 can be exported to the kohya layout"
        )
    return _PREFIX["text_encoder"] + "text_model_" + match[1].replace(".", "_")


def _kohya_name(component: str, module: str, unet_config: Any, naming: Naming) -> str:
    if component == "unet":
        return unet_module_to_kohya(module, unet_config, naming=naming)
    if component == "text_encoder":
        return text_encoder_module_to_kohya(module)
    raise ValueError(f"no kohya layout for LoRA weights of {component!r} (only unet and text_encoder)")


def lora_to_kohya(state_dicts: Mapping[str, Mapping[str, Any]], unet_config: Any, *, alpha: float,
                  naming: Naming = "sgm") -> dict[str, Any]:
    """Peft LoRA state dicts by component (``{"unet": …, "text_encoder": …}``, keys
    ``<module>.lora_A.weight`` / ``.lora_B.weight``) in the kohya layout, with one ``.alpha``
    tensor per module. Tensors are made contiguous copies."""
    import torch

    out: dict[str, Any] = {}
    for component, state_dict in state_dicts.items():
        for key, tensor in state_dict.items():
            match = _PEFT_KEY.match(key)
            if match is None:
                raise ValueError(f"not a peft LoRA key: {key!r} "
                                 "(expected '<module>.lora_A.weight' or '.lora_B.weight')")
            name = _kohya_name(component, match[1], unet_config, naming)
            out[f"{name}.lora_{'down' if match[2] == 'A' else 'up'}.weight"] = tensor.detach().contiguous().clone()
            out[f"{name}.alpha"] = torch.tensor(float(alpha), dtype=tensor.dtype)
    return out


def unet_lora_to_kohya(state_dict: Mapping[str, Any], unet_config: Any, *, alpha: float,
                       naming: Naming = "sgm") -> dict[str, Any]:
    """A peft LoRA state dict of a diffusers UNet in the kohya layout (see :func:`lora_to_kohya`)."""
    return lora_to_kohya({"unet": state_dict}, unet_config, alpha=alpha, naming=naming)


def require_kohya_names(modules: Iterable[str], unet_config: Any, *, naming: Naming, generator: str,
                        target_modules: Sequence[str]) -> None:
    """Fail before training when a UNet LoRA module has no kohya name (``export_format=kohya``).

    ``modules`` are UNet module names (e.g. from the trainable parameter names)."""
    for module in modules:
        try:
            unet_module_to_kohya(module, unet_config, naming=naming)
        except ValueError as exc:
            raise InvalidOptionsError(f"generator {generator!r}: option export_format=kohya with "
                                      f"target_modules={list(target_modules)}: {exc}") from None


def save_kohya_lora(path: str | Path, state_dict: Mapping[str, Any], unet_config: Any, *, alpha: float, rank: int,
                    metadata: Mapping[str, str] | None = None, naming: Naming = "sgm",
                    text_encoder_state_dict: Mapping[str, Any] | None = None) -> Path:
    """Write the UNet (and optionally text-encoder) LoRA, peft format, as a kohya-layout safetensors file."""
    from safetensors.torch import save_file

    path = Path(path)
    states = {"unet": state_dict, **({"text_encoder": text_encoder_state_dict} if text_encoder_state_dict else {})}
    tensors = lora_to_kohya(states, unet_config, alpha=alpha, naming=naming)
    info = {"ss_network_dim": str(rank), "ss_network_alpha": str(alpha), **dict(metadata or {})}
    save_file({k: v.cpu() for k, v in tensors.items()}, str(path), metadata=info)
    return path


#: A plugin's kohya naming of a transformer module: ``module -> (kohya name, the diffusers modules that
#: kohya layer fuses, in order, this module's slot)``; raises ValueError for a module without a name.
KohyaModule = Callable[[str], tuple[str, tuple[str, ...], int]]


def fused_lora_to_kohya(state: Mapping[str, Any], out_features: Mapping[str, int], *, alpha: float,
                        kohya_module: KohyaModule) -> dict[str, Any]:
    """kohya-layout tensors (``.lora_down.weight``, ``.lora_up.weight``, ``.alpha``) from a peft LoRA state dict
    of a transformer whose original layers fuse several diffusers modules.

    A fused layer holds the separate LoRAs exactly: the ``down`` matrices stacked (rank x number of
    slots), the ``up`` matrices on the block diagonal and ``alpha`` times the number of slots, so that
    ``up @ down * alpha / rank`` is the separate deltas stacked by rows in slot order. A slot without a
    LoRA gets zero rows (``out_features`` gives every linear module's output width). ``state`` has
    ``<module>.lora_A.weight`` / ``.lora_B.weight`` keys at the scale ``alpha / rank`` (not baked).
    """
    import torch

    groups: dict[str, tuple[tuple[str, ...], dict[int, str]]] = {}
    for key in state:
        if key.endswith(".lora_A.weight"):
            module = key[: -len(".lora_A.weight")]
            name, slots, slot = kohya_module(module)
            groups.setdefault(name, (slots, {}))[1][slot] = module
    tensors: dict[str, Any] = {}
    for name, (slots, present) in groups.items():
        first = state[f"{next(iter(present.values()))}.lora_A.weight"]
        rank, width = first.shape
        downs, ups = [], []
        for slot, module in enumerate(slots):
            if slot in present:
                downs.append(state[f"{module}.lora_A.weight"])
                ups.append(state[f"{module}.lora_B.weight"])
            else:
                downs.append(torch.zeros(rank, width, dtype=first.dtype))
                ups.append(torch.zeros(out_features[module], rank, dtype=first.dtype))
        tensors[f"{name}.lora_down.weight"] = torch.cat(downs).contiguous()
        tensors[f"{name}.lora_up.weight"] = torch.block_diag(*ups).contiguous()
        tensors[f"{name}.alpha"] = torch.tensor(float(alpha) * len(slots))
    return tensors

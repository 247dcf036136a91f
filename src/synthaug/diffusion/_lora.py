"""LoRA adapters on diffusers models with peft: add, collect, export (shared by the LoRA plugins).

The adapter is added under one name (``adapter_name``) with gaussian initialisation, its
parameters are returned by unique name for the training loop, and its weights are saved in
one layout, peft's (``<component>.<module>.lora_A.weight`` / ``.lora_B.weight``), for every
target module. ``pipe.load_lora_weights`` reads that layout; it picks the layout of a whole
file from its first key, so a file mixing ``lora.down``/``lora_A`` keys (what diffusers'
``convert_state_dict_to_diffusers`` gives when targets include e.g. ``proj_in``) would load
only part of the LoRA. :func:`check_lora_loaded` proves after loading that every saved module
is injected, active and holds the saved weights, and raises otherwise. The kohya-ss layout
is in :mod:`synthaug.diffusion._kohya`.

The diffusers-layout file is written with the LoRA scale baked in (:func:`baked_lora`):
``lora_B`` multiplied by ``alpha / rank`` and the peft metadata saying ``lora_alpha = r``.
peft and diffusers read the scale from that metadata (``lora_adapter_metadata``); ComfyUI and
kohya-ss do not read it and apply ``B @ A`` at scale 1, so a file with ``alpha != rank`` kept
unbaked was applied at ``rank / alpha`` times its strength there. Baked, every loader applies
the same delta. (The other way, ``<module>.alpha`` tensors, is not open to every pipeline:
SD3's and FLUX's ``load_lora_weights`` refuse keys without ``lora`` in their name.)
Importing this module does not import torch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._errors import GenerationError, InvalidOptionsError, MissingDependencyError

__all__ = ["TARGET_MODULE_SETS", "add_lora", "baked_lora", "check_lora_loaded", "clip_lora_file_keys",
           "injected_lora_modules", "lora_config", "lora_parameters", "lora_state_dict", "saved_lora_weights"]

#: Documented ``target_modules`` choices of the UNet LoRA plugins: the attention projections
#: (default), the transformer-block projections around them, and the feed-forward layers.
TARGET_MODULE_SETS: dict[str, tuple[str, ...]] = {
    "attention": ("to_k", "to_q", "to_v", "to_out.0"),
    "attention+proj": ("to_k", "to_q", "to_v", "to_out.0", "proj_in", "proj_out"),
    "transformer": ("to_k", "to_q", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"),
}

#: A LoRA weight key: ``<module>.<down|up part>.weight`` in the peft, diffusers or attention-processor layouts.
_LORA_KEY = re.compile(r"^(?P<module>.+?)\.(?P<part>lora_A|lora_B|lora\.down|lora\.up|lora_linear_layer\.down|"
                       r"lora_linear_layer\.up)\.weight$")


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


def baked_lora(state_dict: Mapping[str, Any], config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(state_dict with every lora_B times lora_alpha / r, config.to_dict() with lora_alpha = r)``.

    The pair describes the same delta ``B @ A * alpha / rank`` as the trained adapter, but at
    scale 1, so a loader that ignores the peft metadata (ComfyUI, kohya-ss) applies it right too.
    ``config`` is the peft ``LoraConfig`` the adapter was trained with; per-module rank or alpha
    patterns and rsLoRA are refused (ValueError), as no plugin uses them."""
    if getattr(config, "rank_pattern", None) or getattr(config, "alpha_pattern", None) or config.use_rslora:
        raise ValueError("baked_lora: per-module rank/alpha patterns and rsLoRA are not supported")
    scale = float(config.lora_alpha) / float(config.r)
    baked = {key: (tensor * scale if key.endswith(".lora_B.weight") and scale != 1.0 else tensor)
             for key, tensor in state_dict.items()}
    metadata = config.to_dict()
    metadata["lora_alpha"] = metadata["r"]
    return baked, metadata


def clip_lora_file_keys(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """A CLIP text encoder's LoRA state dict with the ``text_model.`` level every key had under transformers 4.

    transformers 5's ``CLIPTextModel`` names its layers ``encoder.layers.*`` (no ``text_model.``), so peft's
    keys lost that level; ComfyUI (``text_encoder.text_model.encoder.layers.<i>.<module>``) and older
    diffusers read only the old names, and diffusers 0.42 with transformers 5 loads them as well."""
    return {key if key.startswith("text_model.") else f"text_model.{key}": tensor for key, tensor in state_dict.items()}


def saved_lora_weights(path: str | Path) -> dict[str, dict[str, dict[str, Any]]]:
    """The LoRA weights of a diffusers-loadable file: ``{component: {module: {"A": down, "B": up}}}``.

    ``component`` is the key's first part (``unet``, ``text_encoder``); other keys (e.g. ``.alpha``)
    are ignored."""
    from safetensors.torch import load_file

    out: dict[str, dict[str, dict[str, Any]]] = {}
    for key, tensor in load_file(str(path)).items():
        component, _, rest = key.partition(".")
        if (match := _LORA_KEY.match(rest)) is None:
            continue
        part = "A" if match["part"] in ("lora_A", "lora.down", "lora_linear_layer.down") else "B"
        module = match["module"].replace(".processor.", ".")
        out.setdefault(component, {}).setdefault(module, {})[part] = tensor
    return out


def injected_lora_modules(model: Any, *, adapter_name: str) -> dict[str, Any]:
    """The peft LoRA layers of ``model`` that hold ``adapter_name``, by module name."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return {name: m for name, m in model.named_modules()
            if isinstance(m, BaseTunerLayer) and adapter_name in getattr(m, "lora_A", {})}


def _problem(layer: Any, weights: Mapping[str, Any], adapter_name: str) -> str | None:
    """Why an injected layer does not apply the saved weights, or None when it does."""
    import torch

    if layer.disable_adapters or adapter_name not in layer.active_adapters:
        return "inactive"
    for part, loaded in (("A", layer.lora_A[adapter_name].weight), ("B", layer.lora_B[adapter_name].weight)):
        saved = weights.get(part)
        if saved is None or saved.shape != loaded.shape:
            return f"lora_{part} has another shape than in the file"
        if loaded.is_meta:  # an architecture-only model: nothing to compare
            continue
        tolerance = max(1e-5, float(torch.finfo(loaded.dtype).eps))  # loaded in float16/bfloat16 on GPUs
        if not torch.allclose(saved.float(), loaded.detach().float().cpu(), rtol=tolerance, atol=1e-6):
            return f"lora_{part} differs from the file"
    return None


def check_lora_loaded(pipe: Any, path: str | Path, *, adapter_name: str) -> int:
    """Check that every module saved in the LoRA file ``path`` is active in ``pipe`` with its saved weights.

    Call it right after ``pipe.load_lora_weights(..., adapter_name=adapter_name)``. Returns the
    number of modules checked; raises :class:`GenerationError` naming the file and the modules
    that are missing (not injected), inactive or hold other weights (weights on the ``meta``
    device, as in architecture-only checks, are compared by shape). diffusers only logs a
    warning for such a partial load, and generation silences its logger.
    """
    saved = saved_lora_weights(path)
    problems: list[str] = []
    total = 0
    for component, modules in saved.items():
        model = getattr(pipe, component, None)
        layers = injected_lora_modules(model, adapter_name=adapter_name) if model is not None else {}
        for module, weights in sorted(modules.items()):
            total += 1
            # a CLIP text encoder's file keys keep transformers 4's ``text_model.`` level (clip_lora_file_keys)
            layer = layers.get(module) or layers.get(module.removeprefix("text_model."))
            why = "not loaded" if layer is None else _problem(layer, weights, adapter_name)
            if why:
                problems.append(f"{component}.{module} ({why})")
    if problems:
        shown = ", ".join(problems[:8]) + (f", … ({len(problems) - 8} more)" if len(problems) > 8 else "")
        raise GenerationError(
            f"LoRA file {path}: {len(problems)} of {total} saved modules are not active with their saved weights "
            f"after loading: {shown}. "
            "The file may mix key layouts or name modules this base model does not have; fit it again with "
            "this synthaug version (balance --overwrite) and the same base_model"
        )
    if total == 0:
        raise GenerationError(f"LoRA file {path}: no LoRA weights found in it; fit the class again (--overwrite)")
    return total

"""Resumable training checkpoints: safetensors + JSON (no pickle), written atomically.

Layout: ``FOLDER/checkpoints/step-NNNNNN/{state.safetensors, state.json}``. A checkpoint folder
is complete when its ``state.json`` exists; it is written under a temporary name and renamed
into place, and only the ``keep`` most recent ones are kept.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["CHECKPOINT_DIR", "latest_checkpoint", "optimizer_from_tensors", "optimizer_to_tensors",
           "read_checkpoint", "weights_from_tensors", "weights_to_tensors", "write_checkpoint"]

CHECKPOINT_DIR = "checkpoints"
STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"


def _checkpoint_step(path: Path) -> int | None:
    name = path.name
    if not name.startswith("step-") or not (path / STATE_JSON).is_file():
        return None
    try:
        return int(name[5:])
    except ValueError:
        return None


def latest_checkpoint(folder: Path) -> Path | None:
    """The complete checkpoint with the highest step under ``folder/checkpoints``, if any."""
    root = Path(folder) / CHECKPOINT_DIR
    if not root.is_dir():
        return None
    found = [(step, p) for p in root.iterdir() if (step := _checkpoint_step(p)) is not None]
    return max(found)[1] if found else None


def write_checkpoint(folder: Path, step: int, tensors: Mapping[str, Any], info: Mapping[str, Any], *,
                     keep: int) -> Path:
    """Write ``folder/checkpoints/step-NNNNNN`` atomically; keep the ``keep`` most recent ones."""
    from safetensors.torch import save_file

    root = Path(folder) / CHECKPOINT_DIR
    final = root / f"step-{step:06d}"
    tmp = root / f".step-{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(dict(tensors), str(tmp / STATE_TENSORS))
    (tmp / STATE_JSON).write_text(json.dumps(dict(info), default=float))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    kept = sorted((p for p in root.iterdir() if _checkpoint_step(p) is not None), key=_checkpoint_step)
    for old in kept[: -max(1, keep)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The tensors and the JSON state of the checkpoint folder ``path``."""
    from safetensors.torch import load_file

    return load_file(str(Path(path) / STATE_TENSORS)), json.loads((Path(path) / STATE_JSON).read_text())


def optimizer_to_tensors(optimizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """An optimizer's state as ``optim/<index>/<name>`` tensors and a JSON-able rest."""
    opt = optimizer.state_dict()
    tensors: dict[str, Any] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, state in opt["state"].items():
        for k, v in state.items():
            if hasattr(v, "detach"):
                tensors[f"optim/{idx}/{k}"] = v.detach().cpu().clone().contiguous()
            else:
                scalars.setdefault(str(idx), {})[k] = v
    return tensors, {"optimizer_param_groups": opt["param_groups"], "optimizer_scalars": scalars}


def optimizer_from_tensors(optimizer: Any, tensors: Mapping[str, Any], info: Mapping[str, Any]) -> None:
    """Restore what :func:`optimizer_to_tensors` returned into ``optimizer``."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, idx, name = key.split("/", 2)
            state.setdefault(int(idx), {})[name] = value
    for idx, values in info["optimizer_scalars"].items():
        state.setdefault(int(idx), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": info["optimizer_param_groups"]})


def weights_to_tensors(params: Mapping[str, Any], optimizer: Any,
                       ema: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Trainable parameters (``param/<name>``), optimizer state and EMA copies (``ema/<name>``, a
    diffusers ``EMAModel`` or ``None``) as float32 CPU tensors, and the JSON-able rest."""
    tensors: dict[str, Any] = {f"param/{k}": v.detach().float().cpu().contiguous() for k, v in params.items()}
    optim_tensors, info = optimizer_to_tensors(optimizer)
    tensors.update(optim_tensors)
    if ema is not None:
        tensors.update({f"ema/{name}": s.detach().float().cpu().contiguous()
                        for name, s in zip(params, ema.shadow_params)})
        info["ema_optimization_step"] = ema.optimization_step
    return tensors, info


def weights_from_tensors(tensors: Mapping[str, Any], info: Mapping[str, Any], params: Mapping[str, Any],
                         optimizer: Any, ema: Any = None) -> None:
    """Restore what :func:`weights_to_tensors` returned into the parameters, optimizer and EMA copy."""
    import torch

    with torch.no_grad():
        for name, p in params.items():
            p.copy_(tensors[f"param/{name}"].to(p.device, p.dtype))
        if ema is not None:
            for name, shadow in zip(params, ema.shadow_params):
                shadow.copy_(tensors[f"ema/{name}"].to(shadow.device, shadow.dtype))
            ema.optimization_step = int(info["ema_optimization_step"])
    optimizer_from_tensors(optimizer, tensors, info)

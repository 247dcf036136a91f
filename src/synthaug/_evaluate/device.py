"""Where and in what precision the torch backend trains: ``--device`` and ``--precision``.

``--device auto`` is the first CUDA device when torch sees one, else the CPU; ``cuda`` is
CUDA device 0 (an error when none is available); ``cuda:N`` that device. With ``--jobs J``
and several CUDA devices each worker process gets its own device, round-robin by worker
index (:func:`worker_devices`), so two trainings never share a GPU unless there are more
workers than GPUs. ``--precision fp16|bf16`` trains under ``torch.autocast`` (fp16 with a
``GradScaler``); ``fp32`` runs exactly the code of a run without these options, so a CPU
result is bit-identical. The keras backend keeps TensorFlow's own placement.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .._errors import InvalidParameterError

__all__ = ["DEVICE_CHOICES", "PRECISIONS", "check_device", "check_precision", "cuda_count", "resolve_device",
           "worker_devices", "autocast_context", "check_amp", "describe"]

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
PRECISIONS = ("fp32", "fp16", "bf16")
_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


def check_device(device: str) -> None:
    """Raise InvalidParameterError unless ``device`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    if not isinstance(device, str) or not _DEVICE.match(device):
        raise InvalidParameterError("--device", device, DEVICE_CHOICES)


def check_precision(precision: str, backend: str) -> None:
    """Raise InvalidParameterError unless ``precision`` is one of :data:`PRECISIONS`
    (and ``fp32`` for the keras backend, which keeps its own policy)."""
    if precision not in PRECISIONS:
        raise InvalidParameterError("--precision", precision, "fp32, fp16 or bf16")
    if backend == "keras" and precision != "fp32":
        raise InvalidParameterError("--precision", precision, "fp32 with --backend keras",
                                    "mixed precision is implemented for the torch backend only")


def cuda_count() -> int:
    """How many CUDA devices torch sees (0 without torch or CUDA)."""
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(requested: str, n_cuda: int) -> str:
    """The concrete device (``cpu`` or ``cuda:N``) of ``requested`` given ``n_cuda`` visible devices."""
    check_device(requested)
    if requested == "cpu" or (requested == "auto" and n_cuda == 0):
        return "cpu"
    if requested in ("auto", "cuda"):
        if n_cuda == 0:
            raise InvalidParameterError("--device", requested, "auto or cpu on this machine",
                                        "torch sees no CUDA device (no GPU, or a CPU-only torch build)")
        return "cuda:0"
    index = int(requested.split(":")[1])
    if index >= n_cuda:
        raise InvalidParameterError("--device", requested, f"auto, cpu or cuda:0 … cuda:{n_cuda - 1}" if n_cuda
                                    else "auto or cpu on this machine",
                                    f"torch sees {n_cuda} CUDA device(s)")
    return requested


def worker_devices(requested: str, jobs: int, n_cuda: int) -> list[str]:
    """The device of each of ``jobs`` workers: with ``auto``/``cuda`` and several CUDA devices,
    ``cuda:i mod n_cuda`` for worker ``i``; otherwise every worker gets :func:`resolve_device`."""
    first = resolve_device(requested, n_cuda)
    if requested in ("auto", "cuda") and first.startswith("cuda") and n_cuda > 1:
        return [f"cuda:{i % n_cuda}" for i in range(jobs)]
    return [first] * jobs


def check_amp(device: str, precision: str) -> None:
    """fp16 needs a CUDA device (the CPU's autocast is bf16)."""
    if precision == "fp16" and not device.startswith("cuda"):
        raise InvalidParameterError("--precision", "fp16", "fp32 or bf16 on the CPU",
                                    "fp16 mixed precision needs a CUDA device (--device cuda)")


def autocast_context(device: str, precision: str) -> Any:
    """``torch.autocast`` for ``precision`` on ``device``, or a no-op context for fp32."""
    import contextlib

    if precision == "fp32":
        return contextlib.nullcontext()
    import torch

    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def describe(devices: Sequence[str]) -> str:
    """``cpu`` or ``cuda:0, cuda:1``: the distinct devices, in order."""
    return ", ".join(dict.fromkeys(devices)) or "–"

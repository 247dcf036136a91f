"""Lazy imports of optional dependencies with an actionable error when they are missing."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from ._errors import MissingDependencyError

# module -> (pip requirement, synthaug extra)
_PACKAGES: dict[str, tuple[str, str]] = {
    "torch": ("torch", "torch"),
    "torchvision": ("torchvision", "torch"),
    "tensorflow": ("tensorflow", "tf"),
    "keras": ("keras", "tf"),
    "diffusers": ("diffusers", "diffusion"),
    "transformers": ("transformers", "diffusion"),
    "peft": ("peft", "diffusion"),
    "accelerate": ("accelerate", "diffusion"),
    "safetensors": ("safetensors", "diffusion"),
    "bitsandbytes": ("bitsandbytes", "diffusion"),
    "sklearn": ("scikit-learn", "eval"),
    "matplotlib": ("matplotlib", "eval"),
    "datasets": ("datasets", "hf"),
    "numpy": ("numpy", ""),
}


def require(module: str, *, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the pip command.

    ``purpose`` completes the sentence "… is needed for <purpose>".
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        requirement, extra = _PACKAGES.get(top, (top, ""))
        install = f'pip install "synthaug[{extra}]"' if extra else f"pip install {requirement}"
        needed = f" for {purpose}" if purpose else ""
        raise MissingDependencyError(
            f"{requirement} is needed{needed} but cannot be imported ({exc}); run: {install}"
        ) from exc


def import_callable(spec: str, *, parameter: str, wanted: str) -> Any:
    """The callable a user names as ``package.module:function`` (``--model``, ``--features``, …).

    Raises :class:`~synthaug.InvalidParameterError` naming ``parameter``, echoing ``spec`` and
    saying what is ``wanted`` when the module cannot be imported or has no such callable.
    """
    from ._errors import InvalidParameterError

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InvalidParameterError(parameter, spec, wanted)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidParameterError(parameter, spec, wanted, f"cannot import {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise InvalidParameterError(parameter, spec, wanted, f"{module_name!r} has no attribute {attr!r}")
    if not callable(target):
        raise InvalidParameterError(parameter, spec, wanted, f"{attr!r} is not callable")
    return target

"""User model factories: ``--model package.module:function`` or a callable ``factory(n_classes)``.

A factory returns a ``torch.nn.Module`` (torch backend) or a ``keras.Model`` (keras backend)
whose output is one logit per class. It is called once per training, so every experiment of a
split starts from the weights the factory (or ``--weights``) gives, under the same seed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._errors import InvalidParameterError
from .._optional import import_callable

__all__ = ["ModelFactory", "resolve_factory", "factory_name"]

ModelFactory = Callable[[int], Any]


def resolve_factory(spec: str) -> ModelFactory:
    """The callable named by ``package.module:function`` (a clear error if it does not exist)."""
    wanted = "a model factory package.module:function returning a torch.nn.Module or keras.Model for n_classes"
    return import_callable(spec, parameter="--model", wanted=wanted)


def factory_name(factory: ModelFactory) -> str:
    """``module:qualname`` of a factory (how report.json records it)."""
    module = getattr(factory, "__module__", None) or "?"
    name = getattr(factory, "__qualname__", None) or type(factory).__qualname__
    return f"{module}:{name}"


def build_factory_model(factory: ModelFactory, n_classes: int, backend: str) -> Any:
    """Call ``factory(n_classes)`` and check that it returned a model of ``backend``."""
    model = factory(n_classes)
    if backend == "torch":
        import torch

        ok = isinstance(model, torch.nn.Module)
        wanted = "a torch.nn.Module (or pass --backend keras for a keras.Model)"
    else:
        import keras

        ok = isinstance(model, keras.Model)
        wanted = "a keras.Model (or pass --backend torch for a torch.nn.Module)"
    if not ok:
        raise InvalidParameterError("--model", factory_name(factory), wanted,
                                    f"the factory returned {type(model).__name__}")
    return model

"""Feature extractors that ship with synthaug, registered through the same hook as third-party plugins."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._errors import InvalidParameterError
from .._hookspecs import hookimpl


def _colour_texture(argument: str | None, *, device: str = "auto") -> Any:
    from .._features import ColourTextureFeatures

    if argument:
        raise InvalidParameterError("features", f"colour-texture:{argument}", "colour-texture (takes no argument)")
    return ColourTextureFeatures()


def _inception(argument: str | None, *, device: str = "auto") -> Any:
    if not argument:  # torch-fidelity's weights from the torch hub cache, as before
        from .._features import InceptionFeatures

        return InceptionFeatures()
    from .._learned_features import InceptionFileFeatures

    return InceptionFileFeatures(argument, device=device)


def _dinov2(argument: str | None, *, device: str = "auto") -> Any:
    from .._learned_features import HFVisionFeatures

    return HFVisionFeatures("dinov2", argument, device, model_types=("dinov2", "dinov2_with_registers"))


def _clip(argument: str | None, *, device: str = "auto") -> Any:
    from .._learned_features import ClipFeatures

    return ClipFeatures(argument, device)


def _hf(argument: str | None, *, device: str = "auto") -> Any:
    from .._learned_features import HFVisionFeatures

    return HFVisionFeatures("hf", argument, device)


@hookimpl
def register_feature_extractors(register: Callable[..., None]) -> None:
    """colour-texture, inception, dinov2, clip and hf (any transformers vision model folder)."""
    register("colour-texture", _colour_texture, "colour-texture statistics (download-free)")
    register("inception", _inception, "Inception-v3 pool features")
    register("dinov2", _dinov2, "DINOv2 CLS features")
    register("clip", _clip, "CLIP image embeddings")
    register("hf", _hf, "pooled features of a transformers vision model")

"""Synthetic-data quality: memorization, diversity, distribution distance, defects, filtering.

>>> import synthaug
>>> report = synthaug.quality_report("data/train", "synthetic/", "report/")  # doctest: +SKIP
>>> synthaug.filter_synthetic("synthetic/", "data/train")  # doctest: +SKIP

Submodules import numpy lazily; importing this package imports neither numpy nor torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ColourTextureFeatures",
    "FeatureSpace",
    "GeneratorFeatures",
    "InceptionFeatures",
    "QualityReport",
    "filter_synthetic",
    "frechet_distance",
    "kernel_distance",
    "quality_report",
    "resolve_feature_space",
]

_EXPORTS = {
    "ColourTextureFeatures": ".._features",
    "FeatureSpace": ".._features",
    "GeneratorFeatures": ".._features",
    "InceptionFeatures": ".._features",
    "resolve_feature_space": ".._extractors",
    "QualityReport": ".results",
    "quality_report": ".assessment",
    "filter_synthetic": ".filter",
    "frechet_distance": ".metrics",
    "kernel_distance": ".metrics",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'synthaug._quality' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value

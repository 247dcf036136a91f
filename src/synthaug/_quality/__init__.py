"""Synthetic-data quality: memorization, diversity, distribution distance, defects, filtering.

>>> import synthaug
>>> report = synthaug.quality_report("data/train", "synthetic/", "report/")  # doctest: +SKIP
>>> synthaug.filter_synthetic("synthetic/", "data/train")  # doctest: +SKIP

Submodules import numpy lazily; importing this package imports neither numpy nor torch.
"""

from __future__ import annotations

from .._lazy import lazy_attributes

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

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)

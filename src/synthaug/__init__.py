"""synthaug: balance image-classification datasets with synthetic images.

The public API is this flat namespace. Attributes are imported lazily on first access so
that ``import synthaug`` stays fast and imports no numpy, torch, diffusers or tensorflow.

>>> import synthaug
>>> synthaug.upsample("data/", "synthetic/", generator="classic")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .augmented import AugmentedDataset
    from .augmenter import SyntheticAugmenter, upsample
    from .concepts import ByClass, ConceptStrategy, Subgroups
    from .dataset import Dataset, Sample
    from .errors import (
        DatasetError,
        DuplicateGeneratorError,
        GenerationError,
        InvalidOptionsError,
        InvalidParameterError,
        LeakageError,
        MissingDependencyError,
        OutputConflictError,
        OutputLockedError,
        PluginError,
        StorageError,
        SynthaugError,
        UnknownGeneratorError,
        UnreadableImageError,
        UsageError,
    )
    from ._imageio import load_image
    from ._optional import require
    from .inputs import check_no_leakage
    from .generator import (
        Concept,
        FitScope,
        GeneratedImage,
        Generator,
        GeneratorOptions,
        PerConceptGenerator,
        derive_seed,
        has_features,
    )
    from .hookspecs import hookimpl
    from .plugins import get_generator, get_registry, list_generators
    from .policy import MinorityUpsampling, Plan, Policy, Proportion
    from .progress import Progress
    from .splitting import split_dataset, write_split
    from .store import Store
    from .quality import filter_synthetic, quality_report

_EXPORTS: dict[str, str] = {
    "AugmentedDataset": "augmented",
    "SyntheticAugmenter": "augmenter",
    "check_no_leakage": "inputs",
    "ByClass": "concepts",
    "ConceptStrategy": "concepts",
    "Subgroups": "concepts",
    "upsample": "augmenter",
    "Dataset": "dataset",
    "Sample": "dataset",
    "DatasetError": "errors",
    "DuplicateGeneratorError": "errors",
    "GenerationError": "errors",
    "InvalidOptionsError": "errors",
    "InvalidParameterError": "errors",
    "LeakageError": "errors",
    "MissingDependencyError": "errors",
    "OutputConflictError": "errors",
    "OutputLockedError": "errors",
    "StorageError": "errors",
    "PluginError": "errors",
    "SynthaugError": "errors",
    "UnknownGeneratorError": "errors",
    "UnreadableImageError": "errors",
    "UsageError": "errors",
    "load_image": "_imageio",
    "require": "_optional",
    "Concept": "generator",
    "FitScope": "generator",
    "has_features": "generator",
    "GeneratedImage": "generator",
    "Generator": "generator",
    "GeneratorOptions": "generator",
    "PerConceptGenerator": "generator",
    "derive_seed": "generator",
    "hookimpl": "hookspecs",
    "get_generator": "plugins",
    "get_registry": "plugins",
    "list_generators": "plugins",
    "MinorityUpsampling": "policy",
    "Plan": "policy",
    "Policy": "policy",
    "Proportion": "policy",
    "Progress": "progress",
    "split_dataset": "splitting",
    "write_split": "splitting",
    "Store": "store",
    "quality_report": "quality",
    "filter_synthetic": "quality",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'synthaug' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

"""synthaug: balance image-classification datasets with synthetic images.

The public API is this flat namespace. Attributes are imported lazily on first access so
that ``import synthaug`` stays fast and imports no numpy, torch, diffusers or tensorflow.

>>> import synthaug
>>> synthaug.upsample("data/", "synthetic/", generator="classic")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_attributes
from ._version import __version__

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from ._adapters import MixingOptions, TfOptions, TorchOptions
    from ._augmented import AugmentedDataset
    from ._augmenter import SyntheticAugmenter, upsample
    from ._concepts import ByClass, ConceptStrategy, Subgroups, concepts_from
    from ._dataset import Dataset, Sample
    from ._errors import (
        CorruptRecordError,
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
    from ._evaluate import (
        EvaluationConfig,
        Experiment,
        ExperimentOptions,
        SyntheticExperiment,
        TrainConfig,
        TrainingSet,
        run_evaluation,
    )
    from ._generator import (
        Concept,
        FitScope,
        GeneratedImage,
        Generator,
        GeneratorOptions,
        PerConceptGenerator,
        derive_seed,
        has_features,
    )
    from ._hookspecs import hookimpl
    from ._html_report import write_html_report
    from ._imageio import load_image
    from ._inputs import check_no_leakage
    from ._optional import require
    from ._options import DeviceOptions, SamplingOptions, TrainingOptions, fit_neutral_field, override_default
    from ._plugins import get_generator, get_registry, list_generators
    from ._policy import MinorityUpsampling, Plan, Policy, Proportion, make_policy
    from ._progress import NULL_PROGRESS, NullProgress, Progress
    from ._quality import filter_synthetic, quality_report
    from ._splitting import split_dataset, write_split
    from ._store import Store

_EXPORTS: dict[str, str] = {
    "AugmentedDataset": "._augmented",
    "SyntheticAugmenter": "._augmenter",
    "check_no_leakage": "._inputs",
    "ByClass": "._concepts",
    "ConceptStrategy": "._concepts",
    "Subgroups": "._concepts",
    "upsample": "._augmenter",
    "Dataset": "._dataset",
    "Sample": "._dataset",
    "DatasetError": "._errors",
    "DuplicateGeneratorError": "._errors",
    "GenerationError": "._errors",
    "InvalidOptionsError": "._errors",
    "InvalidParameterError": "._errors",
    "LeakageError": "._errors",
    "MissingDependencyError": "._errors",
    "OutputConflictError": "._errors",
    "CorruptRecordError": "._errors",
    "OutputLockedError": "._errors",
    "StorageError": "._errors",
    "PluginError": "._errors",
    "SynthaugError": "._errors",
    "UnknownGeneratorError": "._errors",
    "UnreadableImageError": "._errors",
    "UsageError": "._errors",
    "load_image": "._imageio",
    "require": "._optional",
    "Concept": "._generator",
    "FitScope": "._generator",
    "has_features": "._generator",
    "GeneratedImage": "._generator",
    "Generator": "._generator",
    "GeneratorOptions": "._generator",
    "PerConceptGenerator": "._generator",
    "derive_seed": "._generator",
    "hookimpl": "._hookspecs",
    "get_generator": "._plugins",
    "get_registry": "._plugins",
    "list_generators": "._plugins",
    "MinorityUpsampling": "._policy",
    "Plan": "._policy",
    "Policy": "._policy",
    "Proportion": "._policy",
    "Progress": "._progress",
    "split_dataset": "._splitting",
    "write_split": "._splitting",
    "Store": "._store",
    "quality_report": "._quality",
    "filter_synthetic": "._quality",
    "make_policy": "._policy",
    "concepts_from": "._concepts",
    "NULL_PROGRESS": "._progress",
    "NullProgress": "._progress",
    "DeviceOptions": "._options",
    "SamplingOptions": "._options",
    "TrainingOptions": "._options",
    "fit_neutral_field": "._options",
    "override_default": "._options",
    "MixingOptions": "._adapters",
    "TorchOptions": "._adapters",
    "TfOptions": "._adapters",
    "EvaluationConfig": "._evaluate",
    "TrainConfig": "._evaluate",
    "Experiment": "._evaluate",
    "ExperimentOptions": "._evaluate",
    "SyntheticExperiment": "._evaluate",
    "TrainingSet": "._evaluate",
    "run_evaluation": "._evaluate",
    "write_html_report": "._html_report",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)

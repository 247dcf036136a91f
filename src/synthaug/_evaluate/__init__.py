"""The evaluation harness: does synthetic data help a downstream classifier?

:func:`run_evaluation` (CLI: ``synthaug evaluate``) trains the same classifier once per
experiment (real-only baseline, minority upsampling with synthetic images, a sweep of synthetic
proportions, random oversampling, class weights, the classic generator, or any kind added with
:func:`register_experiment`) on each of several train/val/test splits, compares each with the
baseline (corrected resampled-t interval, Wilcoxon p-value, verdict) and writes
``report.json``, ``report.md``, ``splits.json`` and plots. See docs/evaluation.md.

Nothing here imports torch, tensorflow, scipy or matplotlib until a run needs them.
"""

from __future__ import annotations

from .config import BACKENDS, MODELS, SELECT_METRICS, EvaluationConfig, TrainConfig
from .experiments import (
    EXPERIMENT_KINDS,
    Experiment,
    ExperimentOptions,
    SyntheticExperiment,
    TrainingSet,
    build_training_set,
    experiment_kinds,
    parse_experiments,
    register_experiment,
)
from .metrics import classification_metrics, mean_std, paired_differences, summarize
from .runner import REPORT_FORMAT, run_evaluation
from .sources import Source
from .splits import kfold_splits, load_splits_file, random_splits, splits_to_json
from .stats import compare, corrected_interval, verdict, wilcoxon_p

__all__ = [
    "BACKENDS",
    "EXPERIMENT_KINDS",
    "MODELS",
    "REPORT_FORMAT",
    "SELECT_METRICS",
    "EvaluationConfig",
    "Experiment",
    "ExperimentOptions",
    "Source",
    "SyntheticExperiment",
    "TrainConfig",
    "TrainingSet",
    "build_training_set",
    "classification_metrics",
    "compare",
    "corrected_interval",
    "experiment_kinds",
    "kfold_splits",
    "load_splits_file",
    "mean_std",
    "paired_differences",
    "parse_experiments",
    "random_splits",
    "register_experiment",
    "run_evaluation",
    "splits_to_json",
    "summarize",
    "verdict",
    "wilcoxon_p",
]

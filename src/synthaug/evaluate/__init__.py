"""The evaluation harness: does synthetic data help a downstream classifier?

:func:`run_evaluation` (CLI: ``synthaug evaluate``) trains the same classifier once per
experiment (real-only baseline, minority upsampling with synthetic images, a sweep of synthetic
proportions, random oversampling, class weights, the classic generator) on each of several
train/val/test splits, and writes ``report.json``, ``report.md``, ``splits.json`` and plots.
See docs/evaluation.md for the protocol and the report keys.

Nothing here imports torch, tensorflow or matplotlib until a run needs them.
"""

from __future__ import annotations

from .config import BACKENDS, MODELS, TrainConfig
from .experiments import EXPERIMENT_KINDS, Experiment, build_training_set, parse_experiments
from .metrics import classification_metrics, mean_std, paired_differences, summarize
from .runner import REPORT_FORMAT, run_evaluation
from .splits import kfold_splits, load_splits_file, random_splits, splits_to_json

__all__ = [
    "BACKENDS",
    "EXPERIMENT_KINDS",
    "MODELS",
    "REPORT_FORMAT",
    "Experiment",
    "TrainConfig",
    "build_training_set",
    "classification_metrics",
    "kfold_splits",
    "load_splits_file",
    "mean_std",
    "paired_differences",
    "parse_experiments",
    "random_splits",
    "run_evaluation",
    "splits_to_json",
    "summarize",
]

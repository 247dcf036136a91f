"""The experiments of the harness: a registry of small classes, one per kind.

=================  ==========================================================================
``baseline``       the real training images only
``upsample``       minority-upsampling (``MinorityUpsampling``, default ``"auto"``): every class
                   but the largest (or the classes ``--upsample`` names) filled up to the
                   largest with synthetic images of the chosen source
``proportion-S``   ``Proportion(S/100, mode)``: S % of each class's training set synthetic
``oversample``     RandomOverSampler: real images of the smaller classes duplicated at random
                   up to the largest class (no new images)
``class-weights``  the real images, loss weighted by ``n / (k * n_class)`` ("balanced")
``classic``        like ``upsample`` but always with the built-in ``classic`` generator
``strength-S``     like ``upsample`` with the generator's img2img ``strength`` S (``--strengths``)
``real-fraction``  the baseline on a class-stratified fraction of the real training images
                   (one per ``--fractions`` value): the learning curve of real data
=================  ==========================================================================

A new kind is one new module: an :class:`Experiment` class and a ``register_experiments`` hook
(docs/evaluation.md); the built-in kinds use the same hook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..._dataset import Dataset, Sample
from ..._errors import InvalidParameterError
from .base import (
    EXPERIMENTS,
    Experiment,
    ExperimentOptions,
    TrainingSet,
    experiment_class,
    register_experiment,
    registered_experiments,
)
from .baseline import Baseline
from .class_weights import ClassWeights, balanced_class_weights
from .oversample import Oversample
from .proportion import ProportionSweep
from .real_fraction import RealFraction
from .strength import StrengthSweep
from .synthetic import SyntheticExperiment
from .upsample import ClassicUpsample, Upsample, upsample_strategy

__all__ = [
    "EXPERIMENTS", "EXPERIMENT_KINDS", "Experiment", "ExperimentOptions", "SyntheticExperiment", "TrainingSet",
    "Baseline", "ClassWeights", "ClassicUpsample", "Oversample", "ProportionSweep", "RealFraction", "StrengthSweep",
    "Upsample",
    "balanced_class_weights", "build_training_set", "experiment_class", "experiment_kinds", "needed_synthetic",
    "parse_experiments", "register_experiment", "registered_experiments", "upsample_strategy",
]

#: The built-in kinds (``experiment_kinds()`` also lists kinds registered later).
EXPERIMENT_KINDS = ("baseline", "upsample", "proportion", "oversample", "class-weights", "classic", "strength",
                    "real-fraction")


def experiment_kinds() -> list[str]:
    """Every registered kind, in registration order."""
    return list(dict.fromkeys(cls.kind for cls in registered_experiments().values()))


def parse_experiments(
    names: Sequence[str], shares: Sequence[float] = (), proportion_mode: str = "replace", upsample: str = "auto",
    strengths: Sequence[float] = (), fractions: Sequence[float] = (),
) -> list[Experiment]:
    """Experiments from ``--experiments`` names (``kind`` or ``kind:value``); ``baseline`` is
    always included, first; a name given twice runs once. ``strengths`` expand ``strength``
    (added when ``strengths`` are given and no ``strength`` is named)."""
    if proportion_mode not in ("add", "replace"):
        raise InvalidParameterError("--proportion-mode", proportion_mode, "'add' or 'replace'")
    options = ExperimentOptions(tuple(shares), proportion_mode, upsample, strengths=tuple(strengths),
                                fractions=tuple(fractions))
    if strengths and not any(n.strip().lower().partition(":")[0] == "strength" for n in names):
        names = [*names, "strength"]
    out: list[Experiment] = [Baseline("baseline")]
    for raw in names:
        name = raw.strip().lower().replace("_", "-")
        if not name:
            continue
        kind, _, value = name.partition(":")
        out.extend(experiment_class(kind).from_spec(value, options))
    seen: dict[str, Experiment] = {}
    for e in out:
        seen.setdefault(e.name, e)
    return list(seen.values())


def needed_synthetic(experiments: Sequence[Experiment], train: Dataset) -> dict[str, int]:
    """Per class, the most synthetic images any of ``experiments`` needs on ``train``."""
    need: dict[str, int] = {c: 0 for c in train.classes}
    for e in experiments:
        for label, n in e.needed_synthetic(train).items():
            need[label] = max(need.get(label, 0), n)
    return need


def build_training_set(
    experiment: Experiment, train: Dataset, *, pool: Mapping[str, Sequence[Sample]] | None = None,
    source: str = "", seed: int = 0,
) -> TrainingSet:
    """The training set ``experiment`` uses on ``train`` (``pool``: synthetic images per class)."""
    return experiment.training_set(train, pool=pool, source=source, seed=seed)

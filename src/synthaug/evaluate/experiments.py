"""The experiments of the harness and the training set each one builds from a split.

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
=================  ==========================================================================

Synthetic images are taken from a per-split pool in manifest order (concept, index), so
``proportion-30`` uses a prefix of the images ``proportion-60`` uses.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..dataset import Dataset, Sample
from ..errors import DatasetError, InvalidParameterError
from ..policy import MinorityUpsampling, Plan, Proportion

__all__ = ["EXPERIMENT_KINDS", "Experiment", "TrainingSet", "parse_experiments", "build_training_set", "needed_synthetic"]

EXPERIMENT_KINDS = ("baseline", "upsample", "proportion", "oversample", "class-weights", "classic")
#: Synthetic-source key of experiments that use the built-in classic generator.
CLASSIC_SOURCE = "generator:classic"


@dataclass(frozen=True)
class Experiment:
    """One experiment: ``kind`` from :data:`EXPERIMENT_KINDS`, ``share`` for ``proportion``.

    ``upsample`` says which classes ``upsample``/``classic`` fill up to the largest class: an
    imbalanced-learn strategy name (``auto`` = every class but the largest, ``minority``, …),
    ``rarest:K`` (the K smallest classes of each split's training set), or class names
    separated by commas.
    """

    name: str
    kind: str
    share: float | None = None
    proportion_mode: str = "replace"
    upsample: str = "auto"

    @property
    def uses_synthetic(self) -> bool:
        return self.kind in ("upsample", "proportion", "classic")

    def policy(self, counts: Mapping[str, int]):
        """The synthaug policy of a synthetic experiment for a training set's class counts."""
        if self.kind == "proportion":
            return Proportion(self.share, mode=self.proportion_mode)
        return MinorityUpsampling(upsample_strategy(self.upsample, counts))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == "proportion":
            out.update(share=self.share, mode=self.proportion_mode)
        if self.kind in ("upsample", "classic"):
            out.update(upsample=self.upsample)
        return out


def upsample_strategy(spec: str, counts: Mapping[str, int]) -> Any:
    """A :class:`MinorityUpsampling` strategy from ``spec`` (see :class:`Experiment`)."""
    from ..policy import STRATEGIES

    text = spec.strip()
    if text.replace("-", " ").replace("_", " ").lower() in STRATEGIES:
        return text
    majority = max(counts.values())
    if text.lower().startswith("rarest:"):
        try:
            k = int(text.split(":", 1)[1])
        except ValueError:
            k = 0
        if k < 1:
            raise InvalidParameterError("--upsample", spec, "rarest:K with K a positive integer, e.g. rarest:2")
        chosen = sorted(counts, key=lambda c: (counts[c], c))[:k]
    else:
        chosen = [c.strip() for c in text.split(",") if c.strip()]
        unknown = [c for c in chosen if c not in counts]
        if unknown or not chosen:
            raise InvalidParameterError(
                "--upsample", spec, "a strategy (" + ", ".join(STRATEGIES) + "), rarest:K, or class names from "
                + ", ".join(sorted(counts)))
    return {c: majority for c in chosen}


@dataclass
class TrainingSet:
    """What one experiment trains on in one split."""

    real: list[Sample]
    synthetic: list[Sample] = field(default_factory=list)
    class_weights: dict[str, float] | None = None

    def counts(self, classes: Sequence[str]) -> dict[str, dict[str, int]]:
        out = {c: {"real": 0, "synthetic": 0} for c in classes}
        for s in self.real:
            out[s.label]["real"] += 1
        for s in self.synthetic:
            out[s.label]["synthetic"] += 1
        return out

    @property
    def synthetic_share(self) -> float:
        total = len(self.real) + len(self.synthetic)
        return len(self.synthetic) / total if total else 0.0


def _share_name(share: float) -> str:
    percent = share * 100
    return f"proportion-{percent:g}"


def parse_experiments(
    names: Sequence[str], shares: Sequence[float] = (), proportion_mode: str = "replace", upsample: str = "auto"
) -> list[Experiment]:
    """Experiments from names; ``proportion`` expands to one experiment per share
    (``proportion:0.6`` gives one share directly). ``baseline`` is always included, first."""
    if proportion_mode not in ("add", "replace"):
        raise InvalidParameterError("--proportion-mode", proportion_mode, "'add' or 'replace'")
    out: list[Experiment] = [Experiment("baseline", "baseline")]
    for raw in names:
        name = raw.strip().lower().replace("_", "-")
        if not name:
            continue
        kind, _, value = name.partition(":")
        if kind in ("class-weight", "classweights", "weights"):
            kind = "class-weights"
        if kind not in EXPERIMENT_KINDS:
            raise InvalidParameterError("--experiments", raw, "names from " + ", ".join(EXPERIMENT_KINDS))
        if kind == "proportion":
            chosen = [value] if value else list(shares)
            if not chosen:
                raise InvalidParameterError("--shares", None, "one or more shares for the proportion experiment, e.g. --shares 0.3,0.6")
            for v in chosen:
                try:
                    share = float(v)
                except (TypeError, ValueError):
                    raise InvalidParameterError("--shares", v, "a number in (0, 1]") from None
                Proportion(share, mode=proportion_mode)  # validates
                out.append(Experiment(_share_name(share), "proportion", share, proportion_mode))
        elif value:
            raise InvalidParameterError("--experiments", raw, f"{kind!r} takes no ':value'")
        elif kind in ("upsample", "classic"):
            out.append(Experiment(kind, kind, upsample=upsample))
        else:
            out.append(Experiment(kind, kind))
    seen: dict[str, Experiment] = {}
    for e in out:
        seen.setdefault(e.name, e)
    return list(seen.values())


def _plan(experiment: Experiment, train: Dataset) -> Plan:
    counts = train.counts()
    return experiment.policy(counts).plan(counts)


def needed_synthetic(experiments: Sequence[Experiment], train: Dataset) -> dict[str, int]:
    """Per class, the most synthetic images any of ``experiments`` needs on ``train``."""
    need: dict[str, int] = {c: 0 for c in train.classes}
    for e in experiments:
        for label, cp in _plan(e, train).classes.items():
            need[label] = max(need[label], cp.synthetic)
    return need


def _take(pool: Mapping[str, Sequence[Sample]], label: str, n: int, source: str) -> list[Sample]:
    available = list(pool.get(label, ()))
    if len(available) < n:
        raise DatasetError(
            f"synthetic source {source} has {len(available)} image(s) of class {label!r} but the experiment "
            f"needs {n}; generate more (e.g. a larger --target) or use --generator to generate per split"
        )
    return available[:n]


def _oversample(train: Dataset, seed: int) -> list[Sample]:
    rng = random.Random(seed)
    samples_of = _by_class(train)
    majority = max(len(v) for v in samples_of.values())
    extra = []
    for label in sorted(samples_of):
        members = samples_of[label]
        extra.extend(rng.choice(members) for _ in range(majority - len(members)))
    return list(train) + extra


def balanced_class_weights(train: Dataset) -> dict[str, float]:
    """``n / (k * n_class)`` per class (scikit-learn's "balanced"); empty classes get 0."""
    counts = {c: n for c, n in train.counts().items()}
    present = {c: n for c, n in counts.items() if n}
    total = sum(present.values())
    return {c: (total / (len(present) * n) if n else 0.0) for c, n in counts.items()}


def build_training_set(
    experiment: Experiment,
    train: Dataset,
    *,
    pool: Mapping[str, Sequence[Sample]] | None = None,
    source: str = "",
    seed: int = 0,
) -> TrainingSet:
    """The training set ``experiment`` uses on ``train`` (``pool``: synthetic images per class)."""
    kind = experiment.kind
    if kind == "baseline":
        return TrainingSet(list(train))
    if kind == "oversample":
        return TrainingSet(_oversample(train, seed))
    if kind == "class-weights":
        return TrainingSet(list(train), class_weights=balanced_class_weights(train))
    if pool is None:
        raise InvalidParameterError("synthetic source", None, f"a generator or synthetic folders for {experiment.name!r}")
    plan = _plan(experiment, train)
    real: list[Sample] = list(train)
    if any(cp.real_used != cp.real for cp in plan.classes.values()):
        rng = random.Random(seed)
        real = []
        for label, members in sorted(_by_class(train).items()):
            chosen = sorted(members, key=lambda s: str(s.path))
            rng.shuffle(chosen)
            real.extend(chosen[: plan.classes[label].real_used])
    synthetic: list[Sample] = []
    for label, cp in plan.classes.items():
        if cp.synthetic:
            synthetic.extend(_take(pool, label, cp.synthetic, source))
    return TrainingSet(real, synthetic)


def _by_class(train: Dataset) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    for s in train:
        out.setdefault(s.label, []).append(s)
    return out

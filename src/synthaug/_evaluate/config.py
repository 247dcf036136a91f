"""Settings of an evaluation: the classifier every experiment trains (:class:`TrainConfig`,
identical across experiments) and the whole run (:class:`EvaluationConfig`)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .._errors import InvalidParameterError
from .device import check_device, check_precision
from .factory import ModelFactory, factory_name, resolve_factory

__all__ = ["BACKENDS", "MODELS", "SELECT_METRICS", "DEFAULT_EPOCHS", "TrainConfig", "EvaluationConfig"]

BACKENDS = ("torch", "keras")
MODELS = ("mobilenet", "small-cnn")
#: Validation metrics a checkpoint can be selected by (``loss``: the lowest validation loss).
SELECT_METRICS = ("balanced_accuracy", "accuracy", "macro_f1", "loss")
#: Default budget in baseline epochs: the small-cnn baseline at 64 px on the skin-lesion
#: development set stops improving before it (docs/evaluation.md, "Budget").
DEFAULT_EPOCHS = 30.0


def check_real(parameter: str, value: object, allowed: str, low: float, high: float = math.inf, *,
               low_open: bool = True, high_open: bool = False) -> None:
    """The validator of one numeric parameter: ``value`` must be a finite real number in the range
    from ``low`` to ``high`` (each end open or closed); else :class:`InvalidParameterError`
    naming ``parameter``, echoing ``value`` and saying ``allowed``. NaN and infinity never pass."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidParameterError(parameter, value, allowed)
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (above and below):
        raise InvalidParameterError(parameter, value, allowed)


@dataclass(frozen=True)
class TrainConfig:
    """The classifier and its training budget.

    The thesis head sits on the backbone: global average pooling, Dropout 0.3, Dense 256
    leaky-ReLU, BatchNorm, Dropout 0.2, Dense 128 leaky-ReLU, BatchNorm, Dropout 0.15, Dense
    n (logits), softmax cross-entropy from logits, Adam. Training augmentation: random
    horizontal/vertical flips and rotations up to ``rotation`` turns (0.1 = 36 degrees).

    ``model`` is ``"small-cnn"`` (default; learns on a CPU at 64 px), ``"mobilenet"``, a
    factory spec ``"package.module:function"``, or a callable ``factory(n_classes)`` returning a
    ``torch.nn.Module`` (``backend="torch"``; input float NCHW in [0, 1], output logits) or a
    ``keras.Model`` (``backend="keras"``; input float NHWC in [0, 255], output logits). A
    factory model replaces backbone *and* head; the harness keeps data, splits, steps,
    selection and metrics. ``weights`` (a file) is then loaded into the factory's model.

    Budget: ``steps`` optimizer steps, or ``epochs`` epochs *of the baseline* (``epochs *
    ceil(n_baseline_train / batch_size)`` steps), the same for every experiment of a split.
    The validation set is scored every ``eval_every`` steps (default: one baseline epoch) and
    the weights best by the validation metric ``select`` (ties: lower validation loss, then
    the earlier step) are restored before testing.

    ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``) and ``precision`` (``fp32``, ``fp16``,
    ``bf16``) place the torch backend's training (:mod:`.device`); keras keeps its own placement.
    """

    backend: str = "torch"
    model: str | ModelFactory = "small-cnn"
    alpha: float = 0.25
    weights: str = "none"
    image_size: int = 64
    batch_size: int = 32
    epochs: float | None = DEFAULT_EPOCHS
    steps: int | None = None
    eval_every: int | None = None
    learning_rate: float = 1e-3
    rotation: float = 0.1
    augment: bool = True
    threads: int | None = None
    select: str = "balanced_accuracy"
    #: "hard": cross-entropy on class indices; "soft": cross-entropy on probability targets (a
    #: synthetic image's ``soft_label``, one-hot for every other image; see docs/recipes.md).
    label_mode: str = "hard"
    device: str = "auto"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.label_mode not in ("hard", "soft"):
            raise InvalidParameterError("--label-mode", self.label_mode, "'hard' or 'soft'")
        if self.backend not in BACKENDS:
            raise InvalidParameterError("--backend", self.backend, "'torch' or 'keras'")
        check_device(self.device)
        check_precision(self.precision, self.backend)
        if self.factory is None and self.model not in MODELS:
            raise InvalidParameterError("--model", self.model, "'small-cnn', 'mobilenet' or package.module:function")
        if self.select not in SELECT_METRICS:
            raise InvalidParameterError("--select", self.select, "one of " + ", ".join(SELECT_METRICS))
        if self.threads is not None and self.threads < 1:
            raise InvalidParameterError("--threads", self.threads, "a positive number of CPU threads")
        check_real("--alpha", self.alpha, "a MobileNet width multiplier in (0, 4], e.g. 0.25", 0, 4)
        check_real("--rotation", self.rotation, "a finite number of turns in [0, 1], e.g. 0.1", 0, 1, low_open=False)
        if self.image_size < 16:
            raise InvalidParameterError("--image-size", self.image_size, "at least 16 pixels")
        if self.batch_size < 1:
            raise InvalidParameterError("--batch-size", self.batch_size, "a positive integer")
        if self.steps is None and self.epochs is None:
            raise InvalidParameterError("--epochs", self.epochs, "a positive number of baseline epochs (or give --steps)")
        if self.epochs is not None:
            check_real("--epochs", self.epochs, "a positive, finite number of baseline epochs (or give --steps)", 0)
        if self.steps is not None and self.steps < 1:
            raise InvalidParameterError("--steps", self.steps, "a positive number of optimizer steps")
        if self.eval_every is not None and self.eval_every < 1:
            raise InvalidParameterError("--eval-every", self.eval_every, "a positive number of steps")
        check_real("--lr", self.learning_rate, "a positive, finite learning rate, e.g. 0.001", 0)
        if self.weights == "imagenet" and (self.backend != "keras" or self.model != "mobilenet"):
            if self.factory is not None:
                raise InvalidParameterError(
                    "--weights", "imagenet", "'none' or a local weights file with --model FACTORY",
                    "a model factory loads its own pretrained weights (see docs/evaluation.md)",
                )
            raise InvalidParameterError(
                "--weights", "imagenet", "'none' or a local weights file with this backend/model",
                "ImageNet weights exist only for --backend keras --model mobilenet",
            )
        if self.weights not in ("none", "imagenet") and not Path(self.weights).is_file():
            raise InvalidParameterError(
                "--weights", self.weights, "'imagenet', 'none' or the path of an existing weights file"
            )

    @property
    def factory(self) -> ModelFactory | None:
        """The user's model factory, or None for a built-in model (resolves a spec string)."""
        if callable(self.model):
            return self.model
        if isinstance(self.model, str) and ":" in self.model:
            return resolve_factory(self.model)
        return None

    @property
    def model_name(self) -> str:
        """``small-cnn``, ``mobilenet`` or the factory as ``module:function``."""
        return factory_name(self.model) if callable(self.model) else str(self.model)

    def budget(self, n_baseline_train: int) -> tuple[int, int]:
        """``(steps, eval_every)`` for a split whose baseline has ``n_baseline_train`` images."""
        epoch = max(1, -(-n_baseline_train // self.batch_size))
        steps = self.steps if self.steps is not None else max(1, round(float(self.epochs) * epoch))
        every = self.eval_every or min(epoch, steps)
        return steps, every

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["model"] = self.model_name
        if out["label_mode"] == "hard":  # the default: left out, so results cached before it existed stay valid
            del out["label_mode"]
        return out


@dataclass(frozen=True)
class EvaluationConfig:
    """Everything an evaluation run is asked to do (the CLI options of ``synthaug evaluate``).

    Experiments: ``experiments`` names kinds from the experiment registry (``baseline`` always
    runs first); ``shares``/``proportion_mode`` expand ``proportion``, ``fractions`` ``real-fraction``;
    ``upsample`` says which classes ``upsample``/``classic`` fill; ``strengths`` expand ``strength`` (one
    experiment per img2img strength of the generator). Synthetic images come from ``generator`` (fitted per
    split on its training images, with ``generator_options``) or from ``synthetic`` folders
    (one per split). Splits: ``splits`` random splits (``val``/``test`` fractions), or
    ``repeats`` x ``folds`` repeated k-fold, or a ``splits_file``; ``groups``
    (``FILE.csv:COLUMN``) keeps groups together. ``train`` is the classifier; ``jobs`` the
    number of worker processes; ``confidence`` the level of the intervals; ``positive`` a class
    whose CLASS-vs-rest figures (AUROC, sensitivity at fixed specificity) get their own section.
    """

    experiments: Sequence[str] = ("upsample",)
    shares: Sequence[float] = ()
    fractions: Sequence[float] = ()
    proportion_mode: str = "replace"
    upsample: str = "auto"
    strengths: Sequence[float] = ()
    generator: str | None = None
    generator_options: Mapping[str, Any] | None = None
    synthetic: Sequence[str | os.PathLike[str]] = ()
    splits: int | None = None
    repeats: int | None = None
    folds: int | None = None
    splits_file: str | os.PathLike[str] | None = None
    val: float = 0.15
    test: float = 0.15
    groups: str | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    strict: bool = False
    plots: bool = True
    jobs: int = 1
    confidence: float = 0.95
    positive: str | None = None
    command: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or self.jobs < 1:
            raise InvalidParameterError("--jobs", self.jobs, "a positive number of worker processes, e.g. 2")
        for flag, value, minimum in (("--splits", self.splits, 1), ("--repeats", self.repeats, 1),
                                     ("--folds", self.folds, 2)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
                raise InvalidParameterError(flag, value, f"a whole number of at least {minimum}, or leave it out")
        check_real("confidence", self.confidence, "a level in (0, 1), e.g. 0.95", 0, 1, high_open=True)
        check_real("--val", self.val, "a fraction in [0, 1)", 0, 1, low_open=False, high_open=True)
        check_real("--test", self.test, "a fraction in [0, 1)", 0, 1, low_open=False, high_open=True)
        for share in self.shares:
            check_real("--shares", share, "numbers in (0, 1], e.g. 0.3,0.6", 0, 1)
        if self.train is None:
            object.__setattr__(self, "train", TrainConfig())

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> EvaluationConfig:
        """A config from keyword options (the former ``run_evaluation`` parameters)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"run_evaluation() got unexpected keyword argument(s) {', '.join(unknown)}; "
                            f"EvaluationConfig fields are {', '.join(sorted(known))}")
        return cls(**options)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (as recorded in report.json under ``config``)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("train", "command")}
        out["experiments"] = list(self.experiments)
        out["shares"] = list(self.shares)
        out["strengths"] = list(self.strengths)
        out["fractions"] = list(self.fractions)
        out["synthetic"] = [str(p) for p in self.synthetic]
        out["splits_file"] = None if self.splits_file is None else str(self.splits_file)
        out["generator_options"] = dict(self.generator_options or {})
        out["train"] = self.train.to_dict()
        return out


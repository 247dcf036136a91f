"""One training of the harness: train, validate every ``eval_every`` steps, keep the checkpoint
best by the selection metric, test it, and record whether the budget looked sufficient.

:class:`TrainingTask` holds everything one (split, experiment) training needs and is
picklable, so :mod:`.jobs` can run it in a worker process with the same result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._dataset import Dataset, Sample
from .clinical import softmax
from .config import TrainConfig
from .metrics import classification_metrics, cross_entropy

__all__ = ["LATE_FRACTION", "TrainingTask", "selection_key", "best_checkpoint", "is_late", "run_training"]

#: A best checkpoint in the last ``LATE_FRACTION`` of the budget marks a run possibly under-trained.
LATE_FRACTION = 0.1


@dataclass(frozen=True)
class TrainingTask:
    """One (split, experiment) training: its data, classifier settings, seed and budget."""

    split: int
    experiment: str
    classes: tuple[str, ...]
    real: tuple[Sample, ...]
    synthetic: tuple[Sample, ...]
    val: Dataset
    test: Dataset
    config: TrainConfig
    class_weights: Mapping[str, float] | None
    seed: int
    steps: int
    eval_every: int

    @property
    def label(self) -> str:
        return f"split {self.split} {self.experiment}"


def selection_key(entry: Mapping[str, float], select: str) -> tuple[float, ...]:
    """Larger is better: the validation metric ``select`` (ties: lower validation loss), or
    ``-val_loss`` for ``select="loss"``."""
    if select == "loss":
        return (-entry["val_loss"],)
    return (entry[f"val_{select}"], -entry["val_loss"])


def best_checkpoint(history: Sequence[Mapping[str, float]], select: str) -> int:
    """Index of the entry :func:`run_training` keeps: the first with the largest selection key."""
    best = 0
    for i, entry in enumerate(history):
        if selection_key(entry, select) > selection_key(history[best], select):
            best = i
    return best


def is_late(best_step: int, steps: int) -> bool:
    """Whether the best step fell in the last :data:`LATE_FRACTION` of the budget (still improving)."""
    return best_step > steps * (1 - LATE_FRACTION)


def _classifier(config: TrainConfig) -> Any:
    if config.backend == "keras":
        from .keras_backend import KerasClassifier

        return KerasClassifier
    from .torch_backend import TorchClassifier

    return TorchClassifier


def _validate(clf: Any, classes: Sequence[str]) -> dict[str, float]:
    logits, y = clf.predict("val")
    val = classification_metrics(y, logits.argmax(1), classes)
    return {"val_loss": cross_entropy(logits, y), "val_accuracy": val["accuracy"],
            "val_balanced_accuracy": val["balanced_accuracy"], "val_macro_f1": val["macro_f1"]}


def run_training(task: TrainingTask, progress_task: Any = None, cache: Any = None) -> dict[str, Any]:
    """Train ``task`` and return its record: history, best step, late flag, val and test metrics."""
    from .._augmented import AugmentedDataset

    classes = list(task.classes)
    data = AugmentedDataset(Dataset(list(task.real)), list(task.synthetic), classes=classes,
                            val=task.val, test=task.test)
    clf = _classifier(task.config)(data, task.config, class_weights=task.class_weights, seed=task.seed, cache=cache)
    history: list[dict[str, float]] = []
    best, best_key, best_step, done = None, None, 0, 0
    try:
        while done < task.steps:
            n = min(task.eval_every, task.steps - done)
            loss = clf.train_steps(n)
            done += n
            entry = {"step": done, "train_loss": loss, **_validate(clf, classes)}
            history.append(entry)
            key = selection_key(entry, task.config.select)
            if best_key is None or key > best_key:
                best, best_key, best_step = clf.snapshot(), key, done
            if progress_task is not None:
                progress_task.advance(n, metrics={"loss": loss, "val_bacc": entry["val_balanced_accuracy"]})
        clf.restore(best)
        val_logits, val_y = clf.predict("val")
        test_logits, test_y = clf.predict("test")
    finally:
        clf.close()
    return {
        "device": getattr(clf, "device", "keras (its own placement)"), "precision": task.config.precision,
        "steps": task.steps, "eval_every": task.eval_every, "select": task.config.select, "best_step": best_step,
        "late_best": is_late(best_step, task.steps), "history": history,
        "val": classification_metrics(val_y, val_logits.argmax(1), classes),
        "test": classification_metrics(test_y, test_logits.argmax(1), classes),
        # softmax of the test images, for the clinical metrics (.clinical; kept in the result cache only)
        "test_probabilities": softmax(test_logits).tolist(), "test_labels": [int(v) for v in test_y],
    }

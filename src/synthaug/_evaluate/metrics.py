"""Classification metrics (numpy only) and mean ± std summaries across splits.

Every metric dict has the same keys (the ``report.json`` contract, see docs/evaluation.md):
``accuracy``, ``balanced_accuracy`` (mean per-class recall), ``macro_f1``, ``per_class_recall``
(``{class: recall}``), ``confusion_matrix`` (rows = true class, columns = predicted class, in
``classes`` order) and ``n`` (number of images).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["SCALAR_METRICS", "classification_metrics", "mean_std", "summarize", "paired_differences", "cross_entropy"]

#: The scalar metrics summarised across splits and compared with the baseline.
SCALAR_METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro-F1, per-class recall and the confusion matrix.

    A class absent from ``y_true`` has recall ``None`` and is left out of the balanced accuracy;
    its F1 counts as 0 if it was predicted, and is left out otherwise (as scikit-learn's
    ``f1_score(average="macro", labels=present)`` would with zero_division=0).
    """
    import numpy as np

    k = len(classes)
    true = np.asarray(y_true, dtype=int)
    pred = np.asarray(y_pred, dtype=int)
    cm = np.zeros((k, k), dtype=int)
    np.add.at(cm, (true, pred), 1)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    tp = np.diag(cm)
    recalls: dict[str, float | None] = {}
    f1s = []
    for i, name in enumerate(classes):
        recall = tp[i] / support[i] if support[i] else None
        recalls[name] = None if recall is None else float(recall)
        if support[i] or predicted[i]:
            precision = tp[i] / predicted[i] if predicted[i] else 0.0
            r = recall or 0.0
            f1s.append(2 * precision * r / (precision + r) if precision + r else 0.0)
    present = [r for r in recalls.values() if r is not None]
    n = int(true.size)
    return {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else float("nan"),
        "balanced_accuracy": float(sum(present) / len(present)) if present else float("nan"),
        "macro_f1": float(sum(f1s) / len(f1s)) if f1s else float("nan"),
        "per_class_recall": recalls,
        "confusion_matrix": cm.tolist(),
    }


def cross_entropy(logits: Any, y_true: Sequence[int]) -> float:
    """Mean softmax cross-entropy of ``logits`` (N x K) for the true labels."""
    import numpy as np

    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_prob = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_prob[np.arange(len(y_true)), np.asarray(y_true, dtype=int)].mean())


def mean_std(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """``{"mean", "std", "n"}`` of the non-missing values (sample std, ddof=1; 0 for one value)."""
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not xs:
        return {"mean": None, "std": None, "n": 0}
    mean = sum(xs) / len(xs)
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return {"mean": mean, "std": std, "n": len(xs)}


def summarize(per_split: Sequence[Mapping[str, Any]], classes: Sequence[str]) -> dict[str, Any]:
    """Mean ± std across splits of the scalar metrics and of each class's recall,
    and the confusion matrix summed over splits."""
    import numpy as np

    out: dict[str, Any] = {m: mean_std([r[m] for r in per_split]) for m in SCALAR_METRICS}
    out["per_class_recall"] = {c: mean_std([r["per_class_recall"][c] for r in per_split]) for c in classes}
    out["confusion_matrix_sum"] = np.sum([r["confusion_matrix"] for r in per_split], axis=0).tolist()
    return out


def paired_differences(
    experiment: Sequence[Mapping[str, Any]], baseline: Sequence[Mapping[str, Any]], classes: Sequence[str]
) -> dict[str, Any]:
    """Per-split ``experiment - baseline`` of each scalar metric and class recall, with mean ± std."""
    out: dict[str, Any] = {}
    for m in SCALAR_METRICS:
        diffs = [e[m] - b[m] for e, b in zip(experiment, baseline)]
        out[m] = {"per_split": diffs, **mean_std(diffs)}
    recall = {}
    for c in classes:
        diffs = [
            None if e["per_class_recall"][c] is None or b["per_class_recall"][c] is None
            else e["per_class_recall"][c] - b["per_class_recall"][c]
            for e, b in zip(experiment, baseline)
        ]
        recall[c] = {"per_split": diffs, **mean_std(diffs)}
    out["per_class_recall"] = recall
    return out

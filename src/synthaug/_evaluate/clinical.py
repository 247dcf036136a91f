"""Clinical metrics of a test split from the classifier's softmax, their summaries across splits
and paired comparisons with the baseline.

Per class (one-vs-rest, predicted class = argmax): **sensitivity** TP/(TP+FN), **specificity**
TN/(TN+FP), **PPV** TP/(TP+FP) and the **AUROC** of the class's softmax probability
(``sklearn.metrics.roc_auc_score``). A figure whose denominator is empty is ``None``: AUROC is
undefined when a class is absent from the test split (or is the only class in it), and the
class is then left out of the **macro AUROC** and listed in ``auroc_undefined``. The
**expected calibration error** uses 15 equal-width bins of the top-class confidence:
``sum_b |B|/n * |accuracy(B) - confidence(B)|``. With ``positive=CLASS`` a binary CLASS-vs-rest
section adds its AUROC and the **sensitivity at fixed specificity** (0.90 and 0.95): the highest
true-positive rate of the ROC curve among thresholds whose false-positive rate is at most
1 - specificity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .metrics import mean_std
from .stats import compare

__all__ = ["ECE_BINS", "SPECIFICITIES", "softmax", "expected_calibration_error", "sensitivity_at_specificity",
           "clinical_metrics", "binary_metrics", "summarize_clinical", "compare_clinical", "CLINICAL_PAIRED",
           "BINARY_METRICS", "attach_clinical"]

ECE_BINS = 15
SPECIFICITIES = (0.9, 0.95)
#: Scalar clinical metrics compared with the baseline (paired, with a verdict).
CLINICAL_PAIRED = ("macro_auroc", "ece")
PER_CLASS = ("sensitivity", "specificity", "ppv", "auroc")


def _sens_key(specificity: float) -> str:
    return f"sensitivity_at_specificity_{specificity:g}"


BINARY_METRICS = ("auroc", *(_sens_key(s) for s in SPECIFICITIES))


def softmax(logits: Any) -> Any:
    """Row-wise softmax of N x K logits (float64 numpy)."""
    import numpy as np

    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def expected_calibration_error(probs: Any, y_true: Sequence[int], bins: int = ECE_BINS) -> float:
    """ECE of the top-class confidence in ``bins`` equal-width bins ((0, 1/b], (1/b, 2/b], …)."""
    import numpy as np

    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y_true, dtype=int)
    if y.size == 0:
        return float("nan")
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(float)
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            total += members.sum() / y.size * abs(correct[members].mean() - confidence[members].mean())
    return float(total)


def _auroc(is_positive: Any, scores: Any) -> float | None:
    from sklearn.metrics import roc_auc_score

    if is_positive.all() or not is_positive.any():
        return None
    return float(roc_auc_score(is_positive, scores))


def sensitivity_at_specificity(is_positive: Any, scores: Any, specificity: float) -> float | None:
    """Highest sensitivity among thresholds with specificity >= ``specificity`` (None if a side is empty)."""
    import numpy as np
    from sklearn.metrics import roc_curve

    if is_positive.all() or not is_positive.any():
        return None
    fpr, tpr, _ = roc_curve(is_positive, scores)
    allowed = fpr <= 1 - specificity + 1e-12
    return float(np.max(tpr[allowed])) if allowed.any() else 0.0


def _ratio(num: int, den: int) -> float | None:
    return float(num / den) if den else None


def clinical_metrics(y_true: Sequence[int], probs: Any, classes: Sequence[str]) -> dict[str, Any]:
    """``{"per_class": {class: {n, sensitivity, specificity, ppv, auroc}}, "macro_auroc",
    "auroc_undefined", "ece"}`` of one test split."""
    import numpy as np

    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y_true, dtype=int)
    pred = p.argmax(axis=1) if y.size else y
    per_class, aurocs, undefined = {}, [], []
    for i, name in enumerate(classes):
        pos, hit = y == i, pred == i
        tp, fn = int((pos & hit).sum()), int((pos & ~hit).sum())
        fp, tn = int((~pos & hit).sum()), int((~pos & ~hit).sum())
        auroc = _auroc(pos, p[:, i]) if y.size else None
        if auroc is None:
            undefined.append(name)
        else:
            aurocs.append(auroc)
        per_class[name] = {"n": tp + fn, "sensitivity": _ratio(tp, tp + fn), "specificity": _ratio(tn, tn + fp),
                           "ppv": _ratio(tp, tp + fp), "auroc": auroc}
    return {"per_class": per_class, "macro_auroc": float(np.mean(aurocs)) if aurocs else None,
            "auroc_undefined": undefined, "ece": expected_calibration_error(p, y)}


def binary_metrics(y_true: Sequence[int], probs: Any, classes: Sequence[str], positive: str) -> dict[str, Any]:
    """CLASS-vs-rest of one test split: ``positive``, ``n_positive``, ``n_negative``, ``auroc`` and
    the sensitivity at each of :data:`SPECIFICITIES`."""
    import numpy as np

    p = np.asarray(probs, dtype=np.float64)
    i = list(classes).index(positive)
    pos = np.asarray(y_true, dtype=int) == i
    out: dict[str, Any] = {"positive": positive, "n_positive": int(pos.sum()), "n_negative": int((~pos).sum()),
                           "auroc": _auroc(pos, p[:, i])}
    for s in SPECIFICITIES:
        out[_sens_key(s)] = sensitivity_at_specificity(pos, p[:, i], s)
    return out


def summarize_clinical(per_split: Sequence[Mapping[str, Any]], classes: Sequence[str]) -> dict[str, Any]:
    """Across splits (records' ``test``): mean ± std of every clinical figure, per-split test
    counts per class, and the binary section when present."""
    clinical = [r["clinical"] for r in per_split if r.get("clinical")]
    if not clinical:
        return {}
    out: dict[str, Any] = {
        "per_class": {c: {m: mean_std([s["per_class"][c][m] for s in clinical]) for m in PER_CLASS}
                      for c in classes},
        "test_counts": {c: [s["per_class"][c]["n"] for s in clinical] for c in classes},
        "macro_auroc": mean_std([s["macro_auroc"] for s in clinical]),
        "ece": mean_std([s["ece"] for s in clinical]),
        "auroc_undefined": sorted({c for s in clinical for c in s["auroc_undefined"]}),
    }
    binary = [r["binary"] for r in per_split if r.get("binary")]
    if binary:
        out["binary"] = {"positive": binary[0]["positive"],
                         **{m: mean_std([b[m] for b in binary]) for m in BINARY_METRICS}}
    return out


def _paired(exp: Sequence[Any], base: Sequence[Any]) -> list[float | None]:
    return [None if e is None or b is None else e - b for e, b in zip(exp, base)]


def compare_clinical(experiment: Sequence[Mapping[str, Any]], baseline: Sequence[Mapping[str, Any]],
                     ratio: float, confidence: float) -> dict[str, Any]:
    """Paired ``experiment - baseline`` (same split) of macro AUROC, ECE and the binary metrics,
    each with :func:`.stats.compare`'s interval and verdict (for ECE lower is better)."""
    out: dict[str, Any] = {}
    if not all(r.get("clinical") for r in [*experiment, *baseline]):
        return out
    for metric in CLINICAL_PAIRED:
        diffs = _paired([r["clinical"][metric] for r in experiment], [r["clinical"][metric] for r in baseline])
        out[metric] = {"per_split": diffs, **mean_std(diffs), **compare(diffs, ratio, confidence,
                                                                       lower_is_better=metric == "ece")}
    if all(r.get("binary") for r in [*experiment, *baseline]):
        binary = {}
        for metric in BINARY_METRICS:
            diffs = _paired([r["binary"][metric] for r in experiment], [r["binary"][metric] for r in baseline])
            binary[metric] = {"per_split": diffs, **mean_std(diffs), **compare(diffs, ratio, confidence)}
        out["binary"] = binary
    return out


def attach_clinical(record: dict[str, Any], classes: Sequence[str], positive: str | None) -> dict[str, Any]:
    """``record`` (a training's result) with ``test.clinical`` (and ``test.binary`` for
    ``positive``) computed from its stored test probabilities; the probabilities themselves
    stay in the result cache, not in the report. A record without them is returned as is."""
    probs, labels = record.get("test_probabilities"), record.get("test_labels")
    out = {k: v for k, v in record.items() if k not in ("test_probabilities", "test_labels")}
    if probs is None or labels is None:
        return out
    test = {**out["test"], "clinical": clinical_metrics(labels, probs, classes)}
    if positive is not None:
        test["binary"] = binary_metrics(labels, probs, classes, positive)
    out["test"] = test
    return out

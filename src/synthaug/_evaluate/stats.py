"""Paired statistics of an experiment against the baseline: interval, p-value and verdict.

The per-split differences ``d_j = experiment_j - baseline_j`` come from splits whose training
sets overlap (repeated k-fold, or random splits of one dataset), so they are correlated and
the plain paired t-interval is too narrow. The interval here is the **corrected resampled
t-test** of Nadeau & Bengio (2003), in the repeated k-fold form of Bouckaert & Frank (2004):

    var = (1/n + n_test/n_train) * s^2,   CI = mean ± t_{0.975, n-1} * sqrt(var)

with ``s^2`` the sample variance of the ``n`` differences and ``n_test/n_train`` the ratio of
test to training images of a split. The **Wilcoxon signed-rank** p-value is reported beside
it as a distribution-free second opinion; it ignores the overlap between training sets, so it
is the less conservative of the two. The one-word **verdict** follows the corrected interval:
``better`` when it lies above zero, ``worse`` when below, ``no evidence`` otherwise. With
fewer than :data:`MIN_RUNS` paired runs no interval is given and the verdict is ``too few
runs``: with 2-4 runs the t quantile (12.7 at 2 runs) makes the interval meaningless. An
interval wider than the range a difference of two [0, 1] metrics can take is clipped to
[-1, 1] and marked ``clipped``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

__all__ = ["MIN_RUNS", "TOO_FEW", "VERDICTS", "ENOUGH_RUNS", "corrected_interval", "wilcoxon_p", "verdict",
           "compare", "clip_interval"]

#: Fewer paired runs than this give no interval and the verdict :data:`TOO_FEW`.
MIN_RUNS = 5
TOO_FEW = "too few runs"
VERDICTS = ("better", "worse", "no evidence", TOO_FEW)
#: The options that give enough paired runs (25), as report.md advises.
ENOUGH_RUNS = "--repeats 5 --folds 5"


def _clean(diffs: Sequence[float | None]) -> list[float]:
    return [float(d) for d in diffs if d is not None and not math.isnan(float(d))]


def corrected_interval(
    diffs: Sequence[float | None], test_train_ratio: float, confidence: float = 0.95
) -> tuple[float, float] | None:
    """The Nadeau–Bengio corrected resampled-t interval of the mean difference (None if n < 2)."""
    from scipy import stats

    xs = _clean(diffs)
    n = len(xs)
    if n < 2:
        return None
    mean = sum(xs) / n
    variance = sum((x - mean) ** 2 for x in xs) / (n - 1)
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * math.sqrt((1 / n + test_train_ratio) * variance)
    return mean - half, mean + half


def wilcoxon_p(diffs: Sequence[float | None]) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value of the differences (None if n < 2; 1.0 if all are 0)."""
    from scipy import stats

    xs = _clean(diffs)
    if len(xs) < 2:
        return None
    if not any(xs):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about ties/zeros and switches to the normal approximation
        return float(stats.wilcoxon(xs).pvalue)


def verdict(interval: tuple[float, float] | None) -> str:
    """``better`` / ``worse`` when the interval excludes zero, ``no evidence`` otherwise."""
    if interval is None:
        return "no evidence"
    low, high = interval
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "no evidence"


def clip_interval(interval: tuple[float, float] | None, bounds: tuple[float, float] = (-1.0, 1.0)
                  ) -> tuple[tuple[float, float] | None, bool]:
    """``(interval clipped to bounds, whether it was wider)``."""
    if interval is None:
        return None, False
    low, high = max(interval[0], bounds[0]), min(interval[1], bounds[1])
    return (low, high), (low, high) != tuple(interval)


def compare(diffs: Sequence[float | None], test_train_ratio: float, confidence: float = 0.95, *,
            lower_is_better: bool = False, bounds: tuple[float, float] = (-1.0, 1.0)) -> dict[str, Any]:
    """``{"ci_low", "ci_high", "clipped", "confidence", "method", "wilcoxon_p", "verdict"}`` of
    paired differences: no interval and verdict ``too few runs`` below :data:`MIN_RUNS` runs;
    the interval clipped to ``bounds`` (the range of the difference); ``lower_is_better``
    (e.g. calibration error) turns ``better``/``worse`` around."""
    n = len(_clean(diffs))
    interval, clipped = clip_interval(corrected_interval(diffs, test_train_ratio, confidence), bounds)
    if n < MIN_RUNS:
        interval, clipped = None, False
    said = TOO_FEW if n < MIN_RUNS else verdict(interval)
    if lower_is_better and said in ("better", "worse"):
        said = "worse" if said == "better" else "better"
    return {
        "ci_low": None if interval is None else interval[0],
        "ci_high": None if interval is None else interval[1],
        "clipped": clipped,
        "confidence": confidence,
        "method": "corrected resampled t (Nadeau-Bengio)",
        "test_train_ratio": test_train_ratio,
        "wilcoxon_p": wilcoxon_p(diffs),
        "verdict": said,
    }

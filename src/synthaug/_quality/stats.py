"""Precision, recall, density, coverage; bootstrap intervals; noise floors and ranking checks.

PRDC follows Naeem et al., "Reliable Fidelity and Diversity Metrics for Generative Models"
(ICML 2020). With ``r_k(x)`` the distance from a real image ``x`` to its ``k``-th nearest
*other* real image (and likewise for synthetic images among themselves):

- precision: share of synthetic images inside at least one real ball ``B(x_j, r_k(x_j))``;
- recall: share of real images inside at least one synthetic ball ``B(y_i, r_k(y_i))``;
- density: ``1/(k M) * sum_i sum_j 1[y_i in B(x_j, r_k(x_j))]`` (can exceed 1);
- coverage: share of real images whose own ball holds at least one synthetic image.

Distances are Euclidean and computed in chunks bounded by ``max_memory_mb``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .metrics import DEFAULT_MAX_MEMORY_MB, frechet_distance, kernel_distance

__all__ = ["PRDC_K", "bootstrap_interval", "prdc", "sample_warnings", "cannot_rank"]

#: Nearest neighbours of the PRDC balls (Naeem et al. use 5).
PRDC_K = 5


def _kth_radius(x: Any, k: int) -> Any:
    """Distance from each row of ``x`` to its ``k``-th nearest other row."""
    from sklearn.neighbors import NearestNeighbors

    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    return distances[:, k]


def prdc(real: Any, fake: Any, k: int = PRDC_K, *, max_memory_mb: float = DEFAULT_MAX_MEMORY_MB) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` against ``real`` (NaN when a set has <= k rows)."""
    import numpy as np
    from sklearn.metrics import pairwise_distances_chunked

    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    nan = {"precision": math.nan, "recall": math.nan, "density": math.nan, "coverage": math.nan}
    if len(real) <= k or len(fake) <= k:
        return nan
    r_real, r_fake = _kth_radius(real, k), _kth_radius(fake, k)
    inside_real = np.zeros(len(fake), dtype=np.int64)  # real balls holding each fake row
    recalled = np.zeros(len(real), dtype=bool)
    covered = np.zeros(len(real), dtype=bool)
    start = 0
    for block in pairwise_distances_chunked(real, fake, working_memory=max_memory_mb):  # (rows of real, M)
        stop = start + len(block)
        in_ball = block <= r_real[start:stop, None]
        inside_real += in_ball.sum(0)
        covered[start:stop] = in_ball.any(1)
        recalled[start:stop] = (block <= r_fake[None, :]).any(1)
        start = stop
    return {
        "precision": float((inside_real > 0).mean()),
        "recall": float(recalled.mean()),
        "density": float(inside_real.sum() / (k * len(fake))),
        "coverage": float(covered.mean()),
    }


def bootstrap_interval(statistic: Callable[[Any, Any], float], x: Any, y: Any, *, n: int = 50, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(x, y)``, resampling both sets with replacement.

    Reproducible: the same ``seed`` gives the same interval. ``(nan, nan)`` with ``n < 2``.
    """
    import numpy as np

    if n < 2 or len(x) < 2 or len(y) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        value = statistic(x[rng.integers(0, len(x), len(x))], y[rng.integers(0, len(y), len(y))])
        if math.isfinite(value):
            values.append(value)
    if len(values) < 2:
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def fd_interval(x: Any, y: Any, *, n: int, seed: int) -> tuple[float, float]:
    return bootstrap_interval(frechet_distance, x, y, n=n, seed=seed)


def kid_interval(x: Any, y: Any, *, n: int, seed: int) -> tuple[float, float]:
    return bootstrap_interval(lambda a, b: kernel_distance(a, b, seed=seed)[0], x, y, n=n, seed=seed)


def sample_warnings(n_real: int, n_synthetic: int, dims: int, k: int = PRDC_K) -> list[str]:
    """Plain sentences for every statistic whose sample is too small for it to be read."""
    n = min(n_real, n_synthetic)
    out = []
    if n < dims:
        out.append(f"FD: n={n} < d={dims} features, the covariances are singular and FD is dominated by "
                   "small-sample bias")
    if n < 10:
        out.append(f"KID: n={n} < 10, the estimate is too noisy to read")
    if n <= 2 * k:
        out.append(f"PRDC: n={n} <= {2 * k} (k={k}), the nearest-neighbour balls are too coarse")
    return out


#: (figure, value key, real–real floor key, direction): lower is better for distances, higher for PRDC.
RANKED = (
    ("FD", "fd_half_synthetic", "fd_real_halves", "lower"),
    ("KID", "kid_half_synthetic", "kid_real_halves", "lower"),
    ("precision", "precision_half_synthetic", "precision_real_halves", "higher"),
    ("recall", "recall_half_synthetic", "recall_real_halves", "higher"),
    ("density", "density_half_synthetic", "density_real_halves", "higher"),
    ("coverage", "coverage_half_synthetic", "coverage_real_halves", "higher"),
)


def cannot_rank(entry: dict[str, Any]) -> list[str]:
    """Figures whose real–synthetic value is no worse than the real–real split-half floor.

    Such a figure cannot tell this generator from a perfect one (or from another generator)
    at this sample size: it cannot rank.
    """
    out = []
    for figure, key, floor_key, direction in RANKED:
        value, floor = entry.get(key), entry.get(floor_key)
        if value is None or floor is None:
            continue
        if (direction == "lower" and floor >= value) or (direction == "higher" and floor <= value):
            out.append(figure)
    return out

"""Numbers of the quality report, in numpy only: FD, KID, diversity, near-copies, outliers.

All functions take feature rows (``(n, d)`` float arrays) or copy descriptors from
:mod:`synthaug._features` and return plain floats or arrays.
"""

from __future__ import annotations

from typing import Any

from .._features import COPY_MARGIN, COPY_SIDE

__all__ = [
    "DEFAULT_MAX_MEMORY_MB",
    "Standardizer",
    "chunk_rows",
    "frechet_distance",
    "kernel_distance",
    "knn_distances",
    "mean_pairwise_distance",
    "nearest_copies",
]


#: Default bound (MiB) of the working arrays of the pairwise searches (near-copies, k-NN).
DEFAULT_MAX_MEMORY_MB = 512


def chunk_rows(n_columns: int, bytes_per_cell: int, max_memory_mb: float = DEFAULT_MAX_MEMORY_MB) -> int:
    """Query rows per chunk so that ``rows x n_columns x bytes_per_cell`` stays within the budget (at least 1)."""
    budget = max_memory_mb * 2**20
    return max(1, int(budget // max(1, n_columns * bytes_per_cell)))


class Standardizer:
    """Z-scores features with the mean and spread of a reference set (the real images).

    Constant columns keep a unit scale, so they contribute nothing instead of dividing by 0.
    """

    def __init__(self, reference: Any) -> None:
        import numpy as np

        reference = np.asarray(reference, dtype=np.float64)
        self.mean = reference.mean(0)
        std = reference.std(0)
        self.std = np.where(std > 1e-12, std, 1.0)

    def __call__(self, rows: Any) -> Any:
        import numpy as np

        return (np.asarray(rows, dtype=np.float64) - self.mean) / self.std


def _sqrtm_trace(a: Any, b: Any) -> float:
    """``trace(sqrtm(a @ b))`` for symmetric positive semi-definite ``a`` and ``b``."""
    import numpy as np

    values, vectors = np.linalg.eigh(a)
    root_a = (vectors * np.sqrt(values.clip(min=0))) @ vectors.T
    inner = root_a @ b @ root_a
    return float(np.sqrt(np.linalg.eigvalsh((inner + inner.T) / 2).clip(min=0)).sum())


def frechet_distance(x: Any, y: Any) -> float:
    """Fréchet distance between Gaussians fitted to feature rows ``x`` and ``y`` (the FID formula).

    ``|mu_x - mu_y|^2 + tr(C_x) + tr(C_y) - 2 tr(sqrt(C_x C_y))``. Biased upwards for small
    sets: compare values computed with similar set sizes.
    """
    import numpy as np

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2 or len(y) < 2:
        return float("nan")
    cx, cy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    cx, cy = np.atleast_2d(cx), np.atleast_2d(cy)
    diff = x.mean(0) - y.mean(0)
    value = float(diff @ diff + np.trace(cx) + np.trace(cy) - 2 * _sqrtm_trace(cx, cy))
    return max(value, 0.0)


def _mmd2_unbiased(x: Any, y: Any) -> float:
    import numpy as np

    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def kernel_distance(x: Any, y: Any, *, subset_size: int = 1000, subsets: int = 50, seed: int = 0) -> tuple[float, float]:
    """Kernel distance (KID formula): unbiased MMD² with the cubic polynomial kernel; (mean, std).

    Sets up to ``subset_size`` are compared whole (std 0); larger ones by ``subsets`` random
    subsets of that size. Unbiased: about 0 for two samples of one distribution, can be < 0.
    """
    import numpy as np

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2 or len(y) < 2:
        return float("nan"), float("nan")
    if len(x) <= subset_size and len(y) <= subset_size:
        return _mmd2_unbiased(x, y), 0.0
    rng = np.random.default_rng(seed)
    size = min(subset_size, len(x), len(y))
    values = [
        _mmd2_unbiased(x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)])
        for _ in range(subsets)
    ]
    return float(np.mean(values)), float(np.std(values))


def _pairwise(x: Any, y: Any) -> Any:
    import numpy as np

    sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T
    return np.sqrt(sq.clip(min=0))


def mean_pairwise_distance(x: Any, *, max_rows: int = 500, seed: int = 0) -> float:
    """Mean Euclidean distance between distinct rows of ``x`` (a seeded sample of ``max_rows``)."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2:
        return float("nan")
    if len(x) > max_rows:
        x = x[np.random.default_rng(seed).choice(len(x), max_rows, replace=False)]
    d = _pairwise(x, x)
    n = len(x)
    return float(d.sum() / (n * (n - 1)))


def knn_distances(query: Any, reference: Any, k: int = 3, *, exclude_self: bool = False,
                  max_memory_mb: float = DEFAULT_MAX_MEMORY_MB) -> Any:
    """Mean distance of each query row to its ``k`` nearest reference rows.

    With ``exclude_self`` (query is reference) each row's zero distance to itself is skipped.
    Queries are processed in chunks whose distance arrays stay within ``max_memory_mb``.
    """
    import numpy as np

    query, reference = np.asarray(query, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    k = max(1, min(k, reference.shape[0] - (1 if exclude_self else 0)))
    out = np.empty(len(query))
    step = chunk_rows(len(reference), 32, max_memory_mb)  # distances + temporaries, float64
    for start in range(0, len(query), step):
        d = _pairwise(query[start : start + step], reference)
        if exclude_self:
            rows = np.arange(len(d))
            d[rows, start + rows] = np.inf
        out[start : start + step] = np.partition(d, k - 1, axis=1)[:, :k].mean(1)
    return out


def _windows(descriptors: Any, dy: int, dx: int) -> Any:
    """The ``COPY_SIDE`` windows at offset (dy, dx), each normalised to zero mean, unit norm."""
    import numpy as np

    w = descriptors[:, dy : dy + COPY_SIDE, dx : dx + COPY_SIDE].reshape(len(descriptors), -1)
    w = w - w.mean(1, keepdims=True)
    norm = np.linalg.norm(w, axis=1, keepdims=True)
    return w / np.where(norm > 1e-8, norm, 1.0)


def best_over_shifts(query: Any, reference_windows: Any) -> Any:
    """``(len(query), n_ref)`` best correlation over the shifts of each query descriptor.

    ``reference_windows`` is ``_windows(reference, COPY_MARGIN, COPY_MARGIN).T``. A running
    maximum keeps memory at one ``(len(query), n_ref)`` array.
    """
    import numpy as np

    best = None
    for dy in range(2 * COPY_MARGIN + 1):
        for dx in range(2 * COPY_MARGIN + 1):
            sims = _windows(query, dy, dx) @ reference_windows
            best = sims if best is None else np.maximum(best, sims, out=best)
    return best


def nearest_copies(query: Any, reference: Any, *, max_memory_mb: float = DEFAULT_MAX_MEMORY_MB) -> tuple[Any, Any]:
    """For each query descriptor: index of the most similar reference descriptor, and similarity.

    Similarity is the normalised cross-correlation of the centre window of the reference with
    the query window shifted by up to ``COPY_MARGIN`` pixels each way (the best shift counts):
    1 for identical images, ~0 for unrelated ones; small crops, shifts and colour jitter keep
    it high, a flip or rotation does not. Queries go in chunks whose similarity arrays stay
    within ``max_memory_mb`` (the reference windows, 4 KiB per image, come on top).
    """
    import numpy as np

    query = np.asarray(query, dtype=np.float32)
    reference = np.asarray(reference, dtype=np.float32)
    if len(query) == 0 or len(reference) == 0:
        return np.zeros(len(query), dtype=int), np.full(len(query), np.nan)
    ref = _windows(reference, COPY_MARGIN, COPY_MARGIN).T.copy()
    chunk = chunk_rows(len(reference), 12, max_memory_mb)  # running best + one shift's sims + argmax, float32
    best_sim = np.full(len(query), -np.inf, dtype=np.float32)
    best_idx = np.zeros(len(query), dtype=int)
    for start in range(0, len(query), chunk):
        part = query[start : start + chunk]
        sims = best_over_shifts(part, ref)
        best_idx[start : start + chunk] = sims.argmax(1)
        best_sim[start : start + chunk] = sims.max(1)
    return best_idx, best_sim.astype(np.float64)

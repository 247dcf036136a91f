"""The distribution figures of one real/synthetic pair of feature sets (a class, or overall).

Each figure comes with its noise floor, computed the same way between two random halves of
the real set: FD, KID and PRDC between half the real images and as many synthetic images
(``*_half_synthetic``) beside the same figure between the two real halves (``*_real_halves``,
what a perfect generator would score at that size). FD and KID also get a seeded bootstrap
interval (``fd_interval``, ``kid_interval``), ``warnings`` names every statistic whose sample is
too small, and ``cannot_rank`` every figure whose real–synthetic value is no worse than its
real–real floor.
"""

from __future__ import annotations

import math
from typing import Any

from .metrics import DEFAULT_MAX_MEMORY_MB, frechet_distance, kernel_distance, mean_pairwise_distance
from .results import json_number as _num
from .stats import PRDC_K, cannot_rank, fd_interval, kid_interval, prdc, sample_warnings

__all__ = ["DEFAULT_BOOTSTRAP", "distribution"]

#: Bootstrap resamples of the FD and KID intervals (0 disables them).
DEFAULT_BOOTSTRAP = 50
_PRDC = ("precision", "recall", "density", "coverage")


def _interval(pair: tuple[float, float], digits: int) -> list[float | None] | None:
    return None if not all(math.isfinite(v) for v in pair) else [_num(pair[0], digits), _num(pair[1], digits)]


def _halves(real: Any, synth: Any, seed: int, max_memory_mb: float) -> dict[str, Any]:
    """FD, KID and PRDC at half the real size: real half vs synthetic, real half vs real half."""
    import numpy as np

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(real))
    half = len(real) // 2
    out: dict[str, Any] = {}
    if half < 2 or len(synth) < half:  # same set sizes on both sides: the small-sample biases cancel
        return out
    a, b = real[order[:half]], real[order[half : 2 * half]]
    s = synth[rng.choice(len(synth), half, replace=False)]
    out["fd_half_synthetic"], out["fd_real_halves"] = _num(frechet_distance(a, s), 3), _num(frechet_distance(a, b), 3)
    out["kid_half_synthetic"] = _num(kernel_distance(a, s, seed=seed)[0], 5)
    out["kid_real_halves"] = _num(kernel_distance(a, b, seed=seed)[0], 5)
    vs_synth, vs_real = prdc(a, s, max_memory_mb=max_memory_mb), prdc(a, b, max_memory_mb=max_memory_mb)
    for name in _PRDC:
        out[f"{name}_half_synthetic"], out[f"{name}_real_halves"] = _num(vs_synth[name], 3), _num(vs_real[name], 3)
    return out


def distribution(real: Any, synth: Any, seed: int, *, bootstrap: int = DEFAULT_BOOTSTRAP,
                 max_memory_mb: float = DEFAULT_MAX_MEMORY_MB) -> dict[str, Any]:
    """FD, KID, PRDC, diversity, their floors, intervals, warnings and ranking of one pair of sets."""
    kid, kid_std = kernel_distance(real, synth, seed=seed)
    div_real = mean_pairwise_distance(real, seed=seed)
    div_synth = mean_pairwise_distance(synth, seed=seed)
    scores = prdc(real, synth, max_memory_mb=max_memory_mb)
    entry: dict[str, Any] = {
        "fd": _num(frechet_distance(real, synth), 3),
        "fd_interval": _interval(fd_interval(real, synth, n=bootstrap, seed=seed), 3),
        "fd_half_synthetic": None,
        "fd_real_halves": None,
        "kid": _num(kid, 5),
        "kid_std": _num(kid_std, 5),
        "kid_interval": _interval(kid_interval(real, synth, n=bootstrap, seed=seed), 5),
        **{name: _num(scores[name], 3) for name in _PRDC},
        "prdc_k": PRDC_K,
        "diversity_synthetic": _num(div_synth, 3),
        "diversity_real": _num(div_real, 3),
        "diversity_ratio": _num(div_synth / div_real if div_real and math.isfinite(div_real) else float("nan"), 3),
        "feature_dims": int(real.shape[1]),
    }
    entry.update(_halves(real, synth, seed, max_memory_mb))
    entry["warnings"] = sample_warnings(len(real), len(synth), int(real.shape[1]))
    entry["cannot_rank"] = cannot_rank(entry)
    return entry

"""The distribution statistics of the quality report against references on fixed arrays."""

from __future__ import annotations

import numpy as np
import pytest


def _fd_reference(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.linalg import sqrtm

    cx, cy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = sqrtm(cx @ cy).real
    diff = x.mean(0) - y.mean(0)
    return float(diff @ diff + np.trace(cx) + np.trace(cy) - 2 * np.trace(root))


def test_frechet_distance_matches_scipy_sqrtm() -> None:
    from synthaug._quality.metrics import frechet_distance

    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 5))
    y = rng.normal(loc=0.4, scale=1.5, size=(80, 5)) @ rng.normal(size=(5, 5))
    assert frechet_distance(x, y) == pytest.approx(_fd_reference(x, y), rel=1e-6)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def test_prdc_matches_a_hand_computed_case() -> None:
    """1-d, k=1. Real 0,1,2,3,6 (radii 1,1,1,1,3); synthetic 0.5,0.7,10,10.3 (radii .2,.2,.3,.3).

    precision: 0.5 and 0.7 lie in real balls, 10 and 10.3 do not -> 2/4. density: 0.5 and 0.7
    each lie in the balls of 0 and 1 -> 4 / (1 * 4) = 1. recall: no real point lies in a
    synthetic ball -> 0. coverage: the balls of 0 and 1 hold a synthetic point, those of 2, 3
    and 6 do not -> 2/5.
    """
    from synthaug._quality.stats import prdc

    real = np.array([[0.0], [1.0], [2.0], [3.0], [6.0]])
    fake = np.array([[0.5], [0.7], [10.0], [10.3]])
    assert prdc(real, fake, k=1) == pytest.approx({"precision": 0.5, "recall": 0.0, "density": 1.0, "coverage": 0.4})
    tiny = prdc(real[:1], fake, k=1)
    assert all(np.isnan(v) for v in tiny.values())


def test_prdc_is_chunk_size_independent_and_high_for_one_distribution() -> None:
    from synthaug._quality.stats import prdc

    rng = np.random.default_rng(0)
    real, same, far = rng.normal(size=(300, 4)), rng.normal(size=(300, 4)), rng.normal(loc=5, size=(300, 4))
    whole = prdc(real, same)
    assert prdc(real, same, max_memory_mb=0.01) == whole  # tiny chunks, same answer
    assert whole["precision"] > 0.8 and whole["coverage"] > 0.8
    apart = prdc(real, far)
    assert apart["precision"] < 0.05 and apart["coverage"] < 0.05


def test_bootstrap_interval_is_reproducible_and_brackets_the_value() -> None:
    from synthaug._quality.metrics import frechet_distance
    from synthaug._quality.stats import bootstrap_interval

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(100, 3)), rng.normal(loc=1.0, size=(100, 3))
    first = bootstrap_interval(frechet_distance, x, y, n=40, seed=7)
    assert first == bootstrap_interval(frechet_distance, x, y, n=40, seed=7)
    assert first != bootstrap_interval(frechet_distance, x, y, n=40, seed=8)
    assert first[0] < frechet_distance(x, y) < first[1]
    assert all(np.isnan(bootstrap_interval(frechet_distance, x, y, n=1)))


def test_distribution_floors_warnings_and_ranking() -> None:
    from synthaug._quality.distribution import distribution

    rng = np.random.default_rng(2)
    real = rng.normal(size=(40, 6))
    far = distribution(real, rng.normal(loc=2.0, size=(40, 6)), seed=0, bootstrap=20)
    assert far["fd_half_synthetic"] > far["fd_real_halves"] and far["cannot_rank"] == []
    assert far["fd_interval"][0] <= far["fd"] <= far["fd_interval"][1] and far["warnings"] == []
    same = distribution(real, rng.normal(size=(40, 6)), seed=0, bootstrap=0)
    assert same["fd_interval"] is None and same["cannot_rank"]  # one distribution: something cannot rank
    wide = rng.normal(size=(16, 12))
    small = distribution(wide[:8], wide[8:], seed=0, bootstrap=0)
    text = " ".join(small["warnings"])
    assert "FD: n=8 < d=12" in text and "KID: n=8 < 10" in text and "PRDC" in text

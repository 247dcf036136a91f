"""The quality report's pairwise searches run in memory-bounded chunks with the same results."""

from __future__ import annotations

import numpy as np
import pytest

from synthaug._errors import InvalidParameterError
from synthaug._quality.metrics import chunk_rows, knn_distances, nearest_copies


def test_chunk_rows_respects_the_budget() -> None:
    assert chunk_rows(10_000, 12, 1) == int(2**20 // 120_000)
    assert chunk_rows(10**9, 8, 1) == 1  # never zero rows


def test_chunked_searches_equal_the_whole_matrix() -> None:
    rng = np.random.default_rng(0)
    query, reference = rng.normal(size=(300, 6)), rng.normal(size=(200, 6))
    whole = np.sort(np.sqrt(((query[:, None] - reference[None]) ** 2).sum(-1)), axis=1)[:, :3].mean(1)
    tiny = knn_distances(query, reference, 3, max_memory_mb=0.01)  # 0.01 MiB: 1 query row per chunk
    assert np.allclose(tiny, whole) and np.allclose(knn_distances(query, reference, 3), whole)
    self_whole = np.sort(np.sqrt(((reference[:, None] - reference[None]) ** 2).sum(-1)), axis=1)[:, 1:4].mean(1)
    assert np.allclose(knn_distances(reference, reference, 3, exclude_self=True, max_memory_mb=0.01), self_whole)

    desc_q = rng.normal(size=(70, 36, 36)).astype(np.float32)
    desc_r = np.concatenate([desc_q[:20] + 0.01, rng.normal(size=(50, 36, 36)).astype(np.float32)])
    idx_small, sim_small = nearest_copies(desc_q, desc_r, max_memory_mb=0.001)
    idx_big, sim_big = nearest_copies(desc_q, desc_r)
    assert (idx_small == idx_big).all() and np.allclose(sim_small, sim_big)
    assert (idx_big[:20] == np.arange(20)).all() and (sim_big[:20] > 0.99).all()


def test_quality_report_refuses_a_tiny_memory_budget(tmp_path) -> None:
    from synthaug._quality import quality_report

    with pytest.raises(InvalidParameterError, match="max_memory"):
        quality_report(tmp_path, tmp_path, max_memory=1)


def test_parallel_scan_equals_the_serial_scan(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import synthaug._quality.scan as scan
    from synthaug._progress import NULL_PROGRESS
    from synthaug.testing import make_image_folder

    root = make_image_folder(tmp_path / "d", {"a": 20, "b": 12}, size=24)
    paths = sorted(root.rglob("*.png"))
    (root / "a" / "bad.png").write_bytes(b"")
    paths.insert(5, root / "a" / "bad.png")
    monkeypatch.setattr(scan, "SCAN_CHUNK", 8)
    monkeypatch.setattr(scan, "PARALLEL_MIN", 8)
    serial = scan._scan(paths, True, NULL_PROGRESS, "x", 1)
    parallel = scan._scan(paths, True, NULL_PROGRESS, "x", 2)
    assert serial[0] == parallel[0] and not serial[0][5].readable
    assert np.array_equal(serial[1], parallel[1]) and serial[1].shape[0] == len(paths)
    assert all((a is None and b is None) or np.array_equal(a, b) for a, b in zip(serial[2], parallel[2]))

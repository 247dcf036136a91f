"""Shared helpers of the adapter benchmarks: the image folder and a best-of timer."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIN_LESIONS = Path(os.environ.get("SYNTHAUG_SKIN_LESIONS", REPO.parent / "shared" / "data" / "skin-lesions"))


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, default=None,
                        help="class folder to read (default: ../shared/data/skin-lesions, else 400 generated JPEGs)")
    parser.add_argument("--size", type=int, default=64, help="square output size in pixels (default 64)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds of each loader, interleaved; best kept")
    parser.add_argument("--num-workers", type=int, default=0,
                        help="DataLoader worker processes of the torch loaders (the plain loop has none)")
    return parser.parse_args()


def image_folder(data: Path | None) -> Path:
    """The folder to benchmark on: ``data``, the skin-lesion set, or generated 256x192 JPEGs."""
    if data is not None:
        return data
    if SKIN_LESIONS.is_dir():
        return SKIN_LESIONS
    import numpy as np
    from PIL import Image

    root = Path(tempfile.mkdtemp(prefix="synthaug-bench-"))
    rng = np.random.default_rng(0)
    for k in range(4):
        (root / f"class{k}").mkdir()
        for i in range(100):
            pixels = rng.integers(0, 255, (192, 256, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"class{k}" / f"{i:03d}.jpg", quality=90)
    return root


def best_rate(loaders: dict[str, Callable[[], int]], rounds: int) -> dict[str, float]:
    """Images per second of each loader (best of ``rounds``, loaders interleaved per round)."""
    best = {name: 0.0 for name in loaders}
    for _ in range(rounds):
        for name, run in loaders.items():
            start = time.perf_counter()
            n = run()
            best[name] = max(best[name], n / (time.perf_counter() - start))
    return best

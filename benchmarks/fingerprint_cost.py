"""In-process cost of the training-set fingerprint (:mod:`synthaug._fingerprint`) on the
``benchmarks/scale.py`` datasets: one call with an empty hash cache, one with the cache the
first saved (a no-op rerun). Make the datasets first (``benchmarks/scale.py --images N``).

Run: ``nice python benchmarks/fingerprint_cost.py --images 1000,10000``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache" / "scale"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="1000,10000", help="comma-separated dataset sizes (made by scale.py)")
    args = parser.parse_args()
    os.environ["SYNTHAUG_CACHE_DIR"] = tempfile.mkdtemp(prefix="synthaug-fingerprint-")
    from synthaug._fingerprint import HashCache, files_fingerprint

    for n in (int(x) for x in args.images.split(",") if x):
        root = CACHE / f"data-{n}"
        paths = sorted(root.rglob("*.jpg"))
        size = sum(p.stat().st_size for p in paths)
        start = time.perf_counter()
        cold = HashCache(root)
        files_fingerprint(paths, root, cold)
        cold.save()
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        warm = HashCache(root)
        files_fingerprint(paths, root, warm)
        warm_s = time.perf_counter() - start
        print(f"{n} images ({size / 1e6:.1f} MB): cold {cold_s:.3f} s, warm {warm_s:.3f} s "
              f"({warm_s / max(n, 1) * 1e6:.0f} us per image; hashed on the warm call: {warm.hashed})")


if __name__ == "__main__":
    main()

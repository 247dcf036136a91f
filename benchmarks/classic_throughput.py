"""Images per second of the ``classic`` generator balancing the skin-lesion set, and startup costs.

Prints, measured in this one run:

- ``import synthaug`` time (target < 150 ms) and ``synthaug --help`` time (target < 0.5 s),
  each the best of 5 fresh processes;
- classic-generator throughput: images/s writing the full plan (PNG + manifest + fsync),
  and the ratio against a bare loop that applies the same transforms and saves PNGs without
  the store (the store's overhead; 1.0 means free).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/classic_throughput.py [DATA]``
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "skin-lesions"


def best_of(cmd: list[str], n: int = 5) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DATA
    if not data.is_dir():
        sys.exit(f"data folder {data} not found; pass one as the first argument")
    python = sys.executable
    bare = best_of([python, "-c", "pass"])
    imp = best_of([python, "-c", "import synthaug"])
    helptime = best_of([python, "-m", "synthaug", "--help"])
    print(f"python startup            {bare * 1000:7.1f} ms")
    print(f"import synthaug           {(imp - bare) * 1000:7.1f} ms (target < 150 ms, startup excluded)")
    print(f"synthaug --help           {helptime * 1000:7.1f} ms (target < 500 ms, whole process)")

    import io

    import synthaug
    from synthaug._default_plugins.classic import ClassicGenerator

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = synthaug.upsample(data, Path(tmp) / "out", generator="classic")
        elapsed = time.perf_counter() - start
        n = len(result.synthetic)
        print(f"classic balance           {n} images in {elapsed:.1f} s = {n / elapsed:.1f} images/s (whole run)")

        gen = ClassicGenerator()
        by_class = synthaug.Dataset.from_folder(data).paths_by_class()
        label = min(by_class, key=lambda k: len(by_class[k]))
        concept = synthaug.Concept(label, label, tuple(by_class[label]))
        seeds = list(range(300))
        start = time.perf_counter()
        for item in gen.generate(concept, seeds):
            item.image.save(io.BytesIO(), format="PNG", compress_level=1)
        bare_rate = len(seeds) / (time.perf_counter() - start)
        print(f"bare transform+encode     {bare_rate:.1f} images/s")
        print(f"ratio whole run / bare    {n / elapsed / bare_rate:.2f} (store, manifest, fsync, dataset scan)")


if __name__ == "__main__":
    main()

"""Speed-up of ``--workers`` for the ``classic`` generator: 2 worker processes against 1.

Balances one generated image folder twice in this process, once with ``workers=1`` and
once with ``workers=2`` (whole runs: dataset read, generation, PNG encoding, store,
manifest, fsync), checks that both outputs are byte-identical, and prints the ratio
(target >= 1.7 on a 2-core machine with both cores free).

Run: ``nice python benchmarks/generation_workers.py [--images 600] [--size 128]``
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path


def digest(out: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(out.rglob("*.png")):
        h.update(str(p.relative_to(out)).encode() + p.read_bytes())
    return h.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600, help="synthetic images to generate per run")
    parser.add_argument("--size", type=int, default=128, help="side of the source images in pixels")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from synthaug import SyntheticAugmenter
    from synthaug.testing import make_image_folder

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = make_image_folder(root / "data", {"major": args.images + 20, "minor": 20}, size=args.size)
        times = {}
        for workers in (1, args.workers):
            out = root / f"out-{workers}"
            start = time.perf_counter()
            SyntheticAugmenter("classic", out_dir=out, workers=workers).fit_resample(data)
            times[workers] = time.perf_counter() - start
            print(f"workers={workers}: {args.images} images in {times[workers]:.2f} s "
                  f"= {args.images / times[workers]:.1f} images/s")
        same = digest(root / "out-1") == digest(root / f"out-{args.workers}")
        print(f"outputs byte-identical: {same}")
        print(f"speed-up workers={args.workers} / workers=1: {times[1] / times[args.workers]:.2f} (target >= 1.7)")


if __name__ == "__main__":
    main()

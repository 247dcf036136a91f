"""Upsample the rare skin-lesion classes with the classic generator, then inspect the result.

Usage: python examples/upsample_skin_lesions.py [DATA] [OUT]
(DATA defaults to ../shared/data/skin-lesions, OUT to ./synthetic-skin-lesions)
"""

from __future__ import annotations

import sys
from pathlib import Path

import synthaug


def main() -> int:
    here = Path(__file__).resolve().parents[1]
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else here.parent / "shared" / "data" / "skin-lesions"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("synthetic-skin-lesions")
    if not data.is_dir():
        print(f"no data at {data}: pass a class-folder dataset as the first argument", file=sys.stderr)
        return 2

    augmenter = synthaug.SyntheticAugmenter(
        generator="classic",
        policy=synthaug.MinorityUpsampling("minority"),  # only the rarest class(es)
        out_dir=out,
        random_state=0,
    )
    plan = augmenter.plan(data)
    for name, c in plan.classes.items():
        print(f"{name:28s} real {c.real:4d}  +synthetic {c.synthetic:4d}  = {c.final:4d}")

    result = augmenter.fit_resample(data)  # rerun to resume; nothing new when complete
    print(result)
    first = result.synthetic[0]
    print("example record:", first.path, {k: first.provenance[k] for k in ("class", "seed", "generator")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

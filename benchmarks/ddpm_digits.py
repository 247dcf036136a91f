"""Benchmark: should ``make demo`` use ``ddpm`` instead of ``classic``? (the demo's digits data)

The demo balances an imbalanced copy of scikit-learn's digits (0-6 complete, 36 sevens, 18
eights, 9 nines; 32x32 PNGs, see :mod:`synthaug._demo`). This runs the evaluation harness
over 3 random splits on exactly that folder, twice with the same splits and classifier:

1. generator ``classic`` with the demo's digit-safe options (no flips, small rotations):
   experiments baseline, oversample, upsample;
2. generator ``ddpm`` (no flips) trained on each split's training images for ``--budget-s``
   seconds of CPU time: experiments baseline, upsample.

Usage (from the repository root; ~30 min on 2 shared CPU cores)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ddpm_digits.py --budget-s 240 [--classifier small-cnn]

(a second run with another classifier reuses the generated images and the fitted models).

Results go to ``benchmarks/results/ddpm-digits/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "ddpm-digits"

#: ddpm for 32 px digits: no flips (a mirrored 7 is not a 7).
DIGITS_DDPM_OPTIONS = {
    "resolution": 32, "width": 16, "channel_multipliers": (1, 2, 2), "attention": True,
    "train_batch_size": 16, "learning_rate": 1e-3, "lr_warmup_steps": 50, "hflip": False, "vflip": False,
    "max_train_steps": 100_000, "checkpoint_every": 100, "sampler": "dpm-solver", "num_inference_steps": 8,
    "guidance_scale": 2.0, "generation_batch_size": 32,
}


def _row(label: str, test: dict) -> str:
    def pm(key: str) -> str:
        stat = test.get(key) or {}
        mean, std = stat.get("mean"), stat.get("std")
        return "n/a" if mean is None else f"{100 * mean:.1f} ± {100 * (std or 0):.1f}"

    rare = test.get("per_class_recall", {})
    recalls = " / ".join(pm_recall(rare.get(c)) for c in ("7", "8", "9"))
    return f"| {label} | {pm('balanced_accuracy')} | {pm('accuracy')} | {recalls} |"


def pm_recall(stat: dict | None) -> str:
    if not stat or stat.get("mean") is None:
        return "n/a"
    return f"{100 * stat['mean']:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget-s", type=float, default=240.0, help="ddpm training seconds per split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classifier-steps", type=int, default=None, help="classifier steps (quick runs only)")
    parser.add_argument("--classifier", choices=("mobilenet", "small-cnn"), default="mobilenet",
                        help="the harness classifier (synthaug._evaluate.TrainConfig.model)")
    parser.add_argument("--epochs", type=float, default=10.0, help="classifier epochs of the baseline")
    args = parser.parse_args()

    from synthaug._demo import DEMO_OPTIONS, make_digits_folder
    from synthaug._evaluate import TrainConfig, run_evaluation

    data = make_digits_folder(RESULTS / "digits")
    config = TrainConfig(model=args.classifier, image_size=32, threads=1, steps=args.classifier_steps,
                         epochs=args.epochs)
    started = time.perf_counter()
    classic = run_evaluation(data, RESULTS / "classic", experiments=("baseline", "oversample", "upsample"),
                             generator="classic", generator_options=DEMO_OPTIONS, splits=3, train=config,
                             seed=args.seed, plots=False, command=" ".join(sys.argv))
    classic_s = time.perf_counter() - started
    ddpm = run_evaluation(data, RESULTS / "ddpm", experiments=("baseline", "upsample"), generator="ddpm",
                          generator_options={**DIGITS_DDPM_OPTIONS, "time_budget_s": args.budget_s, "seed": args.seed},
                          splits=3, train=config, seed=args.seed, plots=False, command=" ".join(sys.argv))
    ddpm_s = time.perf_counter() - started - classic_s
    lines = [
        f"Demo digits (32 px), classifier {args.classifier} ({args.epochs:g} baseline epochs, from scratch), test set, "
        "mean ± std over 3 random splits; recall of the rare digits 7 / 8 / 9 in %",
        "",
        "| experiment | balanced accuracy | accuracy | recall 7 / 8 / 9 |",
        "| --- | ---: | ---: | ---: |",
        _row("baseline (run 1)", classic["experiments"]["baseline"]["test"]),
        _row("oversample", classic["experiments"]["oversample"]["test"]),
        _row("classic-upsample (demo options)", classic["experiments"]["upsample"]["test"]),
        _row("baseline (run 2, same splits)", ddpm["experiments"]["baseline"]["test"]),
        _row("ddpm-upsample", ddpm["experiments"]["upsample"]["test"]),
    ]
    table = "\n".join(lines)
    (RESULTS / f"digits-{args.classifier}.json").write_text(json.dumps({
        "table": table, "classic_seconds": round(classic_s), "ddpm_seconds": round(ddpm_s),
        "ddpm_options": DIGITS_DDPM_OPTIONS, "budget_s": args.budget_s,
        "classic": {k: v["test"] for k, v in classic["experiments"].items()},
        "ddpm": {k: v["test"] for k, v in ddpm["experiments"].items()},
    }, indent=1, default=str))
    print(f"\n{table}\n\n(classic run {classic_s:.0f} s, ddpm run {ddpm_s:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

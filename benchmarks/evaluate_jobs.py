"""Wall-clock ratio of ``synthaug evaluate --jobs 2`` against ``--jobs 1`` (target >= 1.6 on 2 cores).

Runs the same small evaluation twice in this process, first with ``jobs=1`` (trainings one
after another in this process) then with ``jobs=2`` (two spawned worker processes), both with
one CPU thread per training (``--threads 1``, which also makes the results identical; the
script checks that they are). Worker start-up (importing torch in each) is part of the
``jobs=2`` time. Prints both wall times and the ratio.

The data are generated class-pattern images (``synthaug.testing.make_image_folder``), so
the run needs no dataset: 3 classes, 2 random splits x (baseline, oversample, class-weights)
= 6 trainings of small-cnn at 32 px.

Run: ``OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/evaluate_jobs.py [STEPS]`` (default 150 steps)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path


def _numbers(report: dict) -> dict:
    return {name: [{k: v for k, v in r.items() if k != "seconds"} for r in e["per_split"]]
            for name, e in report["experiments"].items()}


def main() -> None:
    from synthaug._evaluate import EvaluationConfig, TrainConfig, run_evaluation
    from synthaug.testing import make_image_folder

    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 150
    with tempfile.TemporaryDirectory() as tmp:
        data = make_image_folder(Path(tmp) / "data", {"a": 120, "b": 60, "c": 40}, size=32)
        train = TrainConfig(model="small-cnn", image_size=32, batch_size=32, steps=steps, eval_every=steps // 5,
                            threads=1)
        times, reports = {}, {}
        for jobs in (1, 2):
            config = EvaluationConfig(experiments=["oversample", "class-weights"], splits=2, train=train,
                                      plots=False, jobs=jobs)
            start = time.perf_counter()
            reports[jobs] = run_evaluation(data, Path(tmp) / f"out-{jobs}", config)
            times[jobs] = time.perf_counter() - start
    same = _numbers(reports[1]) == _numbers(reports[2])
    print(f"6 trainings x {steps} steps (small-cnn, 32 px, --threads 1)")
    print(f"--jobs 1: {times[1]:.1f} s")
    print(f"--jobs 2: {times[2]:.1f} s")
    print(f"ratio jobs1/jobs2: {times[1] / times[2]:.2f}x (target >= 1.6 on 2 free cores); identical results: {same}")


if __name__ == "__main__":
    main()

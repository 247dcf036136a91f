"""How synthaug's cost grows with the dataset size: wall time and peak memory per step.

For each size in ``--images`` it makes (once, cached under ``benchmarks/.cache/scale/``) a
synthetic dataset: small JPEGs of several sizes (32 to 96 px a side), 10 classes, imbalanced
20:1 (class ``k`` has ``20 ** (-k / 9)`` times the images of class 0). Then it runs each step
as its own process through the CLI (so the peak RSS is the step's own) and records the wall
time and peak RSS:

- ``plan`` first read (empty probe cache) and re-read (warm probe cache);
- the training-set fingerprint (:mod:`synthaug._fingerprint`: relative path, size and SHA-256
  of every image) with an empty and with a warm hash cache (every image, an upper bound: a run
  fingerprints only the classes it fills);
- ``balance -g classic`` to the balanced plan (about 1.9 synthetic images per real one);
- a no-op rerun of the same ``balance`` (resume scan: nothing left to generate);
- ``AugmentedDataset`` over the output plus one epoch of ``to_torch_loader`` at 64 px;
- ``report`` on at most ``--report-size`` real x as many synthetic images (a CSV / folder of
  links chosen with a fixed seed).

It prints the cost per dataset image of every step at every size and checks the targets:
cost per image at the largest size within 1.5x of the smallest (linear growth), the re-read
and the no-op rerun of 100k images under 30 s, and peak RSS growing sub-linearly (less than
proportionally to the size). ``--json FILE`` writes every number; ``--plot FILE.png`` draws
the growth plot of docs/scale.md.

Run: ``nice python benchmarks/scale.py --images 1000,10000 [--workers 2] [--json r.json] [--plot p.png]``
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "benchmarks" / ".cache" / "scale"
N_CLASSES = 10
IMBALANCE = 20.0
SIDES = (32, 48, 64, 96)


def class_sizes(n: int) -> dict[str, int]:
    """Images per class: geometric from the largest to 1/IMBALANCE of it, summing to ``n``."""
    weights = [IMBALANCE ** (-k / (N_CLASSES - 1)) for k in range(N_CLASSES)]
    sizes = [max(1, int(n * w / sum(weights))) for w in weights]
    sizes[0] += n - sum(sizes)
    return {f"class{k}": s for k, s in enumerate(sizes)}


def make_dataset(n: int) -> Path:
    """The cached dataset of ``n`` images (written once; a ``.complete`` file marks it done)."""
    import numpy as np
    from PIL import Image

    root = CACHE / f"data-{n}"
    if (root / ".complete").is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(n)
    textures = [rng.integers(0, 255, (96, 96, 3), dtype=np.uint8) for _ in range(16)]
    for k, (label, count) in enumerate(class_sizes(n).items()):
        folder = root / label
        folder.mkdir(parents=True)
        tint = np.array([(60 * k) % 256, (130 + 35 * k) % 256, (200 - 15 * k) % 256], dtype=np.uint16)
        for i in range(count):
            w, h = SIDES[i % 4], SIDES[(i // 4) % 4]
            pixels = (textures[i % 16][:h, :w] // 2 + tint // 2).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:06d}.jpg", quality=85)
    (root / ".complete").write_text("ok\n")
    return root


def run_step(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run one step as a child process; (wall seconds, peak RSS in MiB of it and its children)."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    stderr = child.stderr.read().decode() if child.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"step failed: {' '.join(argv)}\n{stderr[-2000:]}")
    return wall, usage.ru_maxrss / 1024


LOADER_STEP = """
import sys, synthaug
aug = synthaug.AugmentedDataset.from_folders(sys.argv[1], sys.argv[2])
n = sum(len(labels) for _, labels in aug.to_torch_loader(batch_size=64, image_size=64, num_workers=0))
assert n == len(aug), (n, len(aug))
"""


FINGERPRINT_STEP = """
import sys, pathlib
from synthaug._fingerprint import HashCache, files_fingerprint
root = pathlib.Path(sys.argv[1])
paths = sorted(root.rglob("*.jpg"))
cache = HashCache(root)
assert len(files_fingerprint(paths, root, cache)) == len(paths)
cache.save()
"""


def report_inputs(data: Path, out: Path, n: int, work: Path) -> tuple[Path, Path]:
    """A CSV of ``n`` real images and a folder of links to ``n`` synthetic ones (seeded choice)."""
    rng = random.Random(0)
    real = sorted(data.rglob("*.jpg"))
    synth = sorted(out.rglob("*.png"))
    real, synth = sorted(rng.sample(real, min(n, len(real)))), sorted(rng.sample(synth, min(n, len(synth))))
    work.mkdir(parents=True, exist_ok=True)
    real_csv = work / "real.csv"
    with open(real_csv, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label"])
        writer.writerows([str(p), p.parent.name] for p in real)
    links = work / "synthetic"
    shutil.rmtree(links, ignore_errors=True)
    for p in synth:
        (links / p.parent.name).mkdir(parents=True, exist_ok=True)
        (links / p.parent.name / p.name).symlink_to(p)
    return real_csv, links


def measure(n: int, workers: int, report_size: int, only: tuple[str, ...] = ()) -> dict[str, dict[str, float]]:
    """Every step's wall time and peak RSS for the dataset of ``n`` images (``only``: the steps
    whose names start with one of these words; the later steps need the earlier ones)."""
    data = make_dataset(n)
    work = CACHE / f"run-{n}"
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(CACHE / f"run-{n}.synthaug", ignore_errors=True)
    out = work / "out"
    env = {**os.environ, "SYNTHAUG_CACHE_DIR": str(work / "cache"), "OMP_NUM_THREADS": "1"}
    py = [sys.executable]
    cli = [*py, "-m", "synthaug"]
    balance = [*cli, "balance", str(data), "--out", str(out), "--quiet", "--workers", str(workers)]
    steps = {
        "startup (synthaug --version)": [*cli, "--version"],
        "plan (first read)": [*cli, "plan", str(data), "--json"],
        "plan (re-read)": [*cli, "plan", str(data), "--json"],
        "fingerprint (cold cache)": [*py, "-c", FINGERPRINT_STEP, str(data)],
        "fingerprint (warm cache)": [*py, "-c", FINGERPRINT_STEP, str(data)],
        "balance -g classic": balance,
        "no-op rerun": balance,
        "torch loader epoch (64 px)": [*py, "-c", LOADER_STEP, str(data), str(out)],
    }
    if only:
        steps = {name: argv for name, argv in steps.items() if name.startswith(only)}
    results = {}
    for name, argv in steps.items():
        wall, rss = run_step(argv, env)
        results[name] = {"seconds": wall, "peak_rss_mib": rss}
        print(f"  {n:>7} images  {name:<28} {wall:8.2f} s  {rss:7.0f} MiB", flush=True)
    if only and not "report".startswith(only):
        return results
    real_csv, links = report_inputs(data, out, report_size, work / "report-inputs")
    k = min(report_size, n)
    wall, rss = run_step([*cli, "report", str(real_csv), str(links), "--out", str(work / "report"), "--quiet"], env)
    results[f"report ({k} x {k})"] = {"seconds": wall, "peak_rss_mib": rss, "images": k}
    print(f"  {n:>7} images  {'report':<28} {wall:8.2f} s  {rss:7.0f} MiB  ({k} real x {k} synthetic)", flush=True)
    shutil.rmtree(links, ignore_errors=True)
    return results


def net_seconds(results: dict[str, dict[str, float]], step: str) -> float:
    """Wall time of ``step`` minus the process start-up (Python + ``import synthaug`` + click)."""
    startup = results.get("startup (synthaug --version)", {}).get("seconds", 0.0)
    return max(results[step]["seconds"] - startup, 1e-3)


def check(all_results: dict[int, dict[str, dict[str, float]]]) -> list[str]:
    """Lines of the target checks (PASS/FAIL) across the measured sizes."""
    sizes = sorted(all_results)
    lo, hi = sizes[0], sizes[-1]
    lines = []
    if lo != hi:
        for step in all_results[lo]:
            if step.startswith(("report", "startup")) or step not in all_results[hi]:
                continue  # report: a fixed-size subset beyond report-size; startup: constant
            a = net_seconds(all_results[lo], step) / lo
            b = net_seconds(all_results[hi], step) / hi
            lines.append(f"{'PASS' if b <= 1.5 * a else 'FAIL'} linear: {step}: {b / a:.2f}x the cost per image "
                         f"of {lo} at {hi}, process start-up subtracted (target <= 1.5)")
            rss_ratio = all_results[hi][step]["peak_rss_mib"] / all_results[lo][step]["peak_rss_mib"]
            lines.append(f"{'PASS' if rss_ratio < hi / lo else 'FAIL'} sub-linear RSS: {step}: x{rss_ratio:.2f} for "
                         f"x{hi / lo:.0f} images")
    for step in ("plan (re-read)", "no-op rerun"):
        if step not in all_results[hi]:
            continue
        seconds = all_results[hi][step]["seconds"]
        scaled = seconds * 100_000 / hi
        verdict = "PASS" if scaled < 30 else "FAIL"
        lines.append(f"{verdict} {step}: {seconds:.1f} s at {hi} images, {scaled:.1f} s per 100k at this rate "
                     "(target < 30 s at 100k)")
    return lines


def plot(all_results: dict[int, dict[str, dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(all_results)
    steps = [s for s in all_results[sizes[0]] if not s.startswith(("report", "startup"))]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for step in steps:
        have = [n for n in sizes if step in all_results[n]]
        left.plot(have, [net_seconds(all_results[n], step) * 1000 / n for n in have], marker="o", label=step)
        right.plot(have, [all_results[n][step]["peak_rss_mib"] for n in have], marker="o", label=step)
    for ax, title in ((left, "wall time per dataset image, start-up subtracted (ms)"), (right, "peak RSS of the step (MiB)")):
        ax.set_xscale("log")
        ax.set_xlabel("images in the dataset")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    left.set_ylim(bottom=0)
    right.set_ylim(bottom=0)
    right.legend(fontsize=8)
    fig.suptitle("synthaug cost vs dataset size (2-core CPU, otherwise idle, no GPU)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="1000,10000", help="comma-separated dataset sizes")
    parser.add_argument("--workers", type=int, default=2, help="--workers of the balance step")
    parser.add_argument("--report-size", type=int, default=10_000, help="real and synthetic images in the report step")
    parser.add_argument("--json", type=Path, default=None, help="write every measurement here")
    parser.add_argument("--plot", type=Path, default=None, help="write the growth plot (PNG) here")
    parser.add_argument("--steps", default="", help="comma-separated step name prefixes to run, e.g. startup,plan")
    parser.add_argument("--merge", type=Path, nargs="*", default=(), help="earlier --json files to add to the checks")
    args = parser.parse_args()
    all_results: dict[int, dict] = {}
    for earlier in args.merge:
        all_results.update({int(k): v for k, v in json.loads(earlier.read_text())["results"].items()})
    for n in (int(x) for x in args.images.split(",") if x):
        print(f"dataset of {n} images: {class_sizes(n)}", flush=True)
        all_results[n] = measure(n, args.workers, args.report_size, tuple(x for x in args.steps.split(",") if x))
    sizes = sorted(all_results)
    print("\ncost per dataset image (ms, wall time; start-up not subtracted):")
    steps = list(all_results[sizes[0]])
    print(f"  {'step':<28}" + "".join(f"{n:>12}" for n in sizes))
    for step in steps:
        cells = "".join(f"{all_results[n][step]['seconds'] * 1000 / n:12.3f}" if step in all_results[n] else " " * 12
                        for n in sizes)
        print(f"  {step:<28}{cells}")
    print()
    for line in check(all_results):
        print(line)
    if args.json:
        args.json.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(),
                                         "results": all_results}, indent=2))
    if args.plot:
        plot(all_results, args.plot)


if __name__ == "__main__":
    main()

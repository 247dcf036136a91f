"""Benchmark: the embedded ``ddpm`` generator on the skin-lesion development set, on a CPU.

Two parts (run both, or one with ``--part``):

``fd``
    One stratified, lesion-grouped split (70% train / 30% held out). ``ddpm`` is trained on
    every class of the training images at 64 px for a fixed time budget (``--budget-s``
    seconds of this process's CPU time, or of wall time with ``--clock wall``),
    then generates as many images per class as the held-out set has (at most
    ``--max-per-class``, default 20, with the held-out set capped the same way). ``classic`` generates
    the same counts from the same training images. Reported: the Fréchet distance (FD) of each
    synthetic set to the held-out real images in the download-free colour-texture feature
    space of :mod:`synthaug._quality` (standardised by the real images), next to the FD of an
    equally sized set of real *training* images (the floor a perfect generator would reach),
    and the share of synthetic images whose nearest real class centroid is their own class.
    Every set is centre-cropped to a square and resized to 64 px first, as ddpm sees it.

``harness``
    :func:`synthaug._evaluate.run_evaluation` over 3 random lesion-grouped splits with the
    experiments baseline, oversample, classic (upsample with classic) and upsample (with
    ddpm, fitted on each split's own training images). To fit three trainings and ~4,000
    generated images into the time of a CPU benchmark, this part uses 32 px throughout
    (ddpm resolution and classifier input) and a smaller per-split ddpm budget.

Usage (from the repository root; ~30 min on 2 shared CPU cores)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ddpm_skin_lesions.py --part fd --budget-s 600 --clock cpu
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ddpm_skin_lesions.py --part harness --budget-s 240

(the two parts can run at the same time, one core each).

Results (JSON and the printed tables) go to ``benchmarks/results/ddpm-skin-lesions/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SYNTHAUG_SKIN_LESIONS", REPO.parent / "shared" / "data" / "skin-lesions"))
RESULTS = REPO / "benchmarks" / "results" / "ddpm-skin-lesions"

#: ddpm at 64 px for the FD part (max_train_steps is a ceiling: the time budget stops it).
FD_OPTIONS = {
    "resolution": 64, "width": 32, "channel_multipliers": (1, 2, 2, 4), "attention": True,
    "train_batch_size": 16, "learning_rate": 1e-3, "lr_warmup_steps": 50, "vflip": True,
    "max_train_steps": 100_000, "checkpoint_every": 100, "sampler": "dpm-solver", "num_inference_steps": 10,
    "guidance_scale": 2.0, "generation_batch_size": 16,
}
#: Steps per resumed chunk when the budget is CPU time.
CPU_CHUNK_STEPS = 25
#: ddpm at 32 px for the harness part (three trainings, one per split).
HARNESS_OPTIONS = {
    "resolution": 32, "width": 16, "channel_multipliers": (1, 2, 2), "attention": True,
    "train_batch_size": 16, "learning_rate": 1e-3, "lr_warmup_steps": 50, "vflip": True,
    "max_train_steps": 100_000, "checkpoint_every": 100, "sampler": "dpm-solver", "num_inference_steps": 8,
    "guidance_scale": 2.0, "generation_batch_size": 32,
}


def _square_copies(paths, folder: Path, side: int = 64) -> list[Path]:
    """Centre-cropped, resized PNG copies of ``paths`` in ``folder`` (how ddpm sees images)."""
    from PIL import Image, ImageOps

    from synthaug._imageio import load_image

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, p in enumerate(paths):
        target = folder / f"{i:05d}.png"
        if not target.exists():
            image = p if hasattr(p, "save") else load_image(p)
            ImageOps.fit(image.convert("RGB"), (side, side), Image.Resampling.BICUBIC).save(target)
        out.append(target)
    return out


def _class_match(features, labels, centroids) -> float:
    import numpy as np

    names = sorted(centroids)
    matrix = np.stack([centroids[n] for n in names])
    nearest = ((features[:, None, :] - matrix[None]) ** 2).sum(-1).argmin(1)
    return float(np.mean([names[k] == lab for k, lab in zip(nearest, labels)]))


def _fit_within(concepts, work_dir: Path, budget_s: float, clock: str, seed: int):
    """Fit ddpm for ``budget_s`` seconds of wall time, or of this process's CPU time.

    The CPU clock makes the budget mean the same on a machine shared with other jobs: the
    model is trained in chunks of ``CPU_CHUNK_STEPS`` steps, each ``fit`` resuming the last
    checkpoint with a higher ``max_train_steps``, until the process has used ``budget_s`` CPU
    seconds (model loading and checkpointing included).
    """
    from synthaug_ddpm import DdpmGenerator

    wall0, cpu0 = time.perf_counter(), time.process_time()
    if clock == "wall":
        ddpm = DdpmGenerator({**FD_OPTIONS, "time_budget_s": budget_s, "seed": seed})
        ddpm.fit(concepts, work_dir)
    else:
        steps = 0
        while time.process_time() - cpu0 < budget_s:
            steps += CPU_CHUNK_STEPS
            ddpm = DdpmGenerator({**FD_OPTIONS, "max_train_steps": steps, "seed": seed})
            ddpm.fit(concepts, work_dir)
            print(f"[fd]   step {steps}: {time.process_time() - cpu0:.0f} CPU s", flush=True)
    return ddpm, time.perf_counter() - wall0, time.process_time() - cpu0


def part_fd(budget_s: float, seed: int, max_per_class: int | None = None, clock: str = "cpu") -> dict:
    import torch

    from synthaug._dataset import Dataset
    from synthaug._default_plugins.classic import ClassicGenerator
    from synthaug._generator import Concept, derive_seed
    from synthaug._quality import ColourTextureFeatures, frechet_distance
    from synthaug._quality.metrics import Standardizer
    from synthaug._splitting import read_groups, split_dataset

    torch.set_num_threads(1)
    work = RESULTS / "fd"
    data = Dataset.load(DATA)
    groups = read_groups(f"{DATA / 'labels.csv'}:lesion_id") if (DATA / "labels.csv").is_file() else None
    split = split_dataset(data, val=0.0, test=0.3, seed=seed, groups=groups)
    train = split["train"]
    held = Dataset([*split["test"], *split["val"]])
    if max_per_class:  # quick runs: fewer held-out images too, so every set keeps its size
        kept: dict[str, int] = {}
        held = Dataset([s for s in held if kept.setdefault(s.label, 0) < max_per_class
                        and not kept.__setitem__(s.label, kept[s.label] + 1)])
    by_class = train.paths_by_class()
    concepts = [Concept(label, label, tuple(paths)) for label, paths in sorted(by_class.items())]
    held_counts = held.counts()
    print(f"[fd] train {len(train)} images, held out {len(held)}: {held_counts}", flush=True)

    ddpm, fit_wall, fit_cpu = _fit_within(concepts, work / "ddpm-fit", budget_s, clock, seed)
    training = ddpm._artifact()["training"]
    print(f"[fd] ddpm trained {training['steps']} steps: {fit_cpu:.0f} s process CPU time, {fit_wall:.0f} s wall "
          f"({clock} budget {budget_s:.0f} s)", flush=True)

    classic = ClassicGenerator()
    sets: dict[str, tuple[list[Path], list[str]]] = {}
    gen_seconds = {}
    for name, generator in (("ddpm", ddpm), ("classic", classic)):
        paths, labels = [], []
        started = time.perf_counter()
        for concept in concepts:
            n = min(held_counts.get(concept.label, 0), max_per_class or 10**9)
            seeds = [derive_seed(seed, concept.label, concept.name, i) for i in range(n)]
            images = [item.image for item in generator.generate(concept, seeds)]
            paths += _square_copies(images, work / f"synthetic-{name}" / concept.label)
            labels += [concept.label] * n
        gen_seconds[name] = time.perf_counter() - started
        sets[name] = (paths, labels)
        print(f"[fd] {name}: {len(paths)} images in {gen_seconds[name]:.0f} s", flush=True)
    held_paths = _square_copies([s.path for s in held], work / "real-heldout")
    held_labels = [s.label for s in held]
    import random

    rng = random.Random(seed)
    floor_samples = []
    for label, n in sorted(held_counts.items()):
        floor_samples += [(p, label) for p in rng.sample(sorted(by_class[label]), min(n, len(by_class[label])))]
    sets["real train (floor)"] = (_square_copies([p for p, _ in floor_samples], work / "real-train-sample"),
                                  [lab for _, lab in floor_samples])

    space = ColourTextureFeatures()
    real = space.extract(held_paths)
    scale = Standardizer(real)
    real_z = scale(real)
    train_z = scale(space.extract(_square_copies([s.path for s in train], work / "real-train-all")))
    train_labels = [s.label for s in train]
    centroids = {c: train_z[[lab == c for lab in train_labels]].mean(0) for c in by_class}
    rows = {}
    for name, (paths, labels) in sets.items():
        z = scale(space.extract(paths))
        rows[name] = {
            "n": len(paths),
            "fd": frechet_distance(z, real_z),
            "class_match": _class_match(z, labels, centroids),
            "seconds": round(gen_seconds.get(name, 0.0), 1),
        }
    rows["real held-out (reference)"] = {"n": len(held_paths), "fd": 0.0,
                                         "class_match": _class_match(real_z, held_labels, centroids), "seconds": 0}
    result = {"budget_s": budget_s, "clock": clock, "fit_wall_s": round(fit_wall), "fit_cpu_s": round(fit_cpu),
              "training": {k: v for k, v in training.items() if k != "loss_history"},
              "loss_first_last": [training["loss_history"][0], training["loss_history"][-1]],
              "options": ddpm.options.model_dump(mode="json"), "rows": rows, "feature_space": space.name,
              "held_out": held_counts}
    lines = [
        f"FD to {len(held_paths)} held-out real images (colour-texture features, standardised; lower is better); "
        f"ddpm at 64 px: {training['steps']} training steps in {fit_cpu:.0f} s of process CPU time "
        f"({fit_wall:.0f} s wall; budget: {budget_s:.0f} s of {clock} time)",
        "",
        "| set | images | FD to held-out real | nearest class centroid = own class | generation s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['n']} | {row['fd']:.2f} | {100 * row['class_match']:.1f}% | {row['seconds']} |")
    result["table"] = "\n".join(lines)
    return result


def part_harness(budget_s: float, seed: int, classifier_steps: int | None = None, classifier: str = "mobilenet",
                 epochs: float = 10.0) -> dict:
    from synthaug._evaluate import TrainConfig, run_evaluation

    started = time.perf_counter()
    report = run_evaluation(
        DATA,
        RESULTS / "harness",
        experiments=("baseline", "oversample", "classic", "upsample"),
        generator="ddpm",
        generator_options={**HARNESS_OPTIONS, "time_budget_s": budget_s, "seed": seed},
        splits=3,
        groups=f"{DATA / 'labels.csv'}:lesion_id" if (DATA / "labels.csv").is_file() else None,
        train=TrainConfig(model=classifier, image_size=32, threads=1, steps=classifier_steps, epochs=epochs),
        seed=seed,
        plots=False,
        command=" ".join(sys.argv),
    )
    lines = [
        f"Test set, mean ± std over 3 lesion-grouped random splits (classifier {classifier}, {epochs:g} baseline "
        "epochs, from scratch; classifier and ddpm at 32 px)",
        "",
        "| experiment | balanced accuracy | accuracy | macro F1 |",
        "| --- | ---: | ---: | ---: |",
    ]
    rows = {}
    for name, exp in report["experiments"].items():
        test = exp["test"]

        def pm(key: str) -> str:
            stat = test.get(key) or {}
            mean, std = stat.get("mean"), stat.get("std")
            return "n/a" if mean is None else f"{100 * mean:.1f} ± {100 * (std or 0):.1f}"

        label = {"classic": "classic-upsample", "upsample": "ddpm-upsample"}.get(name, name)
        rows[label] = test
        lines.append(f"| {label} | {pm('balanced_accuracy')} | {pm('accuracy')} | {pm('macro_f1')} |")
    return {"seconds": round(time.perf_counter() - started), "table": "\n".join(lines), "rows": rows,
            "options": HARNESS_OPTIONS, "budget_s": budget_s}


def main() -> None:
    global DATA, RESULTS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("fd", "harness", "all"), default="all")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="ddpm training time budget in seconds (fd: the one model, default 900; "
                             "harness: per split, default 240)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="fd: the budget counts this process's CPU time (default; fair on a shared machine) "
                             "or wall-clock time (ddpm's own time_budget_s)")
    parser.add_argument("--data", type=Path, default=None, help="another class folder (for a quick smoke run)")
    parser.add_argument("--results", type=Path, default=None, help=f"results folder (default {RESULTS})")
    parser.add_argument("--max-per-class", type=int, default=20,
                        help="fd: at most this many held-out and generated images per class (default 20)")
    parser.add_argument("--classifier-steps", type=int, default=None, help="harness: classifier steps (quick runs)")
    parser.add_argument("--classifier", choices=("mobilenet", "small-cnn"), default="mobilenet",
                        help="harness: the classifier (synthaug._evaluate.TrainConfig.model)")
    parser.add_argument("--epochs", type=float, default=10.0, help="harness: classifier epochs of the baseline")
    args = parser.parse_args()
    DATA, RESULTS = args.data or DATA, args.results or RESULTS
    if not DATA.is_dir():
        sys.exit(f"skin-lesion images not found at {DATA} (set SYNTHAUG_SKIN_LESIONS)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    runs = (("fd", lambda b: part_fd(b, args.seed, args.max_per_class, args.clock), 900.0),
            ("harness", lambda b: part_harness(b, args.seed, args.classifier_steps, args.classifier, args.epochs),
             240.0))
    for part, fn, default in runs:
        if args.part in (part, "all"):
            result = fn(args.budget_s or default)
            tag = part if part == "fd" or args.classifier == "mobilenet" else f"{part}-{args.classifier}"
            (RESULTS / f"{tag}.json").write_text(json.dumps(result, indent=1, default=str))
            print(f"\n## {part}\n\n{result['table']}\n", flush=True)


if __name__ == "__main__":
    main()

"""The evaluation harness: splits x experiments -> trained classifiers -> metrics -> report.

Rules that keep the comparison fair (see docs/evaluation.md):

- every experiment of a split is scored on the same real-only validation and test images;
- generators are fitted per split on that split's training images only, and synthetic
  folders given by the user are checked against the held-out images they record as sources
  (:mod:`.sources`);
- every experiment of a split trains for the same number of optimizer steps, from the same
  initial weights (seeded by split), and the checkpoint best by the validation metric
  ``--select`` is tested (:mod:`.training`);
- trainings run in this process or in ``--jobs`` workers with identical results (:mod:`.jobs`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_bytes
from .._dataset import Dataset
from .._errors import InvalidParameterError
from .._outdir import check_output_location, claim_output
from .._progress import NULL_PROGRESS, Progress
from .._splitting import is_split_root, load_split_root, read_groups
from .clinical import attach_clinical
from .config import EvaluationConfig
from .device import cuda_count, describe, worker_devices
from .experiments import Experiment, needed_synthetic, parse_experiments
from .jobs import run_tasks
from .sources import Pool, Source, synthetic_pool
from .splits import Split, check_disjoint, kfold_splits, load_splits_file, random_splits, splits_to_json
from .summary import clinical_verdict_table, holdout_ratio, summarize_experiment, verdict_table
from .training import TrainingTask
from .worth import real_worth

__all__ = ["run_evaluation", "REPORT_FORMAT"]

#: report.json format: 2 added config, versions, verdicts, selection and convergence; 3 the
#: clinical metrics, ``compute`` (device, precision) and the ``too few runs`` verdict.
REPORT_FORMAT = 3


# -- inputs ------------------------------------------------------------------------------
def _split_root_input(data: str | os.PathLike[str], config: EvaluationConfig,
                      chosen: Sequence[str]) -> tuple[Dataset, list[Split], dict[str, Any], Path]:
    if chosen:
        raise InvalidParameterError(
            chosen[0], config.splits or config.repeats or config.folds or config.splits_file, "not with a split root",
            f"{data} already fixes train/val/test; give the unsplit dataset to make several splits",
        )
    parts = load_split_root(data, strict=config.strict)
    if "val" not in parts or "test" not in parts:
        raise InvalidParameterError("DATA", str(data), "a split root with train/, val/ and test/ class folders")
    root = Path(data)
    everything = Dataset([s for part in parts.values() for s in part], root=root)
    check_disjoint(parts, str(data))
    return everything, [dict(parts)], {"method": "split-root", "root": str(root)}, root


def _resolve_splits(data: str | os.PathLike[str] | Dataset, config: EvaluationConfig
                    ) -> tuple[Dataset, list[Split], dict[str, Any], Path | None]:
    """(all images, the splits, a description, the split root when the input is one)."""
    c = config
    chosen = [name for name, v in (("--splits", c.splits), ("--repeats/--folds", c.repeats or c.folds),
                                   ("--splits-file", c.splits_file)) if v]
    if not isinstance(data, Dataset) and is_split_root(data):
        return _split_root_input(data, c, chosen)
    if len(chosen) > 1:
        raise InvalidParameterError(chosen[1], "given", f"only one of --splits, --repeats/--folds, --splits-file (also got {chosen[0]})")
    dataset = Dataset.load(data, strict=c.strict)
    group_map = read_groups(c.groups) if c.groups else None
    if c.splits_file:
        return dataset, load_splits_file(c.splits_file, dataset), {"method": "file", "source": str(c.splits_file)}, None
    if c.repeats or c.folds:
        if not (c.repeats and c.folds):
            raise InvalidParameterError("--repeats/--folds", (c.repeats, c.folds), "both, e.g. --repeats 2 --folds 5")
        parts = kfold_splits(dataset, c.repeats, c.folds, seed=c.seed, groups=group_map)
        return dataset, parts, {"method": "repeated-kfold", "repeats": c.repeats, "folds": c.folds, "seed": c.seed,
                                "groups": c.groups}, None
    n = c.splits or 3
    parts = random_splits(dataset, n, val=c.val, test=c.test, seed=c.seed, groups=group_map)
    return dataset, parts, {"method": "random", "n": n, "val": c.val, "test": c.test, "seed": c.seed,
                            "groups": c.groups}, None


def _chosen_source(config: EvaluationConfig) -> Source | None:
    """The user's synthetic source: ``--generator`` or ``--synthetic`` folders (or none)."""
    if config.generator:
        return Source.generator(config.generator, config.generator_options)
    if config.synthetic:
        return Source.from_folders(config.synthetic)
    return None


def _check_splits(split_list: Sequence[Split], sources: Mapping[str, Source | None]) -> None:
    for source in {s for s in sources.values() if s is not None and s.kind == "folders"}:
        if len(source.folders) != len(split_list):
            raise InvalidParameterError(
                "--synthetic", [str(f) for f in source.folders], f"one synthetic folder per split ({len(split_list)} splits)",
                "a generator fitted on one split's training images must not serve another split; "
                "use --generator to generate per split",
            )
    for k, split in enumerate(split_list):
        for part in ("train", "val", "test"):
            if not len(split.get(part, ())):
                raise InvalidParameterError("splits", f"split {k}", f"a non-empty {part} set in every split")


def _result_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _versions() -> dict[str, str]:
    from importlib import metadata

    from .._version import __version__

    out = {"python": platform.python_version(), "synthaug": __version__}
    for dist in ("numpy", "scipy", "torch", "tensorflow-cpu", "tensorflow", "keras"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


# -- the plan of trainings ---------------------------------------------------------------------
def _split_tasks(k: int, split: Split, exps: Sequence[Experiment], sources: Mapping[str, Source | None],
                 config: EvaluationConfig, classes: list[str], fixed_root: Path | None, work: Path,
                 progress: Progress) -> list[tuple[TrainingTask, dict[str, Any]]]:
    """Each experiment's training task on split ``k`` with its record stub (counts, cache key)."""
    train_ds = split["train"]
    pools: dict[Source, Pool] = {}
    for source in sorted({s for s in sources.values() if s is not None}, key=lambda s: s.key):
        users = [e for e in exps if sources[e.name] == source]
        pools[source] = synthetic_pool(source, k, split, fixed_root=fixed_root, work=work,
                                       need=needed_synthetic(users, train_ds), seed=config.seed, progress=progress)
    steps, every = config.train.budget(len(train_ds))
    seed = config.seed * 1000 + k
    out = []
    for e in exps:
        source = sources[e.name]
        ts = e.training_set(train_ds, pool=pools.get(source) if source else None,
                            source=source.key if source else "None", seed=seed)
        key = _result_key(REPORT_FORMAT, config.train.to_dict(), e.to_dict(), source.key if source else None,
                          [[str(s.path) for s in ts.real], [str(s.path) for s in ts.synthetic]],
                          [[str(s.path) for s in split[p]] for p in ("val", "test")], config.seed, steps, every)
        task = TrainingTask(k, e.name, tuple(classes), tuple(ts.real), tuple(ts.synthetic), split["val"],
                            split["test"], config.train, ts.class_weights, seed, steps, every)
        stub = {"key": key, "split": k, "source": source.key if source else None, "train_counts": ts.counts(classes),
                "n_train": len(ts.real) + len(ts.synthetic), "synthetic_share": ts.synthetic_share,
                "class_weights": ts.class_weights}
        out.append((task, stub))
    return out


def _devices(config: EvaluationConfig) -> list[str]:
    """The torch device of each worker (empty for keras, which places itself)."""
    if config.train.backend != "torch":
        return []
    return worker_devices(config.train.device, config.jobs, cuda_count())


def compute_info(config: EvaluationConfig, results: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """report.json's ``compute``: the device asked for, the devices and precision the trainings used."""
    used = [r.get("device", "cpu") for records in results.values() for r in records]
    return {"backend": config.train.backend, "device_requested": config.train.device, "devices": describe(used),
            "precision": config.train.precision}


def _cached(path: Path, key: str) -> dict[str, Any] | None:
    """The finished result at ``path`` for ``key``; ``None`` when missing, for another key, or
    damaged (a torn or edited file is recomputed, never an error)."""
    try:
        record = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("key") == key else None


def split_fingerprint(split: Split) -> str:
    """The content of a split: label, size and SHA-256 of every train/val/test image (hashes
    cached, see :mod:`synthaug._fingerprint`). Work folders and cached results are keyed by it,
    so another split never reuses a synthetic pool made from other training images."""
    from .._fingerprint import HashCache, digest_of

    paths = [os.path.abspath(s.path) for p in ("train", "val", "test") for s in split.get(p, ())]
    cache = HashCache(os.path.commonpath(paths) if paths else None)
    parts = {p: sorted([s.label, *cache.stat_and_hash(s.path)] for s in split.get(p, ())) for p in ("train", "val", "test")}
    cache.save()
    return digest_of(parts)


def _train_all(split_list: Sequence[Split], exps: Sequence[Experiment], sources: Mapping[str, Source | None],
               config: EvaluationConfig, classes: list[str], fixed_root: Path | None, work: Path,
               progress: Progress) -> dict[str, list[dict[str, Any]]]:
    """Every (split, experiment) record, from the result cache or trained now, by experiment then split."""
    records: dict[tuple[int, str], dict[str, Any]] = {}
    pending: list[tuple[TrainingTask, dict[str, Any]]] = []
    folders: dict[int, Path] = {}
    for k, split in enumerate(split_list):
        fingerprint = split_fingerprint(split)
        split_work = folders[k] = work / f"split-{k}-{fingerprint[:12]}"  # keyed by the split's content
        split_work.mkdir(parents=True, exist_ok=True)
        for task, stub in _split_tasks(k, split, exps, sources, config, classes, fixed_root, split_work, progress):
            stub["key"] = _result_key(stub["key"], fingerprint)
            cached = _cached(split_work / "results" / f"{task.experiment}.json", stub["key"])
            if cached is not None:
                progress.log(f"split {k}: {task.experiment}: reusing the finished result")
                records[(k, task.experiment)] = cached
            else:
                pending.append((task, stub))
    stubs = {(t.split, t.experiment): stub for t, stub in pending}

    def finished(task: TrainingTask, trained: dict[str, Any]) -> None:
        record = {**stubs[(task.split, task.experiment)], **trained}
        path = folders[task.split] / "results" / f"{task.experiment}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, (json.dumps(record) + "\n").encode())  # never a torn file
        records[(task.split, task.experiment)] = record

    run_tasks([t for t, _ in pending], config.jobs, progress, finished, devices=_devices(config))
    return {e.name: [records[(k, e.name)] for k in range(len(split_list))] for e in exps}


# -- the harness -----------------------------------------------------------------------------
def run_evaluation(
    data: str | os.PathLike[str] | Dataset,
    out_dir: str | os.PathLike[str],
    config: EvaluationConfig | None = None,
    *,
    progress: Progress = NULL_PROGRESS,
    **options: Any,
) -> dict[str, Any]:
    """Run every experiment on every split and write ``report.json``, ``report.md``,
    ``splits.json`` and ``plots/`` to ``out_dir``; returns the report.

    Give an :class:`EvaluationConfig`, or its fields as keyword options (the former signature:
    ``run_evaluation(data, out, experiments=[...], splits=3, train=TrainConfig(...))``).
    Finished (split, experiment) results are kept in ``out_dir/work/split-K-<content>/results`` (keyed by the split's content) and reused when
    the same command is run again, so an interrupted evaluation resumes.
    """

    if config is None:
        config = EvaluationConfig.from_options(options)
    elif options:
        raise TypeError("run_evaluation() takes an EvaluationConfig or keyword options, not both")
    out = Path(out_dir)
    check_output_location(out, _evaluation_inputs(data, config))
    with claim_output(out):
        return _run_claimed(data, out, config, progress)


def _evaluation_inputs(data: str | os.PathLike[str] | Dataset, config: EvaluationConfig) -> list[Any]:
    """Every path an evaluation reads: the data (or its root), ``--synthetic`` folders, the
    splits and groups files; the output folder must lie outside all of them."""
    root = data.root if isinstance(data, Dataset) else data
    return [root, *config.synthetic, config.splits_file, str(config.groups).rsplit(":", 1)[0] if config.groups else None]


def _run_claimed(data: str | os.PathLike[str] | Dataset, out: Path, config: EvaluationConfig,
                 progress: Progress) -> dict[str, Any]:
    from .report import write_report

    exps = parse_experiments(config.experiments, config.shares, config.proportion_mode, config.upsample,
                             strengths=config.strengths, fractions=config.fractions)
    _devices(config)  # an unavailable --device fails now, before any generator is fitted
    chosen = _chosen_source(config)
    sources = {e.name: e.source(chosen) for e in exps}
    if chosen is None and any(e.kind == "upsample" for e in exps):
        progress.log("upsample: no -g/--synthetic given, so it uses the classic generator (as `balance` does)")
    dataset, split_list, split_info, fixed_root = _resolve_splits(data, config)
    _check_splits(split_list, sources)
    classes = sorted({s.label for s in dataset} | set(dataset.empty_classes))
    if config.positive is not None and config.positive not in classes:
        raise InvalidParameterError("--positive", config.positive, "one of the classes: " + ", ".join(classes))
    out.mkdir(parents=True, exist_ok=True)
    (out / "splits.json").write_text(json.dumps(splits_to_json(split_list, fixed_root or dataset.root), indent=1) + "\n")
    split_info.update(file="splits.json", n=len(split_list),
                      sizes=[{p: len(s[p]) for p in ("train", "val", "test")} for s in split_list])
    started = time.perf_counter()
    results = _train_all(split_list, exps, sources, config, classes, fixed_root, out / "work", progress)
    results = {name: [attach_clinical(r, classes, config.positive) for r in records]
               for name, records in results.items()}
    ratio = holdout_ratio(split_info["sizes"])
    experiments = {
        e.name: summarize_experiment({**e.to_dict(), "source": sources[e.name].key if sources[e.name] else None},
                                     [{k: v for k, v in r.items() if k != "key"} for r in results[e.name]],
                                     results["baseline"], classes, ratio, config.confidence)
        for e in exps
    }
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "synthaug_version": _versions()["synthaug"],
        "versions": _versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": config.command,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "config": config.to_dict(),
        "data": {"path": str(data if not isinstance(data, Dataset) else dataset.root),
                 "n_images": len(dataset), "class_counts": dataset.counts()},
        "classes": classes,
        "splits": split_info,
        "train": config.train.to_dict(),
        "compute": compute_info(config, results),
        "statistics": {"interval": "corrected resampled t (Nadeau-Bengio), repeated k-fold form",
                       "confidence": config.confidence, "test_train_ratio": ratio,
                       "p_value": "Wilcoxon signed-rank, two-sided",
                       "verdict": "better/worse when the interval excludes 0, else 'no evidence'"},
        "synthetic_sources": {s.key: s.describe() for s in sorted({s for s in sources.values() if s}, key=lambda s: s.key)},
        "verdicts": verdict_table(experiments),
        "clinical_verdicts": clinical_verdict_table(experiments),
        "experiments": experiments,
        "real_worth": real_worth(experiments),
    }
    write_report(report, out, plots=config.plots)
    return report

"""The evaluation harness: splits x experiments -> trained classifiers -> metrics -> report.

Rules that keep the comparison fair (see docs/evaluation.md):

- every experiment of a split is scored on the same real-only validation and test images;
- generators are fitted per split on that split's training images only (through the
  augmenter on a split root, which refuses leakage), and synthetic folders given by the user
  are checked against the held-out images they record as sources;
- every experiment of a split trains for the same number of optimizer steps, from the same
  initial weights (seeded by split), and the best-validation weights are tested.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..adapters import source_names
from ..adapters._decode import ImageCache
from ..augmented import AugmentedDataset, synthetic_samples
from ..dataset import Dataset, Sample
from ..errors import InvalidParameterError, LeakageError
from ..progress import NULL_PROGRESS, Progress
from ..splitting import is_split_root, load_split_root, read_groups, write_split
from .config import TrainConfig
from .experiments import CLASSIC_SOURCE, Experiment, build_training_set, needed_synthetic, parse_experiments
from .metrics import classification_metrics, cross_entropy, paired_differences, summarize
from .splits import Split, check_disjoint, kfold_splits, load_splits_file, random_splits, splits_to_json

__all__ = ["run_evaluation", "REPORT_FORMAT"]

REPORT_FORMAT = 1


# -- inputs ------------------------------------------------------------------------------
def _resolve_splits(
    data: str | os.PathLike[str] | Dataset,
    *,
    splits: int | None,
    repeats: int | None,
    folds: int | None,
    splits_file: str | os.PathLike[str] | None,
    val: float,
    test: float,
    groups: str | None,
    seed: int,
    strict: bool,
) -> tuple[Dataset, list[Split], dict[str, Any], Path | None]:
    """(all images, the splits, a description, the split root when the input is one)."""
    chosen = [name for name, v in (("--splits", splits), ("--repeats/--folds", repeats or folds),
                                   ("--splits-file", splits_file)) if v]
    if not isinstance(data, Dataset) and is_split_root(data):
        if chosen:
            raise InvalidParameterError(
                chosen[0], splits or repeats or folds or splits_file, "not with a split root",
                f"{data} already fixes train/val/test; give the unsplit dataset to make several splits",
            )
        parts = load_split_root(data, strict=strict)
        if "val" not in parts or "test" not in parts:
            raise InvalidParameterError("DATA", str(data), "a split root with train/, val/ and test/ class folders")
        root = Path(data)
        everything = Dataset([s for part in parts.values() for s in part], root=root)
        check_disjoint(parts, str(data))
        return everything, [dict(parts)], {"method": "split-root", "root": str(root)}, root
    if len(chosen) > 1:
        raise InvalidParameterError(chosen[1], "given", f"only one of --splits, --repeats/--folds, --splits-file (also got {chosen[0]})")
    dataset = Dataset.load(data, strict=strict)
    group_map = read_groups(groups) if groups else None
    if splits_file:
        return dataset, load_splits_file(splits_file, dataset), {"method": "file", "source": str(splits_file)}, None
    if repeats or folds:
        if not (repeats and folds):
            raise InvalidParameterError("--repeats/--folds", (repeats, folds), "both, e.g. --repeats 2 --folds 5")
        parts = kfold_splits(dataset, repeats, folds, seed=seed, groups=group_map)
        return dataset, parts, {"method": "repeated-kfold", "repeats": repeats, "folds": folds, "seed": seed,
                                "groups": groups}, None
    n = splits or 3
    parts = random_splits(dataset, n, val=val, test=test, seed=seed, groups=group_map)
    return dataset, parts, {"method": "random", "n": n, "val": val, "test": test, "seed": seed, "groups": groups}, None


def _sources(experiments: Sequence[Experiment], generator: str | None, folders: Sequence[Path]) -> dict[str, str]:
    """Synthetic-source key of each experiment that needs one."""
    out = {}
    for e in experiments:
        if e.kind == "classic":
            out[e.name] = CLASSIC_SOURCE
        elif e.uses_synthetic:
            if generator:
                out[e.name] = f"generator:{generator}"
            elif folders:
                out[e.name] = "folders"
            else:
                raise InvalidParameterError(
                    "--generator/--synthetic", None,
                    f"a generator name or synthetic folder(s): experiment {e.name!r} needs synthetic images",
                )
    return out


def _split_root(split: Split, fixed_root: Path | None, work: Path) -> Path:
    """A split root for the augmenter (the input itself, or symlinks under ``work``)."""
    if fixed_root is not None:
        return fixed_root
    target = work / "data"
    if target.exists():
        shutil.rmtree(target)
    return write_split(split, target)


def _pool(samples: Sequence[Sample]) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    ordered = sorted(samples, key=lambda s: (s.label, str((s.provenance or {}).get("concept", "")),
                                             int((s.provenance or {}).get("index", 0)), str(s.path)))
    for s in ordered:
        out.setdefault(s.label, []).append(s)
    return out


def _generate_pool(
    name: str, options: Mapping[str, Any] | None, split_root: Path, train: Dataset, need: Mapping[str, int],
    out: Path, seed: int, progress: Progress,
) -> dict[str, list[Sample]]:
    from ..augmenter import SyntheticAugmenter
    from ..policy import MinorityUpsampling

    counts = train.counts()
    targets = {c: counts[c] + n for c, n in need.items() if n > 0}
    if not targets:
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # targets above the majority are intended here
        result = SyntheticAugmenter(name, MinorityUpsampling(targets), generator_options=options, out_dir=out,
                                    random_state=seed, progress=progress, overwrite=True).fit_resample(split_root)
    return _pool(result.synthetic)


def _folder_pool(folder: Path, split: Split) -> dict[str, list[Sample]]:
    samples = synthetic_samples(folder)
    held = {s.path.name for part in ("val", "test") for s in split.get(part, ())}
    leaked = sorted(source_names(samples) & held)
    if leaked:
        raise LeakageError(
            f"synthetic folder {folder} was made from held-out image(s) {', '.join(leaked[:5])}; a synthetic "
            "folder must be generated from the training images of the split it is evaluated on"
        )
    return _pool(samples)


# -- training ------------------------------------------------------------------------------
def _classifier(config: TrainConfig):
    if config.backend == "keras":
        from .keras_backend import KerasClassifier

        return KerasClassifier
    from .torch_backend import TorchClassifier

    return TorchClassifier


def _train_one(
    data: AugmentedDataset, config: TrainConfig, class_weights: Mapping[str, float] | None, seed: int,
    steps: int, every: int, cache: ImageCache, task: Any,
) -> dict[str, Any]:
    classes = data.classes
    clf = _classifier(config)(data, config, class_weights=class_weights, seed=seed, cache=cache)
    history, best, best_key, best_step, done = [], None, None, 0, 0
    try:
        while done < steps:
            n = min(every, steps - done)
            loss = clf.train_steps(n)
            done += n
            logits, y = clf.predict("val")
            val = classification_metrics(y, logits.argmax(1), classes)
            val_loss = cross_entropy(logits, y)
            history.append({"step": done, "train_loss": loss, "val_loss": val_loss, "val_accuracy": val["accuracy"]})
            key = (val["accuracy"], -val_loss)
            if best_key is None or key > best_key:
                best, best_key, best_step = clf.snapshot(), key, done
            task.advance(n, metrics={"loss": loss, "val_acc": val["accuracy"]})
        clf.restore(best)
        val_logits, val_y = clf.predict("val")
        test_logits, test_y = clf.predict("test")
    finally:
        clf.close()
    return {
        "steps": steps, "eval_every": every, "best_step": best_step, "history": history,
        "val": classification_metrics(val_y, val_logits.argmax(1), classes),
        "test": classification_metrics(test_y, test_logits.argmax(1), classes),
    }


def _result_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- the harness -----------------------------------------------------------------------------
def run_evaluation(
    data: str | os.PathLike[str] | Dataset,
    out_dir: str | os.PathLike[str],
    *,
    experiments: Sequence[str] = ("upsample",),
    shares: Sequence[float] = (),
    proportion_mode: str = "replace",
    upsample: str = "auto",
    generator: str | None = None,
    generator_options: Mapping[str, Any] | None = None,
    synthetic: Sequence[str | os.PathLike[str]] = (),
    splits: int | None = None,
    repeats: int | None = None,
    folds: int | None = None,
    splits_file: str | os.PathLike[str] | None = None,
    val: float = 0.15,
    test: float = 0.15,
    groups: str | None = None,
    train: TrainConfig | None = None,
    seed: int = 0,
    strict: bool = False,
    plots: bool = True,
    progress: Progress = NULL_PROGRESS,
    command: str | None = None,
) -> dict[str, Any]:
    """Run every experiment on every split and write ``report.json``, ``report.md``,
    ``splits.json`` and ``plots/`` to ``out_dir``; returns the report.

    Finished (split, experiment) results are kept in ``out_dir/work/results`` and reused when
    the same command is run again, so an interrupted evaluation resumes.
    """
    from .. import __version__
    from .report import write_report

    config = train or TrainConfig()
    out = Path(out_dir)
    folders = [Path(f) for f in synthetic]
    exps = parse_experiments(experiments, shares, proportion_mode, upsample)
    sources = _sources(exps, generator, folders)
    dataset, split_list, split_info, fixed_root = _resolve_splits(
        data, splits=splits, repeats=repeats, folds=folds, splits_file=splits_file, val=val, test=test,
        groups=groups, seed=seed, strict=strict)
    if folders and len(folders) != len(split_list):
        raise InvalidParameterError(
            "--synthetic", [str(f) for f in folders], f"one synthetic folder per split ({len(split_list)} splits)",
            "a generator fitted on one split's training images must not serve another split; "
            "use --generator to generate per split",
        )
    for k, split in enumerate(split_list):
        for part in ("train", "val", "test"):
            if not len(split.get(part, ())):
                raise InvalidParameterError("splits", f"split {k}", f"a non-empty {part} set in every split")
    classes = sorted({s.label for s in dataset} | set(dataset.empty_classes))
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    (out / "splits.json").write_text(json.dumps(splits_to_json(split_list, fixed_root or dataset.root), indent=1) + "\n")
    split_info["file"] = "splits.json"
    split_info["n"] = len(split_list)
    split_info["sizes"] = [{p: len(s[p]) for p in ("train", "val", "test")} for s in split_list]

    cache = ImageCache()
    results: dict[str, list[dict[str, Any]]] = {e.name: [] for e in exps}
    outer = progress.task("evaluation (splits x experiments)", len(split_list) * len(exps))
    for k, split in enumerate(split_list):
        split_work = work / f"split-{k}"
        split_work.mkdir(parents=True, exist_ok=True)
        train_ds = split["train"]
        pools: dict[str, dict[str, list[Sample]]] = {}
        for key in sorted(set(sources.values())):
            users = [e for e in exps if sources.get(e.name) == key]
            if key == "folders":
                pools[key] = _folder_pool(folders[k], split)
                continue
            name = key.split(":", 1)[1]
            progress.log(f"split {k}: generating synthetic images with {name!r} from {len(train_ds)} training images")
            options = generator_options if name == generator else None
            root = _split_root(split, fixed_root, split_work)
            pools[key] = _generate_pool(name, options, root, train_ds, needed_synthetic(users, train_ds),
                                        split_work / f"synthetic-{name}", seed, progress)
        steps, every = config.budget(len(train_ds))
        for e in exps:
            source = sources.get(e.name)
            ts = build_training_set(e, train_ds, pool=pools.get(source), source=str(source), seed=seed * 1000 + k)
            key = _result_key(REPORT_FORMAT, config.to_dict(), e.to_dict(), source,
                              [[str(s.path) for s in ts.real], [str(s.path) for s in ts.synthetic]],
                              [[str(s.path) for s in split[p]] for p in ("val", "test")], seed, steps, every)
            cached = split_work / "results" / f"{e.name}.json"
            record = json.loads(cached.read_text()) if cached.is_file() else None
            if record is None or record.get("key") != key:
                aug = AugmentedDataset(Dataset(ts.real), ts.synthetic, classes=classes,
                                       val=split["val"], test=split["test"])
                task = progress.task(f"split {k + 1}/{len(split_list)} {e.name}", steps)
                started = time.perf_counter()
                try:
                    trained = _train_one(aug, config, ts.class_weights, seed * 1000 + k, steps, every, cache, task)
                finally:
                    task.close()
                record = {
                    "key": key, "split": k, "source": source, "train_counts": ts.counts(classes),
                    "n_train": len(ts.real) + len(ts.synthetic), "synthetic_share": ts.synthetic_share,
                    "class_weights": ts.class_weights, **trained,
                    "seconds": round(time.perf_counter() - started, 2),
                }
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_text(json.dumps(record) + "\n")
            else:
                progress.log(f"split {k}: {e.name}: reusing the finished result in {cached}")
            results[e.name].append(record)
            outer.advance(1)
    outer.close()

    baseline = results["baseline"]
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "synthaug_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
        "data": {"path": str(data if not isinstance(data, Dataset) else dataset.root),
                 "n_images": len(dataset), "class_counts": dataset.counts()},
        "classes": classes,
        "splits": split_info,
        "train": config.to_dict(),
        "synthetic_sources": _describe_sources(sources, generator, generator_options, folders),
        "experiments": {},
    }
    for e in exps:
        per_split = [{k: v for k, v in r.items() if k != "key"} for r in results[e.name]]
        report["experiments"][e.name] = {
            **e.to_dict(),
            "source": sources.get(e.name),
            "synthetic_share": sum(r["synthetic_share"] for r in per_split) / len(per_split),
            "per_split": per_split,
            "test": summarize([r["test"] for r in per_split], classes),
            "val": summarize([r["val"] for r in per_split], classes),
            "vs_baseline": paired_differences([r["test"] for r in per_split], [r["test"] for r in baseline], classes),
        }
    write_report(report, out, plots=plots)
    return report


def _describe_sources(sources: Mapping[str, str], generator: str | None, options: Mapping[str, Any] | None,
                      folders: Sequence[Path]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in sorted(set(sources.values())):
        if key == "folders":
            out[key] = {"kind": "folders", "folders": [str(f) for f in folders]}
        else:
            name = key.split(":", 1)[1]
            out[key] = {"kind": "generator", "name": name,
                        "options": dict(options or {}) if name == generator else {},
                        "fitted_on": "the training images of each split"}
    return out

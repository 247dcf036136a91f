"""The synthetic-data quality report: memorization, diversity, distribution distance, defects.

:func:`quality_report` compares a folder of synthetic images (a synthaug output folder, or any
``<class>/<image>`` folder) with the real training images and returns a
:class:`QualityReport`; with ``out_dir`` it also writes ``report.json``, ``report.md``,
``nearest.csv`` and PNG figures there.

What is measured, per class and overall:

- **defects**: unreadable files and blank images (constant pixels: black from a NaN decode,
  flat grey, …);
- **memorization**: each synthetic image's most similar training image (all classes) by
  shift-tolerant normalised cross-correlation of a high-pass descriptor
  (:func:`~synthaug._features.copy_descriptor`); at or above ``copy_threshold`` the image
  is flagged as a near-copy. For scale, the same score between distinct training images is
  reported too;
- **diversity**: mean pairwise feature distance among the synthetic images, and among the
  real ones (a ratio well below 1 means the generator collapses to few looks);
- **distribution distance**: Fréchet distance (FD) and kernel distance (KID formula) between
  real and synthetic features, with the FD between two random halves of the real class as the
  noise floor for that class size;
- **outliers**: synthetic images whose mean distance to their 3 nearest real images of the
  class exceeds ``outlier_factor`` times the 99th percentile of the same distance among the
  real images (leave-one-out).

Features are Inception-v3 pool features when torch-fidelity and its weights are on disk,
otherwise download-free colour-texture statistics; the report says which it used. Values in
the colour-texture space are not comparable to published FID numbers.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._dataset import Dataset
from .._errors import DatasetError, InvalidParameterError
from .._progress import NULL_PROGRESS, Progress
from .distribution import DEFAULT_BOOTSTRAP
from .distribution import distribution as distribution_of
from .metrics import DEFAULT_MAX_MEMORY_MB
from .results import QualityReport, SyntheticImage
from .results import json_number as _num
from .scan import Scanned, scan_side

__all__ = ["QualityReport", "SyntheticImage", "quality_report", "DEFAULT_COPY_THRESHOLD", "DEFAULT_OUTLIER_FACTOR"]

#: Near-copy threshold of the copy similarity. On the skin-lesion set distinct training images
#: score at most ~0.49 against each other and lightly jittered copies at least ~0.52.
DEFAULT_COPY_THRESHOLD = 0.5
#: Outlier rule: 3-NN distance above this times the real images' 99th percentile.
DEFAULT_OUTLIER_FACTOR = 1.5
#: What filtering removes unless told otherwise. Outliers are opt-in: on small classes they are
#: often valid but atypical images (a rare visual pattern), and removing them narrows the class.
DEFAULT_FILTER = ("unreadable", "blank", "copy")


# -- inputs ---------------------------------------------------------------------------------
def _real_training_set(real: str | os.PathLike[str] | Dataset) -> Dataset:
    """The real training images: a Dataset, a class folder / CSV, or a split root's train part."""
    if isinstance(real, Dataset):
        return real.filter(lambda s: s.split in (None, "train"))
    from .._splitting import is_split_root, load_split_root

    if is_split_root(real):
        return load_split_root(real)["train"]
    return Dataset.load(real)


def _synthetic_images(synthetic: str | os.PathLike[str]) -> tuple[Path, list[SyntheticImage], bool]:
    """The synthetic images (from ``manifest.jsonl`` when present) and whether it is a synthaug folder."""
    from .._store import Store

    root = Path(synthetic)
    if not root.is_dir():
        raise DatasetError(f"synthetic folder {str(root)!r} does not exist or is not a folder")
    store = Store(root)
    if store.manifest_path.is_file():  # read only: a report never repairs or rewrites the folder
        records = store.records()
        paths = store.confiner.resolve_all(records, listed_in=store.main_manifest_path)  # confined to OUT
        return root, [SyntheticImage(path, r["class"], r) for path, r in zip(paths, records)], True
    data = Dataset.from_folder(root)
    return root, [SyntheticImage(s.path, s.label) for s in data], False


# -- the report ---------------------------------------------------------------------------
def _validate(copy_threshold: float, outlier_factor: float, max_memory: float) -> None:
    if isinstance(max_memory, bool) or not isinstance(max_memory, (int, float)) or not max_memory >= 16:
        raise InvalidParameterError("max_memory", max_memory, "a number of MiB >= 16", f"default {DEFAULT_MAX_MEMORY_MB}")
    if not isinstance(copy_threshold, (int, float)) or not 0 < copy_threshold <= 1:
        raise InvalidParameterError("copy_threshold", copy_threshold, "a similarity in (0, 1]",
                                    f"default {DEFAULT_COPY_THRESHOLD}")
    if not isinstance(outlier_factor, (int, float)) or outlier_factor <= 0:
        raise InvalidParameterError("outlier_factor", outlier_factor, "a number > 0", f"default {DEFAULT_OUTLIER_FACTOR}")


def _copy_reference(descriptors: Any, usable: Any, seed: int, max_images: int = 1000) -> dict[str, Any]:
    """How similar distinct training images are to each other (leave-one-out nearest)."""
    import numpy as np

    idx = np.flatnonzero(usable)
    if len(idx) < 2:
        return {}
    sample = idx if len(idx) <= max_images else np.sort(np.random.default_rng(seed).choice(idx, max_images, False))
    sims = _self_excluded_nearest(descriptors[sample])
    return {
        "n_images": int(len(sample)),
        "median": _num(float(np.median(sims))),
        "q99": _num(float(np.quantile(sims, 0.99))),
        "max": _num(float(sims.max())),
    }


def _self_excluded_nearest(descriptors: Any) -> Any:
    """Best similarity of each descriptor to any *other* one of the same set."""
    import numpy as np

    from .._features import COPY_MARGIN
    from .metrics import _windows, best_over_shifts

    ref = _windows(descriptors, COPY_MARGIN, COPY_MARGIN).T
    out = np.empty(len(descriptors))
    for start in range(0, len(descriptors), 256):
        stop = min(start + 256, len(descriptors))
        sims = best_over_shifts(descriptors[start:stop], ref)
        sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        out[start:stop] = sims.max(1)
    return out


def _flag_defects(images: Sequence[SyntheticImage], infos: Sequence[Any]) -> None:
    for im, info in zip(images, infos):
        im.readable, im.blank = info.readable, info.blank
        if not info.readable:
            im.flags.append("unreadable")
        elif info.blank:
            im.flags.append("blank")


def _flag_copies(images: Sequence[SyntheticImage], synth: Scanned, real: Scanned, threshold: float,
                 max_memory_mb: float) -> None:
    """Nearest training image (any class) of every usable synthetic image; flag near-copies."""
    import numpy as np

    from .metrics import nearest_copies

    real_idx = np.flatnonzero(real.usable)
    nearest, sims = nearest_copies(synth.descriptors[synth.usable], real.descriptors[real.usable],
                                   max_memory_mb=max_memory_mb)
    for im, j, sim in zip([im for im, ok in zip(images, synth.usable) if ok], nearest, sims):
        im.nearest, im.similarity = real.paths[real_idx[j]], float(sim)
        if sim >= threshold:
            im.flags.append("copy")


def _flag_outliers(members: Sequence[SyntheticImage], synth_f: Any, real_f: Any, factor: float,
                   max_memory_mb: float) -> None:
    """Flag synthetic images far from every real image of their class (3-NN rule)."""
    import numpy as np

    from .metrics import knn_distances

    loo = knn_distances(real_f, real_f, 3, exclude_self=True, max_memory_mb=max_memory_mb)
    limit = max(factor * float(np.quantile(loo, 0.99)), 1e-12)
    for im, score in zip(members, knn_distances(synth_f, real_f, 3, max_memory_mb=max_memory_mb)):
        im.outlier_score = float(score) / limit
        if score > limit:
            im.flags.append("outlier")


def _counts(images: Sequence[SyntheticImage]) -> dict[str, Any]:
    """Flag counts and copy similarity of a set of synthetic images."""
    import numpy as np

    sims = [im.similarity for im in images if math.isfinite(im.similarity)]
    return {
        "unreadable": sum(not im.readable for im in images),
        "blank": sum(im.blank for im in images),
        "copies": sum("copy" in im.flags for im in images),
        "outliers": sum("outlier" in im.flags for im in images),
        "flagged": sum(bool(im.flags) for im in images),
        "max_similarity": _num(max(sims)) if sims else None,
        "median_similarity": _num(float(np.median(sims))) if sims else None,
    }


def _measure_class(label: str, images: Sequence[SyntheticImage], synth: Scanned, real: Scanned,
                   outlier_factor: float, seed: int, max_memory_mb: float, bootstrap: int) -> dict[str, Any]:
    """Outlier flags and the per-class numbers of one class."""
    in_class = synth.labels == label
    rmask, smask = real.usable & (real.labels == label), synth.usable & in_class
    members = [im for im, inside in zip(images, in_class) if inside]
    entry: dict[str, Any] = {"n_real": int((real.labels == label).sum()), "n_synthetic": len(members)}
    distribution: dict[str, Any] = {}
    if rmask.sum() >= 2 and smask.any():
        usable_members = [im for im, ok in zip(members, synth.usable[in_class]) if ok]
        _flag_outliers(usable_members, synth.features[smask], real.features[rmask], outlier_factor, max_memory_mb)
        distribution = distribution_of(real.features[rmask], synth.features[smask], seed, bootstrap=bootstrap,
                                       max_memory_mb=max_memory_mb)
    elif rmask.sum() < 2:
        entry["note"] = "fewer than 2 usable real images of this class: no distribution metrics"
    return {**entry, **_counts(members), **distribution}


def quality_report(
    real: str | os.PathLike[str] | Dataset,
    synthetic: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    features: Any = "auto",
    copy_threshold: float = DEFAULT_COPY_THRESHOLD,
    outlier_factor: float = DEFAULT_OUTLIER_FACTOR,
    seed: int = 0,
    figures: bool = True,
    max_memory: float = DEFAULT_MAX_MEMORY_MB,
    workers: int | None = None,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    device: str = "auto",
    progress: Progress = NULL_PROGRESS,
) -> QualityReport:
    """Measure synthetic images against the real training images (see the module docstring).

    ``real`` is the training data (a class folder, CSV, Dataset, or split root whose
    ``train/`` part is used); ``synthetic`` a synthaug output folder or any class folder.
    ``features`` is a spec (``"auto"``, ``"colour-texture"``, ``"inception"``,
    ``"dinov2:/local/folder"``, ``"clip:/local/folder"``, ``"package.module:function"``, see
    :mod:`synthaug._extractors`) or a feature space; learned spaces run on ``device``.
    With ``out_dir`` the report files are written there (created if needed).
    ``max_memory`` (MiB) bounds the working arrays of the near-copy and nearest-neighbour
    searches, which run in chunks of query images; the per-image descriptors and features
    (about 5 KiB per image) come on top and grow linearly. ``workers`` processes decode the
    images of large sets (default: the usable CPU cores, at most 8). ``bootstrap`` resamples
    give the FD and KID intervals (0: none).
    """
    import numpy as np

    from .._extractors import resolve_feature_space
    from .._generation_pool import default_workers
    from .metrics import Standardizer

    _validate(copy_threshold, outlier_factor, max_memory)
    workers = default_workers() if workers is None else max(1, int(workers))
    train = _real_training_set(real)
    root, images, is_synthaug = _synthetic_images(synthetic)
    if not images:
        raise DatasetError(f"synthetic folder {str(root)!r} holds no images")
    space, space_note = resolve_feature_space(features, device=device)
    real_side, _ = scan_side([s.path for s in train], [s.label for s in train], space, progress, "real", workers)
    if not real_side.usable.any():
        raise DatasetError("no usable real training image (all unreadable or blank)")
    synth, infos = scan_side([im.path for im in images], [im.label for im in images], space, progress, "synthetic", workers)
    _flag_defects(images, infos)
    _flag_copies(images, synth, real_side, copy_threshold, max_memory)
    if space.name == "colour-texture":  # z-score with the real images' statistics
        scale = Standardizer(real_side.features[real_side.usable])
        real_side.features, synth.features = scale(real_side.features), scale(synth.features)

    labels = sorted(set(synth.labels))
    task = progress.task("measuring classes", len(labels))
    classes = {}
    for label in labels:
        classes[label] = _measure_class(label, images, synth, real_side, outlier_factor, seed, max_memory, bootstrap)
        task.advance()
    task.close()

    present = np.isin(real_side.labels, labels) & real_side.usable
    overall: dict[str, Any] = {
        "n_real": len(train),
        "n_real_in_synthetic_classes": int(present.sum()),
        "n_synthetic": len(images),
        **_counts(images),
        "training_pairs_similarity": _copy_reference(real_side.descriptors, real_side.usable, seed),
    }
    if present.sum() >= 2 and synth.usable.sum() >= 2:
        overall.update(distribution_of(real_side.features[present], synth.features[synth.usable], seed,
                                       bootstrap=bootstrap, max_memory_mb=max_memory))
    settings = {
        "real": str(real) if not isinstance(real, Dataset) else repr(real),
        "synthetic": str(root),
        "synthaug_output": is_synthaug,
        "feature_space": space.name,
        "feature_space_note": space_note,
        "copy_descriptor": "shift-tolerant NCC of a 32x32 histogram-equalised high-pass grey thumbnail",
        "copy_threshold": copy_threshold,
        "outlier_factor": outlier_factor,
        "seed": seed,
        "max_memory_mb": max_memory,
        "bootstrap": bootstrap,
    }
    report = QualityReport(settings, overall, classes, images, root, sides=(real_side, synth, train, space))
    if out_dir is not None:
        write_report(report, out_dir, train=train, figures=figures)
    return report



def write_report(report: QualityReport, out_dir: str | os.PathLike[str], *, train: Dataset | None = None,
                 figures: bool = True) -> Path:
    """Write ``report.json``, ``report.md``, ``nearest.csv`` and the PNGs into ``out_dir`` (see :mod:`.render`)."""
    from .render import write_report as write

    return write(report, out_dir, train=train, figures=figures)


def render_markdown(report: QualityReport) -> str:
    """The human-readable report (``report.md``); see :mod:`.render`."""
    from .render import render_markdown as render

    return render(report)


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``report.json`` written by :func:`quality_report`."""
    return json.loads(Path(path).read_text())

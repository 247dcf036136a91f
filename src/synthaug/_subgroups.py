"""Visual sub-groups of a class: one concept per recurring visual pattern.

When a class's training images look very different from one another (vascular lesions are
mostly red *or* black), one fine-tuned model per class regresses to their mean (pink/violet).
Splitting the class into its visual patterns, fitting one artifact per pattern and sharing
the class's quota between them in proportion to their sizes avoids that.

A setting (:func:`parse_subgroups`) is one of:

- ``"none"`` (default): one concept per class, as before;
- ``"auto"``: k-means on image features, ``k`` in ``[1, max_subgroups]`` chosen by the
  silhouette score, every group keeping at least ``min_group_size`` images; ``k = 1`` unless
  the best silhouette reaches ``min_silhouette``;
- an integer ``K``: k-means with exactly ``K`` groups (fewer when the class has fewer images);
- ``"FILE.csv:COLUMN"``: groups given by the user, matched to images by file stem (as
  ``--groups`` of ``synthaug split``).

Sub-group ``i`` of class ``melanoma`` is the concept ``"melanoma~i"`` (groups sorted by size,
largest first; user groups use their value: ``"melanoma~red"``); a class left in one group
keeps the plain class name, so its fitted artifact is the one a run without sub-groups uses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import DatasetError, InvalidParameterError

__all__ = [
    "SubgroupSetting",
    "SubgroupAssignment",
    "find_subgroups",
    "kmeans",
    "parse_subgroups",
    "silhouette_score",
    "split_quota",
    "write_contact_sheet",
]

SEPARATOR = "~"


@dataclass(frozen=True)
class SubgroupSetting:
    """A validated sub-group setting: ``mode`` is ``none``, ``auto``, ``k`` or ``csv``."""

    mode: str = "none"
    k: int | None = None
    csv: str | None = None
    column: str | None = None
    max_subgroups: int = 4
    min_group_size: int = 8
    min_silhouette: float = 0.2
    features: str = "colour-texture"

    @property
    def active(self) -> bool:
        return self.mode != "none"

    def describe(self) -> dict[str, Any]:
        """JSON-able form recorded in ``plan.json`` (so a changed setting is a different run)."""
        out: dict[str, Any] = {"mode": self.mode}
        if self.mode == "auto":
            out.update(max_subgroups=self.max_subgroups, min_group_size=self.min_group_size,
                       min_silhouette=self.min_silhouette)
        if self.mode == "k":
            out["k"] = self.k
        if self.mode in ("auto", "k"):
            out["features"] = self.features
        if self.mode == "csv":
            out.update(csv=self.csv, column=self.column)
        return out


def parse_subgroups(
    value: object,
    *,
    max_subgroups: int = 4,
    min_group_size: int = 8,
    min_silhouette: float = 0.2,
    features: str = "colour-texture",
) -> SubgroupSetting:
    """Validate a ``subgroups`` value (``"none"``, ``"auto"``, ``K``, ``"FILE.csv:COLUMN"``)."""
    if isinstance(value, SubgroupSetting):
        return value
    allowed = '"none", "auto", a number of groups K >= 1, or "FILE.csv:COLUMN"'
    for name, number, low in (("max_subgroups", max_subgroups, 1), ("min_group_size", min_group_size, 1)):
        if isinstance(number, bool) or not isinstance(number, int) or number < low:
            raise InvalidParameterError(name, number, f"an integer >= {low}")
    if not isinstance(min_silhouette, (int, float)) or not -1 <= float(min_silhouette) <= 1:
        raise InvalidParameterError("min_silhouette", min_silhouette, "a number in [-1, 1]")
    common = dict(max_subgroups=max_subgroups, min_group_size=min_group_size,
                  min_silhouette=float(min_silhouette), features=features)
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "off", "")):
        return SubgroupSetting("none", **common)
    if isinstance(value, str) and value.strip().lower() == "auto":
        return SubgroupSetting("auto", **common)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise InvalidParameterError("subgroups", value, allowed)
        return SubgroupSetting("none", **common) if value == 1 else SubgroupSetting("k", k=value, **common)
    if isinstance(value, str) and ":" in value:
        file, _, column = value.rpartition(":")
        if not file or not column:
            raise InvalidParameterError("subgroups", value, allowed)
        if not Path(file).is_file():
            raise DatasetError(f"sub-group file {file!r} (from subgroups={value!r}) does not exist")
        return SubgroupSetting("csv", csv=str(Path(file).resolve()), column=column, **common)
    raise InvalidParameterError("subgroups", value, allowed)


# -- clustering (numpy only) ----------------------------------------------------------------
def _squared_distances(x: Any, centres: Any) -> Any:
    return ((x[:, None, :] - centres[None, :, :]) ** 2).sum(-1)


def kmeans(x: Any, k: int, *, seed: int = 0, n_init: int = 10, max_iter: int = 100) -> tuple[Any, float]:
    """k-means++ (best of ``n_init`` seeded starts): labels ``(n,)`` and inertia."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    best_labels, best_inertia = np.zeros(n, dtype=int), np.inf
    for _ in range(n_init if k > 1 else 1):
        centres = [x[rng.integers(n)]]
        for _ in range(1, k):
            d = _squared_distances(x, np.array(centres)).min(1)
            total = d.sum()
            centres.append(x[rng.choice(n, p=d / total)] if total > 0 else x[rng.integers(n)])
        centres = np.array(centres)
        labels = np.zeros(n, dtype=int)
        for _ in range(max_iter):
            labels_new = _squared_distances(x, centres).argmin(1)
            for j in range(k):
                members = x[labels_new == j]
                centres[j] = members.mean(0) if len(members) else x[rng.integers(n)]
            if np.array_equal(labels_new, labels):
                break
            labels = labels_new
        inertia = float(_squared_distances(x, centres)[np.arange(n), labels].sum())
        if inertia < best_inertia - 1e-9:
            best_labels, best_inertia = labels.copy(), inertia
    return best_labels, best_inertia


def silhouette_score(x: Any, labels: Any) -> float:
    """Mean silhouette coefficient (Euclidean); ``nan`` for fewer than two groups."""
    import numpy as np

    x, labels = np.asarray(x, dtype=np.float64), np.asarray(labels)
    groups = np.unique(labels)
    if len(groups) < 2:
        return float("nan")
    sq = (x * x).sum(1)
    d = np.sqrt((sq[:, None] + sq[None, :] - 2 * x @ x.T).clip(min=0))
    mean_to = np.stack([d[:, labels == g].sum(1) for g in groups], 1)
    sizes = np.array([(labels == g).sum() for g in groups], dtype=np.float64)
    own = np.searchsorted(groups, labels)
    rows = np.arange(len(x))
    a = mean_to[rows, own] / np.maximum(sizes[own] - 1, 1)
    other = mean_to / sizes
    other[rows, own] = np.inf
    b = other.min(1)
    s = np.where(sizes[own] > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(s.mean())


def _reduce(features: Any, max_dims: int = 8) -> Any:
    """Z-score within the class and keep the leading principal components (stable k-means)."""
    import numpy as np

    x = np.asarray(features, dtype=np.float64)
    std = x.std(0)
    x = (x - x.mean(0)) / np.where(std > 1e-12, std, 1.0)
    if len(x) < 3:
        return x
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[: min(max_dims, len(x) - 1)].T


def choose_groups(features: Any, setting: SubgroupSetting, *, seed: int = 0) -> tuple[Any, dict[str, Any]]:
    """Group labels (0 = largest group) of one class's images and how they were chosen."""
    import numpy as np

    x = _reduce(features)
    n = len(x)
    if setting.mode == "k":
        labels, _ = kmeans(x, min(setting.k or 1, n), seed=seed)
        info: dict[str, Any] = {"k": int(len(np.unique(labels)))}
    else:
        scores: dict[int, float] = {}
        best_k, best_labels, best_score = 1, np.zeros(n, dtype=int), -np.inf
        for k in range(2, min(setting.max_subgroups, n // setting.min_group_size) + 1):
            labels, _ = kmeans(x, k, seed=seed)
            sizes = np.bincount(labels, minlength=k)
            if sizes.min() < setting.min_group_size:
                continue
            scores[k] = round(silhouette_score(x, labels), 4)
            if scores[k] > best_score:
                best_k, best_labels, best_score = k, labels, scores[k]
        if best_score < setting.min_silhouette:
            best_k, best_labels = 1, np.zeros(n, dtype=int)
        labels = best_labels
        info = {"k": best_k, "silhouette": {str(k): v for k, v in scores.items()}}
    order = sorted(np.unique(labels), key=lambda g: (-(labels == g).sum(), int(np.argmax(labels == g))))
    remap = {int(g): i for i, g in enumerate(order)}
    return np.array([remap[int(g)] for g in labels]), info


# -- results ----------------------------------------------------------------------------------
@dataclass
class SubgroupAssignment:
    """The sub-groups of the classes of one run: ``groups[label][concept] = sorted image paths``."""

    setting: SubgroupSetting
    groups: dict[str, dict[str, list[Path]]] = field(default_factory=dict)
    info: dict[str, dict[str, Any]] = field(default_factory=dict)
    feature_space: str = ""

    def concepts_of(self, label: str) -> dict[str, list[Path]]:
        return self.groups.get(label, {})

    def summary(self) -> dict[str, Any]:
        """JSON-able: per class, each concept's image count and how k was chosen."""
        return {
            label: {"concepts": {name: len(paths) for name, paths in concepts.items()}, **self.info.get(label, {})}
            for label, concepts in self.groups.items()
        }

    def assignments(self) -> list[dict[str, str]]:
        """One row per image: class, concept, path."""
        return [
            {"class": label, "concept": name, "path": str(p)}
            for label, concepts in self.groups.items()
            for name, paths in concepts.items()
            for p in paths
        ]


def _csv_groups(setting: SubgroupSetting, by_class: Mapping[str, Sequence[Path]]) -> SubgroupAssignment:
    from ._generator import slugify
    from ._splitting import read_groups

    mapping = read_groups(f"{setting.csv}:{setting.column}")
    result = SubgroupAssignment(setting, feature_space="csv")
    for label, paths in by_class.items():
        values = mapping.assign([Path(p) for p in paths])
        missing = [p for p, v in values.items() if not v]
        if missing and len(missing) < len(paths):
            shown = ", ".join(Path(p).name for p in missing[:5])
            raise DatasetError(
                f"sub-group column {setting.column!r} of {setting.csv!r} has no value for {len(missing)} of the "
                f"{len(paths)} images of class {label!r} (e.g. {shown}); give every image of a class a group, "
                "or none of them (the class then stays one concept)"
            )
        names = sorted({str(v) for v in values.values() if v})
        if len(names) <= 1:
            result.groups[label] = {label: sorted(paths)}
        else:
            slugs = {v: slugify(v) for v in names}
            if len(set(slugs.values())) != len(slugs):
                raise DatasetError(f"sub-group values of class {label!r} collide as file names: {names}")
            result.groups[label] = {
                f"{label}{SEPARATOR}{slugs[v]}": sorted(p for p, g in values.items() if g == v) for v in names
            }
        result.info[label] = {"k": len(result.groups[label])}
    return result


def find_subgroups(
    by_class: Mapping[str, Sequence[Path]],
    setting: SubgroupSetting | str | int,
    *,
    feature_space: Any = None,
    seed: int = 0,
) -> SubgroupAssignment:
    """Split each class's images into sub-groups according to ``setting``.

    ``feature_space`` (an object with ``name`` and ``extract(paths)``) defaults to the
    download-free colour-texture statistics; a diffusion generator's ``features(paths)``
    (e.g. VAE latents) can be plugged in through :class:`synthaug._quality.GeneratorFeatures`.
    """
    setting = parse_subgroups(setting) if not isinstance(setting, SubgroupSetting) else setting
    if setting.mode == "none":
        return SubgroupAssignment(setting, {label: {label: sorted(paths)} for label, paths in by_class.items()})
    if setting.mode == "csv":
        return _csv_groups(setting, by_class)
    if feature_space is None:
        from ._features import ColourTextureFeatures

        feature_space = ColourTextureFeatures()
    result = SubgroupAssignment(setting, feature_space=getattr(feature_space, "name", type(feature_space).__name__))
    for label, paths in by_class.items():
        paths = sorted(paths)
        if len(paths) < 2:
            result.groups[label] = {label: paths}
            result.info[label] = {"k": 1}
            continue
        labels, info = choose_groups(feature_space.extract(paths), setting, seed=seed)
        k = int(labels.max()) + 1
        if k == 1:
            result.groups[label] = {label: paths}
        else:
            result.groups[label] = {
                f"{label}{SEPARATOR}{g}": [p for p, lab in zip(paths, labels) if lab == g] for g in range(k)
            }
        result.info[label] = info
    return result


def split_quota(total: int, sizes: Mapping[str, int]) -> dict[str, int]:
    """Share ``total`` between groups in proportion to ``sizes`` (largest remainder; sums exactly).

    Ties in the remainder go to the larger group, then to the earlier name.
    """
    if total < 0:
        raise InvalidParameterError("total", total, "a count >= 0")
    weight = sum(sizes.values())
    if not sizes or weight <= 0:
        raise InvalidParameterError("sizes", dict(sizes), "at least one group with images")
    exact = {name: total * n / weight for name, n in sizes.items()}
    out = {name: int(value) for name, value in exact.items()}
    left = total - sum(out.values())
    order = sorted(sizes, key=lambda name: (-(exact[name] - out[name]), -sizes[name], name))
    for name in order[:left]:
        out[name] += 1
    return out


# -- contact sheets ---------------------------------------------------------------------------
def write_contact_sheet(
    label: str,
    concepts: Mapping[str, Sequence[Path]],
    path: str | os.PathLike[str],
    *,
    per_row: int = 8,
    thumb: int = 96,
) -> Path:
    """A PNG with one row of thumbnails per sub-group (the first ``per_row`` images), titled."""
    from PIL import Image, ImageDraw

    from ._imageio import load_image

    title_h = 16
    rows = list(concepts.items())
    sheet = Image.new("RGB", (per_row * thumb, len(rows) * (thumb + title_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (name, paths) in enumerate(rows):
        top = r * (thumb + title_h)
        draw.text((4, top + 2), f"{name}  ({len(paths)} images)", fill="black")
        for c, p in enumerate(list(paths)[:per_row]):
            image = load_image(p)
            image.thumbnail((thumb, thumb))
            sheet.paste(image, (c * thumb + (thumb - image.width) // 2, top + title_h + (thumb - image.height) // 2))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    sheet.save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def write_subgroup_files(subgroups: SubgroupAssignment, folder: str | os.PathLike[str]) -> list[Path]:
    """Contact sheets (``<class>.png``) and ``subgroups.json`` for the classes split in groups."""
    from ._atomic import atomic_write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for label, concepts in subgroups.groups.items():
        written.append(write_contact_sheet(label, concepts, folder / f"{label}.png"))
    atomic_write_json(folder / "subgroups.json", {
        "setting": subgroups.setting.describe(),
        "feature_space": subgroups.feature_space,
        "classes": subgroups.summary(),
        "images": subgroups.assignments(),
    })
    written.append(folder / "subgroups.json")
    return written


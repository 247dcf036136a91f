"""Filters of ``synthaug filter --by SPEC`` (combinable): which synthetic images to set aside.

A spec is ``NAME``, ``NAME:THRESHOLD`` or ``NAME:key=value,...``; every filter except
``nearest-real`` also takes ``top=FRACTION`` (keep that share of each class, best first)
instead of a threshold. Each filter scores the usable (readable, not blank) synthetic images;
unusable ones are left to the ``unreadable``/``blank`` reasons.

- ``prompt-similarity[:MIN]`` — CLIP cosine similarity between the image and its class prompt
  (the manifest record's ``prompt``, else ``"a photo of <class>"``; ``prompt=TEMPLATE`` with
  ``{class}`` overrides it). Needs CLIP: the report's
  ``--features clip:FOLDER``, or ``model=FOLDER``. Default ``top=0.9``.
- ``classifier-confidence[:MIN]`` — the probability of its own class under a small classifier
  trained on the real training images only (:mod:`.confidence`; options ``model=``,
  ``steps=``, ``size=``). Default 0.3.
- ``nearest-real[:near=F,far=Q]`` — distance to the nearest real training image in the report's
  feature space. ``near``: reject an image closer to *any* real image than ``F`` times the
  median distance between a real image and its nearest other real image (a near-copy: real
  photos are never that close to each other); ``far``: reject one farther from every real
  image *of its class* than the ``Q`` quantile of that class's nearest-other distances (an
  outlier). Defaults ``near=0.05,far=0.99``.
- ``outlier[:FACTOR]`` — per class, mean distance to the 3 nearest real images above ``FACTOR``
  times the real images' 99th percentile (the report's density rule; default its
  ``--outlier-factor``).
- ``copy``, ``blank``, ``unreadable`` — the report's own flags.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._errors import InvalidParameterError

__all__ = ["FILTERS", "FilterSpec", "apply_filters", "parse_filter"]

FILTERS = ("prompt-similarity", "classifier-confidence", "nearest-real", "outlier", "copy", "blank", "unreadable")
_KEYS = {
    "prompt-similarity": {"min", "top", "model", "prompt"},
    "classifier-confidence": {"min", "top", "model", "steps", "size"},
    "nearest-real": {"near", "far"},
    "outlier": {"min", "top"},
}
_DEFAULTS = {"prompt-similarity": {"top": "0.9"}, "classifier-confidence": {"min": "0.3"},
             "nearest-real": {"near": "0.05", "far": "0.99"}, "outlier": {}}


@dataclass
class FilterSpec:
    """One ``--by`` filter: its name and options (``min`` threshold or ``top`` fraction, …)."""

    name: str
    options: dict[str, str] = field(default_factory=dict)
    text: str = ""

    def number(self, key: str, low: float = -math.inf, high: float = math.inf) -> float | None:
        if key not in self.options:
            return None
        try:
            value = float(self.options[key])
        except ValueError:
            value = math.nan
        if not low <= value <= high:
            raise InvalidParameterError("--by", self.text, f"{key}= a number in [{low}, {high}]")
        return value


def parse_filter(text: str) -> FilterSpec:
    """A :class:`FilterSpec` from ``NAME[:VALUE | :key=value,...]`` (see the module docstring)."""
    head, _, rest = text.strip().partition(":")
    name = head.strip().lower().replace("_", "-")
    if name not in FILTERS:
        raise InvalidParameterError("--by", text, "one of " + ", ".join(FILTERS) + " (NAME or NAME:OPTIONS)")
    allowed = _KEYS.get(name, set())
    options: dict[str, str] = {}
    for token in (t.strip() for t in rest.split(",") if t.strip()):
        key, eq, value = token.partition("=")
        if not eq:
            key, value = "min", key
        key = key.strip().lower()
        if key not in allowed:
            what = ", ".join(sorted(allowed)) if allowed else "no options"
            raise InvalidParameterError("--by", text, f"{name} takes {what}")
        options[key] = value.strip()
    if "min" in options or "top" in options:
        options = {**{k: v for k, v in _DEFAULTS.get(name, {}).items() if k not in ("min", "top")}, **options}
    else:
        options = {**_DEFAULTS.get(name, {}), **options}
    spec = FilterSpec(name, options, text.strip())
    if spec.number("top", 0, 1) == 0:
        raise InvalidParameterError("--by", text, "top= a fraction in (0, 1]")
    for key in ("near", "far"):
        spec.number(key, 0, 1)
    return spec


def _keep_by_score(scores: Any, labels: Any, spec: FilterSpec) -> Any:
    """Keep mask from ``min`` (score >= min) or ``top`` (best share of each class); NaN scores are kept."""
    import numpy as np

    keep = np.ones(len(scores), dtype=bool)
    top, low = spec.number("top", 0, 1), spec.number("min")
    for label in np.unique(labels):
        idx = np.flatnonzero((labels == label) & np.isfinite(scores))
        if top is not None:
            n_keep = math.ceil(top * len(idx))
            order = idx[np.argsort(-scores[idx], kind="stable")]
            keep[order[n_keep:]] = False
        elif low is not None:
            keep[idx[scores[idx] < low]] = False
    return keep


def _nearest_real(report: Any, spec: FilterSpec) -> tuple[Any, Any]:
    import numpy as np
    from sklearn.neighbors import NearestNeighbors

    real, synth = report.sides[0], report.sides[1]
    rf, rl = real.features[real.usable], real.labels[real.usable]
    sf, sl, su = synth.features, synth.labels, synth.usable
    keep, score = np.ones(len(sl), dtype=bool), np.full(len(sl), np.nan)
    near_q, far_q = spec.number("near", 0, 1), spec.number("far", 0, 1)
    if len(rf) >= 2 and su.any():
        any_nn = NearestNeighbors(n_neighbors=2).fit(rf)
        near_limit = near_q * float(np.median(any_nn.kneighbors(rf)[0][:, 1]))
        d_any = any_nn.kneighbors(sf[su], n_neighbors=1)[0][:, 0]
        keep[np.flatnonzero(su)[d_any < near_limit]] = False
    for label in np.unique(sl[su]):
        members = rf[rl == label]
        idx = np.flatnonzero(su & (sl == label))
        if len(members) < 2:
            continue
        nn = NearestNeighbors(n_neighbors=2).fit(members)
        far_limit = np.quantile(nn.kneighbors(members)[0][:, 1], far_q)
        score[idx] = nn.kneighbors(sf[idx], n_neighbors=1)[0][:, 0]
        keep[idx[score[idx] > far_limit]] = False
    return keep, score


def _outlier(report: Any, spec: FilterSpec) -> tuple[Any, Any]:
    import numpy as np

    factor = report.settings["outlier_factor"]
    ratio = np.array([im.outlier_score * factor for im in report.images])  # 3-NN distance / real 99th percentile
    if "min" not in spec.options and "top" not in spec.options:
        spec = FilterSpec(spec.name, {**spec.options, "min": str(-factor)}, spec.text)
    else:
        spec = FilterSpec(spec.name, {k: (str(-float(v)) if k == "min" else v) for k, v in spec.options.items()},
                          spec.text)
    return _keep_by_score(-ratio, report.sides[1].labels, spec), ratio


def _prompts(report: Any) -> list[str]:
    return [(im.record or {}).get("prompt") or f"a photo of {im.label.replace('_', ' ').replace('-', ' ')}"
            for im in report.images]


def _prompt_similarity(report: Any, spec: FilterSpec, device: str) -> tuple[Any, Any]:
    import numpy as np

    synth, space = report.sides[1], report.sides[3]
    images = synth.features
    if "model" in spec.options:
        from .._extractors import resolve_feature_space

        space, images = resolve_feature_space(f"clip:{spec.options['model']}", device=device)[0], None
    if not callable(getattr(space, "text_features", None)):
        raise InvalidParameterError("--by", spec.text, "prompt-similarity with CLIP features",
                                    "give --features clip:FOLDER or prompt-similarity:model=FOLDER")
    idx = np.flatnonzero(synth.usable)
    if images is None:
        embedded = np.asarray(space.extract([synth.paths[i] for i in idx]), dtype=np.float64)
        images = np.full((len(synth.paths), embedded.shape[1]), np.nan)
        images[idx] = embedded
    template = spec.options.get("prompt")
    prompts = [template.replace("{class}", im.label) if template else p for im, p in zip(report.images, _prompts(report))]
    unique = sorted({prompts[i] for i in idx})
    text = np.asarray(space.text_features(unique), dtype=np.float64) if unique else np.zeros((0, 1))
    by_prompt = dict(zip(unique, text / np.linalg.norm(text, axis=1, keepdims=True)))
    score = np.full(len(synth.paths), np.nan)
    for i in idx:
        score[i] = float(images[i] / max(np.linalg.norm(images[i]), 1e-12) @ by_prompt[prompts[i]])
    return _keep_by_score(score, synth.labels, spec), score


def _classifier(report: Any, spec: FilterSpec, device: str, seed: int) -> tuple[Any, Any]:
    import numpy as np

    from .confidence import own_class_probability

    real, synth = report.sides[0], report.sides[1]
    idx = np.flatnonzero(synth.usable)
    kwargs = {"model": spec.options.get("model", "small-cnn"), "seed": seed, "device": device}
    for key in ("steps", "size"):
        if key in spec.options:
            kwargs[key] = int(spec.number(key, 1, 1e7))
    real_idx = np.flatnonzero(real.usable)
    probs = own_class_probability([real.paths[i] for i in real_idx], [str(real.labels[i]) for i in real_idx],
                                  [synth.paths[i] for i in idx], [str(synth.labels[i]) for i in idx], **kwargs)
    score = np.full(len(synth.paths), np.nan)
    score[idx] = probs
    return _keep_by_score(score, synth.labels, spec), score


def _flagged(report: Any, name: str) -> tuple[Any, Any]:
    import numpy as np

    return np.array([name not in im.flags for im in report.images]), np.full(len(report.images), np.nan)


def apply_filters(report: Any, specs: Sequence[FilterSpec], *, device: str = "auto", seed: int = 0) -> dict[str, Any]:
    """Run ``specs`` on ``report``; flag rejected images with the filter name; return keep rates.

    The rates (``{filter: {class: {"n", "kept", "rate"}}}``, plus ``"all filters"``) count the
    usable synthetic images of each class and are stored on ``report.filters``.
    """
    import numpy as np

    labels = report.sides[1].labels
    usable = report.sides[1].usable
    combined = np.ones(len(labels), dtype=bool)
    rates: dict[str, Any] = {}
    for spec in specs:
        if spec.name == "nearest-real":
            keep, _ = _nearest_real(report, spec)
        elif spec.name == "outlier":
            keep, _ = _outlier(report, spec)
        elif spec.name == "prompt-similarity":
            keep, _ = _prompt_similarity(report, spec, device)
        elif spec.name == "classifier-confidence":
            keep, _ = _classifier(report, spec, device, seed)
        else:
            keep, _ = _flagged(report, spec.name)
        for im, kept in zip(report.images, keep):
            if not kept and spec.name not in im.flags:
                im.flags.append(spec.name)
            elif kept and spec.name == "outlier" and "outlier" in im.flags:  # this filter's factor decides
                im.flags.remove("outlier")
        combined &= keep
        rates[spec.text or spec.name] = _rates(labels, usable, keep)
    if len(specs) > 1:
        rates["all filters"] = _rates(labels, usable, combined)
    report.filters = rates
    return rates


def _rates(labels: Any, usable: Any, keep: Any) -> dict[str, Any]:

    out = {}
    for label in sorted(set(labels.tolist())):
        members = (labels == label) & usable
        n, kept = int(members.sum()), int((members & keep).sum())
        out[str(label)] = {"n": n, "kept": kept, "rate": round(kept / n, 4) if n else None}
    return out

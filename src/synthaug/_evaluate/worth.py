"""How many real images an experiment is "worth": read off the learning curve of real data.

The ``real-fraction-F`` experiments and the baseline (F = 1) give, per split and metric, a
curve ``F -> metric``. For another experiment with mean ``m`` the **worth** is the smallest
fraction at which the piecewise-linear real-only curve reaches ``m`` (linear interpolation
between neighbouring fractions), times the real training images of the baseline. Reported:
the worth from the curve of means, and its spread from the per-split worths (each split's
curve and the experiment's value on that split). A value below the curve's first point or
above its last (beyond all real images) is not extrapolated: it is reported as a bound.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .metrics import SCALAR_METRICS, mean_std

__all__ = ["crossing", "real_worth", "worth_table", "worth_markdown", "plot_worth", "WORTH_NOTE"]


def crossing(points: Sequence[tuple[float, float]], target: float) -> dict[str, Any]:
    """``{"fraction", "bound"}``: the smallest ``F`` where the curve through ``points`` (sorted by
    F) reaches ``target``; ``bound`` is ``"below"`` (target at or under the first point: at most
    its F) or ``"above"`` (never reached: more than all real images), else None."""
    pts = sorted(points)
    if target <= pts[0][1]:
        return {"fraction": pts[0][0], "bound": "below"}
    for (f0, y0), (f1, y1) in zip(pts, pts[1:]):
        if y0 < target <= y1:
            return {"fraction": f0 + (target - y0) / (y1 - y0) * (f1 - f0), "bound": None}
    return {"fraction": pts[-1][0], "bound": "above"}


def _curve(exps: Mapping[str, Any]) -> list[tuple[float, str]]:
    fractions = [(e["fraction"], name) for name, e in exps.items() if e.get("kind") == "real-fraction"]
    return sorted(fractions) + [(1.0, "baseline")] if fractions else []


def _per_split_value(e: Mapping[str, Any], k: int, metric: str) -> float | None:
    value = e["per_split"][k]["test"].get(metric)
    return None if value is None or value != value else float(value)


def real_worth(exps: Mapping[str, Any]) -> dict[str, Any] | None:
    """report.json's ``real_worth`` (None without real-fraction experiments): the curve and, per
    other experiment and metric, its worth as a fraction and in real images."""
    curve = _curve(exps)
    if not curve:
        return None
    n_real = mean_std([r["n_train"] for r in exps["baseline"]["per_split"]])["mean"]
    n_splits = len(exps["baseline"]["per_split"])
    out: dict[str, Any] = {"fractions": [f for f, _ in curve], "experiments": [n for _, n in curve],
                           "n_real_train": n_real, "curve": {}, "worth": {}}
    for metric in SCALAR_METRICS:
        out["curve"][metric] = [exps[name]["test"][metric] for _, name in curve]
    for name, e in exps.items():
        if name == "baseline" or e.get("kind") == "real-fraction":
            continue
        worth = {}
        for metric in SCALAR_METRICS:
            means = [(f, exps[n]["test"][metric]["mean"]) for f, n in curve]
            target = e["test"][metric]["mean"]
            if target is None or any(y is None for _, y in means):
                continue
            at_mean = crossing(means, target)
            splits = []
            for k in range(n_splits):
                pts = [(f, _per_split_value(exps[n], k, metric)) for f, n in curve]
                value = _per_split_value(e, k, metric)
                if value is not None and all(y is not None for _, y in pts):
                    splits.append(crossing(pts, value))
            spread = mean_std([s["fraction"] for s in splits])
            worth[metric] = {**at_mean, "images": at_mean["fraction"] * n_real,
                             "per_split": [s["fraction"] for s in splits],
                             "per_split_bounds": sum(1 for s in splits if s["bound"]), "std": spread["std"]}
        out["worth"][name] = worth
    return out


_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced acc.", "macro_f1": "macro-F1"}
WORTH_NOTE = ("Worth: the share of the real training images at which the real-only learning curve "
              "(real-fraction experiments and the baseline at 100%) reaches the experiment's mean test figure, by "
              "linear interpolation; ± is the standard deviation of the same reading on each split's own curve. "
              "'≤' means the experiment is no better than the smallest fraction; '> all real' means it beats every point "
              "of the real-only curve, which therefore cannot price it.")


def _cell(w: Mapping[str, Any], n_real: float) -> str:
    spread = f" ± {w['std'] * 100:.0f}" if w.get("std") is not None and len(w.get("per_split", [])) > 1 else ""
    if w["bound"] == "above":
        return f"> all real ({n_real:.0f} images)"
    prefix = "≤ " if w["bound"] == "below" else ""
    return f"{prefix}{w['fraction'] * 100:.0f}%{spread} ({prefix}{w['images']:.0f} images)"


def worth_table(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """The "worth in real images" table of report.md and report.html (None without a curve)."""
    worth = report.get("real_worth")
    if not isinstance(worth, Mapping) or not worth.get("worth"):
        return None
    n_real = worth["n_real_train"]
    rows = [[name, *(_cell(w[m], n_real) if m in w else "–" for m in SCALAR_METRICS)]
            for name, w in worth["worth"].items()]
    curve = ", ".join(f"{f * 100:g}%: {(worth['curve']['balanced_accuracy'][i]['mean'] or 0) * 100:.1f}"
                      for i, f in enumerate(worth["fractions"]))
    return {"title": f"Worth in real images (of {n_real:.0f} real training images per split)",
            "header": ["experiment", *(f"worth by {_NAMES[m]}" for m in SCALAR_METRICS)], "rows": rows,
            "note": f"{WORTH_NOTE} Real-only curve of test balanced accuracy: {curve}."}


def worth_markdown(report: Mapping[str, Any]) -> list[str]:
    """report.md's section for :func:`worth_table`."""
    table = worth_table(report)
    if table is None:
        return []
    marks = [":---", *("---:" for _ in table["header"][1:])]
    return [f"## {table['title']}", "", "| " + " | ".join(table["header"]) + " |", "| " + " | ".join(marks) + " |",
            *("| " + " | ".join([f"`{r[0]}`", *r[1:]]) + " |" for r in table["rows"]), "", table["note"], ""]


def plot_worth(report: Mapping[str, Any], path: Any, metric: str = "balanced_accuracy") -> bool:
    """plots/real_fraction_curve.png: the real-only curve (mean ± std, x in real images) and each
    experiment's mean as a horizontal line with its worth marked; False without a curve."""
    import matplotlib.pyplot as plt

    worth = report.get("real_worth")
    if not worth:
        return False
    n_real = worth["n_real_train"]
    xs = [f * n_real for f in worth["fractions"]]
    stats = worth["curve"][metric]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.errorbar(xs, [s["mean"] * 100 for s in stats], yerr=[s["std"] * 100 for s in stats], marker="o",
                capsize=3, color="black", label="real images only")
    for name, w in worth["worth"].items():
        y = report["experiments"][name]["test"][metric]["mean"] * 100
        line = ax.axhline(y, linestyle="--", linewidth=1, label=name)
        if metric in w and w[metric]["bound"] is None:
            ax.plot([w[metric]["images"]], [y], marker="D", color=line.get_color())
            ax.annotate(f"≈ {w[metric]['images']:.0f}", (w[metric]["images"], y), textcoords="offset points",
                        xytext=(4, 4), fontsize=8, color=line.get_color())
    ax.set_xlabel("real training images")
    ax.set_ylabel(f"test {_NAMES[metric]} (%)")
    ax.set_title("what each experiment is worth in real images (dashed: its mean)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True

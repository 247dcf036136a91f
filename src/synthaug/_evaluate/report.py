"""Writing an evaluation: ``report.json``, ``report.md`` (tables) and matplotlib plots."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_bytes
from .report_clinical import clinical_markdown, count_cell, few_images_note, metric_name, verdict_notes
from .stats import MIN_RUNS, TOO_FEW
from .worth import plot_worth, worth_markdown

__all__ = ["write_report", "render_markdown", "warning_texts", "split_test_counts", "PLOT_FILES"]

#: Plot files (relative to the output folder); one confusion matrix per experiment besides.
PLOT_FILES = {"accuracy_vs_share": "plots/test_accuracy_vs_synthetic_share.png",
              "per_class_recall": "plots/per_class_recall.png",
              "paired_differences": "plots/paired_balanced_accuracy.png"}


def _pm(stat: Mapping[str, Any] | None, scale: float = 100.0, signed: bool = False) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    sign = "+" if signed else ""
    return f"{stat['mean'] * scale:{sign}.2f} ± {stat['std'] * scale:.2f}"


def _table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    marks = [":---" if a == "l" else "---:" for a in align]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |",
            *("| " + " | ".join(r) + " |" for r in rows), ""]


_METRIC_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced acc.", "macro_f1": "macro-F1"}


def _num(value: float | None, signed: bool = False) -> str:
    return "–" if value is None else f"{value * 100:{'+' if signed else ''}.2f}"


def _p(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}" if value >= 0.001 else "<0.001"


def _interval(r: Mapping[str, Any]) -> str:
    if r["verdict"] == TOO_FEW:
        return "– (too few runs)"
    if r["ci_low"] is None:
        return "–"
    return f"[{_num(r['ci_low'], True)}, {_num(r['ci_high'], True)}]" + (" ‡" if r.get("clipped") else "")


def _verdict_rows(rows: Sequence[Mapping[str, Any]], name=lambda m: _METRIC_NAMES.get(m, m)) -> list[list[str]]:
    return [[f"`{r['experiment']}`", name(r["metric"]), _num(r["mean"], signed=True), _interval(r),
             _p(r["wilcoxon_p"]), str(r["n"]), f"**{r['verdict']}**"] for r in rows]


def _verdict_lines(report: Mapping[str, Any]) -> list[str]:
    stats = report["statistics"]
    header = ["experiment", "metric", "Δ mean", "interval", "Wilcoxon p", "runs", "verdict"]
    lines = ["## Verdicts", "",
             f"Paired difference experiment − baseline on the same split (percentage points), its "
             f"{stats['confidence'] * 100:g}% interval by the corrected resampled t-test (Nadeau–Bengio; "
             f"test/train ratio {stats['test_train_ratio']:.3f}), and the two-sided Wilcoxon signed-rank p-value. "
             f"Verdict: `better`/`worse` when the interval excludes 0, else `no evidence`; `{TOO_FEW}` below "
             f"{MIN_RUNS} paired runs.", ""]
    lines += _table(header, _verdict_rows(report["verdicts"]))
    clinical = report.get("clinical_verdicts") or []
    if clinical:
        positive = report.get("config", {}).get("positive")
        lines += ["Clinical metrics (for ECE, lower is better: `better` means a lower calibration error):", ""]
        lines += _table(header, _verdict_rows(clinical, lambda m: metric_name(m, positive)))
    for note in verdict_notes(report):
        lines += [note, ""]
    return lines


def warning_texts(report: Mapping[str, Any]) -> list[str]:
    """The warnings of report.md and report.html (under-trained, near chance), Markdown-marked."""
    lines = []
    for name, e in report["experiments"].items():
        c = e.get("convergence", {})
        if c.get("possibly_undertrained"):
            lines.append(f"**`{name}` may be under-trained**: {c['late_runs']} of {c['runs']} runs had their best "
                         f"checkpoint in the last 10% of the budget; {c['advice']}.")
        if e.get("near_chance"):
            lines.append(f"**`{name}` is near chance**: mean test balanced accuracy "
                         f"{e['test']['balanced_accuracy']['mean'] * 100:.1f}% with {len(report['classes'])} classes; "
                         "this classifier does not learn here (try a larger budget, a pretrained --model factory, "
                         "or small-cnn instead of a MobileNet from random weights).")
    return lines


def _warning_lines(report: Mapping[str, Any]) -> list[str]:
    lines = [f"- {text}" for text in warning_texts(report)]
    return ["## Warnings", "", *lines, ""] if lines else []


def _compute_lines(report: Mapping[str, Any]) -> list[str]:
    """Where the trainings ran: device(s) and precision (report.json ``compute``)."""
    c = report.get("compute")
    if not c:
        return []
    return [f"Device: {c['devices']} (asked: `--device {c['device_requested']}`), precision {c['precision']}.", ""]


def render_markdown(report: Mapping[str, Any]) -> str:
    """The human-readable report: verdicts, warnings, summary, per-class recall, per split."""
    exps: Mapping[str, Any] = report["experiments"]
    classes = report["classes"]
    split = report["splits"]
    train = report["train"]
    lines = ["# synthaug evaluation", ""]
    lines += _verdict_lines(report) + _warning_lines(report)
    if report.get("command"):
        lines += ["Command:", "", "```", report["command"], "```", ""]
    lines += [
        f"Data: `{report['data']['path']}`: {report['data']['n_images']} images, {len(classes)} classes. "
        f"Splits: {split['method']}, {split['n']} split(s) (`{split['file']}`); validation and test images "
        "are real only and shared by every experiment of a split.",
        "",
        f"Classifier: {train['backend']} / {train['model']}, weights `{train['weights']}`, "
        f"{train['image_size']} px, batch {train['batch_size']}, "
        + (f"{train['steps']} steps" if train.get("steps") else f"{train['epochs']:g} baseline epochs")
        + f", checkpoint selected by validation {train['select'].replace('_', ' ')}. "
        "Every experiment of a split trains the same number of steps.",
        "",
        *_compute_lines(report),
        "Values are percentages, mean ± std across splits; Δ columns are paired differences "
        "(experiment − baseline on the same split).",
        "",
        "## Test results",
        "",
    ]
    rows = []
    for name, e in exps.items():
        d = e["vs_baseline"]
        base = name == "baseline"
        rows.append([f"`{name}`", f"{e['synthetic_share'] * 100:.1f}", _pm(e["test"]["accuracy"]),
                     _pm(e["test"]["balanced_accuracy"]), _pm(e["test"]["macro_f1"]),
                     "–" if base else _pm(d["accuracy"], signed=True),
                     "–" if base else _pm(d["balanced_accuracy"], signed=True),
                     "–" if base else _pm(d["macro_f1"], signed=True)])
    lines += _table(["experiment", "synthetic %", "accuracy", "balanced acc. (mean recall)", "macro-F1",
                     "Δ accuracy", "Δ balanced acc.", "Δ macro-F1"], rows)
    lines += ["## Per-class test recall", ""]
    counts = split_test_counts(exps["baseline"]["per_split"], classes)
    rows = [[f"`{c}`", str(report["data"]["class_counts"].get(c, 0)), count_cell(counts[c]),
             *(_pm(e["test"]["per_class_recall"][c]) for e in exps.values())] for c in classes]
    lines += _table(["class", "images (all)", "test images per split", *(f"`{n}`" for n in exps)], rows)
    note = few_images_note(counts)
    lines += [note, ""] if note else []
    lines += worth_markdown(report)
    lines += clinical_markdown(report)
    lines += ["## Test balanced accuracy per split", ""]
    n = split["n"]
    rows = [[f"`{name}`", *(f"{r['test']['balanced_accuracy'] * 100:.2f}" for r in e["per_split"])]
            for name, e in exps.items()]
    lines += _table(["experiment", *(f"split {k}" for k in range(n))], rows)
    lines += ["## Training sets (split 0)", ""]
    rows = []
    for name, e in exps.items():
        r = e["per_split"][0]
        counts = r["train_counts"]
        rows.append([f"`{name}`", *(f"{counts[c]['real']}+{counts[c]['synthetic']}" for c in classes),
                     str(r["steps"]), str(r["best_step"]), f"{r['seconds']:.0f}"])
    lines += ["Real + synthetic images per class (oversampling repeats real images; class weights change the loss).", ""]
    lines += _table(["experiment", *classes, "steps", "best step", "seconds"], rows)
    lines += ["## Best checkpoint per split", "",
              "Step of the selected checkpoint (budget in the header); `*` marks one in the last 10% of the budget.", ""]
    rows = [[f"`{name}`", *(f"{r['best_step']}{'*' if r.get('late_best') else ''}" for r in e["per_split"])]
            for name, e in exps.items()]
    lines += _table(["experiment", *(f"split {k}" for k in range(n))], rows)
    lines += ["## Plots", ""]
    for key, path in report.get("plots", {}).items():
        lines += [f"![{key}]({path})", ""]
    return "\n".join(lines)


def split_test_counts(per_split: Sequence[Mapping[str, Any]], classes: Sequence[str]) -> dict[str, list[int]]:
    """Per class, its test images in each split (row sums of the splits' confusion matrices)."""
    return {c: [sum(r["test"]["confusion_matrix"][i]) for r in per_split] for i, c in enumerate(classes)}


def _plot_accuracy_vs_share(report: Mapping[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    exps = report["experiments"]
    sweep = [(0.0, exps["baseline"])] + sorted(
        ((e["synthetic_share"], e) for e in exps.values() if "share" in e), key=lambda pair: pair[0])
    if len(sweep) > 1:
        xs = [s * 100 for s, _ in sweep]
        ys = [e["test"]["accuracy"]["mean"] * 100 for _, e in sweep]
        es = [e["test"]["accuracy"]["std"] * 100 for _, e in sweep]
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label="proportion sweep")
    span = max([e["synthetic_share"] * 100 for e in exps.values()] + [10.0])
    seen: dict[int, int] = {}
    for name, e in exps.items():
        if "share" in e:
            continue
        x, y = e["synthetic_share"] * 100, e["test"]["accuracy"]["mean"] * 100
        slot = round(x)
        x += seen.get(slot, 0) * span * 0.012  # spread points that share an x so their error bars stay visible
        seen[slot] = seen.get(slot, 0) + 1
        ax.errorbar([x], [y], yerr=[e["test"]["accuracy"]["std"] * 100], marker="s", capsize=3, linestyle="none",
                    label=name)
    ax.set_xlabel("synthetic share of the training set (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"test accuracy (mean ± std over {report['splits']['n']} splits)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_recall(report: Mapping[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    exps = report["experiments"]
    classes = report["classes"]
    width = 0.8 / len(exps)
    fig, ax = plt.subplots(figsize=(max(6.5, 1.2 * len(classes) + 2), 4.5))
    x = np.arange(len(classes))
    for i, (name, e) in enumerate(exps.items()):
        stats = [e["test"]["per_class_recall"][c] for c in classes]
        means = [(s["mean"] or 0) * 100 for s in stats]
        stds = [(s["std"] or 0) * 100 for s in stats]
        ax.bar(x + (i - (len(exps) - 1) / 2) * width, means, width, yerr=stds, capsize=2, label=name)
    ax.set_xticks(x, [c.replace("_", "\n") for c in classes], fontsize=8)
    ax.set_ylabel("test recall (%)")
    ax.set_ylim(0, 105)
    ax.set_title("per-class test recall (mean ± std over splits)")
    ax.legend(fontsize=8, ncols=min(len(exps), 6), loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_paired(report: Mapping[str, Any], path: Path) -> None:
    """Per-split Δ balanced accuracy (dots) and its corrected interval (bar) per experiment."""
    import matplotlib.pyplot as plt

    rows = [(name, e["vs_baseline"]["balanced_accuracy"]) for name, e in report["experiments"].items()
            if name != "baseline"]
    fig, ax = plt.subplots(figsize=(6.5, 0.6 * max(len(rows), 1) + 1.6))
    for i, (_name, d) in enumerate(rows):
        diffs = [v * 100 for v in d["per_split"] if v is not None]
        ax.scatter(diffs, [i] * len(diffs), s=14, alpha=0.6, color="grey")
        if d.get("ci_low") is not None:
            ax.plot([d["ci_low"] * 100, d["ci_high"] * 100], [i, i], linewidth=3, label=None)
        ax.plot([d["mean"] * 100], [i], marker="D", color="black")
        ax.text(1.01, i, d.get("verdict", ""), transform=ax.get_yaxis_transform(), va="center", fontsize=8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_yticks(range(len(rows)), [name for name, _ in rows], fontsize=8)
    ax.set_xlabel("Δ test balanced accuracy vs baseline (points): splits, mean, interval")
    ax.set_title("paired differences (corrected resampled-t interval)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_confusion(report: Mapping[str, Any], name: str, path: Path) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    classes = report["classes"]
    cm = np.asarray(report["experiments"][name]["test"]["confusion_matrix_sum"], dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig, ax = plt.subplots(figsize=(0.7 * len(classes) + 2.8, 0.7 * len(classes) + 2.2))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    import textwrap

    short = ["\n".join(textwrap.wrap(c.replace("_", " "), 16, break_long_words=True)) or c for c in classes]
    ax.set_xticks(range(len(classes)), short, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), short, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{name}: test confusion (summed over splits, colour = row share)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _make_plots(report: dict[str, Any], out: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    files = dict(PLOT_FILES)
    _plot_accuracy_vs_share(report, out / files["accuracy_vs_share"])
    _plot_recall(report, out / files["per_class_recall"])
    _plot_paired(report, out / files["paired_differences"])
    if plot_worth(report, out / "plots" / "real_fraction_curve.png"):
        files["real_fraction_curve"] = "plots/real_fraction_curve.png"
    for name in report["experiments"]:
        files[f"confusion_{name}"] = f"plots/confusion_{name}.png"
        _plot_confusion(report, name, out / files[f"confusion_{name}"])
    return files


def write_report(report: dict[str, Any], out: Path, *, plots: bool = True) -> None:
    """Write plots (when ``plots``), ``report.json`` and ``report.md`` into ``out``."""
    if plots:
        from .._optional import require

        require("matplotlib", purpose="the plots of `synthaug evaluate` (or pass --no-plots)")
        report["plots"] = _make_plots(report, out)
    else:
        report["plots"] = {}
    atomic_write_bytes(out / "report.json", (json.dumps(report, indent=1, default=str) + "\n").encode())
    atomic_write_bytes(out / "report.md", (render_markdown(report) + "\n").encode())

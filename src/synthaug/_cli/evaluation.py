"""``synthaug evaluate``: the command-line face of :func:`synthaug.run_evaluation`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .._errors import InvalidParameterError
from .._evaluate.config import DEFAULT_EPOCHS, SELECT_METRICS
from .._hookspecs import hookimpl
from .._html_report import write_html_report
from .common import command_line

__all__ = ["evaluate_cmd", "register_commands"]


def _floats(text: str | None, option: str) -> list[float]:
    if not text:
        return []
    out = []
    for part in text.replace(";", ",").split(","):
        part = part.strip().rstrip("%")
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise InvalidParameterError(option, text, "comma-separated numbers, e.g. 0.1,0.3,0.6") from None
        out.append(value / 100 if value > 1 else value)
    return out


def _strengths(text: str | None) -> list[float]:
    """``--strengths``: comma-separated numbers in (0, 1] (no percentages: 1 means strength 1.0)."""
    out = []
    for part in (text or "").replace(";", ",").split(","):
        if part.strip():
            try:
                out.append(float(part))
            except ValueError:
                raise InvalidParameterError("--strengths", text, "comma-separated numbers in (0, 1], e.g. "
                                                                 "0.25,0.5,0.75,1.0") from None
    return out


def _names(values: tuple[str, ...]) -> list[str]:
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


@click.command("evaluate")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Output folder (report.json, report.md, splits.json, plots/, work/).")
@click.option("--experiments", "-e", "experiments", multiple=True, default=("upsample",), show_default=True,
              metavar="NAMES", help="Comma-separated experiment kinds: baseline (always run), upsample, proportion, "
              "oversample, class-weights, classic, real-fraction (and any registered kind). The experiment "
              "'upsample' fills the minority classes with the images of -g/--synthetic (without them: the classic "
              "generator, as balance does); the experiment 'classic' is upsample always with the generator "
              "'classic' (flips, rotations, crops and colour jitter of real images), a reference point beside -g. "
              "real-fraction trains the baseline on --fractions of the real images (a learning curve).")
@click.option("--fractions", default=None, metavar="LIST",
              help="Fractions of the real training images for real-fraction, e.g. 0.25,0.5,0.75; the report says "
              "how many real images each experiment is worth.")
@click.option("--shares", default=None, metavar="LIST",
              help="Synthetic shares of the proportion experiment, e.g. 0.1,0.3,0.6,1.0 (or percentages).")
@click.option("--strengths", default=None, metavar="LIST",
              help="Img2img strengths of the generator, one experiment each (strength-S), e.g. 0.25,0.5,0.75,1.0.")
@click.option("--label-mode", type=click.Choice(["hard", "soft"]), default="hard", show_default=True,
              help="soft: train on the records' soft labels (Diff-Mix) with soft cross-entropy; hard: class indices.")
@click.option("--proportion-mode", type=click.Choice(["replace", "add"]), default="replace", show_default=True,
              help="replace: same class sizes, a share of real images swapped for synthetic; add: synthetic added.")
@click.option("--upsample", "upsample", default="auto", show_default=True, metavar="SPEC",
              help="Classes upsample/classic fill up: auto (all but the largest), minority, rarest:K, or CLASS,CLASS.")
@click.option("--generator", "-g", default=None, help="Generator to fit per split and generate with.")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE", help="Generator option (repeatable).")
@click.option("--synthetic", "synthetic", multiple=True, type=click.Path(path_type=Path),
              help="Existing synthaug output folder, one per split in split order (instead of --generator).")
@click.option("--splits", "n_splits", type=int, default=None, help="K random stratified (grouped) splits [default: 3].")
@click.option("--repeats", type=int, default=None,
              help="Repeated stratified (grouped) k-fold: number of repeats; recommended: --repeats 5 --folds 5.")
@click.option("--folds", type=int, default=None, help="Repeated stratified k-fold: number of folds (>= 3).")
@click.option("--splits-file", type=click.Path(path_type=Path), default=None,
              help='JSON {"splits": [{"train": [...], "val": [...], "test": [...]}]} of stems or relative paths.')
@click.option("--val", type=float, default=0.15, show_default=True, help="Validation fraction (random splits).")
@click.option("--test", type=float, default=0.15, show_default=True, help="Test fraction (random splits).")
@click.option("--groups", default=None, metavar="FILE.csv:COLUMN", help="Keep groups together, e.g. labels.csv:lesion_id.")
@click.option("--backend", type=click.Choice(["torch", "keras"]), default="torch", show_default=True)
@click.option("--model", default="small-cnn", show_default=True, metavar="NAME|MODULE:FUNCTION",
              help="small-cnn, mobilenet (backbone under the thesis head), or a model factory "
              "package.module:function returning a torch.nn.Module / keras.Model for n_classes.")
@click.option("--alpha", type=float, default=0.25, show_default=True, help="MobileNet width multiplier.")
@click.option("--weights", default="none", show_default=True, help="imagenet (keras; a download), none, or a weights file.")
@click.option("--image-size", type=int, default=64, show_default=True, help="Square input size in pixels.")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--epochs", type=float, default=DEFAULT_EPOCHS, show_default=True,
              help="Budget in epochs of the baseline.")
@click.option("--steps", type=int, default=None, help="Budget in optimizer steps (overrides --epochs).")
@click.option("--eval-every", type=int, default=None, help="Validate every N steps [default: one baseline epoch].")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Adam learning rate.")
@click.option("--no-augment", is_flag=True, help="Train without random flips and rotations.")
@click.option("--select", type=click.Choice(list(SELECT_METRICS)), default="balanced_accuracy", show_default=True,
              help="Validation metric that selects the tested checkpoint (loss: the lowest validation loss).")
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda|cuda:N",
              help="Torch device of the classifier: auto (the first GPU if torch sees one, else the CPU), cpu, "
              "cuda or cuda:N. With --jobs and several GPUs each worker gets its own GPU. Keras places itself.")
@click.option("--precision", default="fp32", show_default=True, metavar="fp32|fp16|bf16",
              help="Torch mixed precision (autocast): fp16 (CUDA, with a loss scaler) or bf16; fp32 is exact.")
@click.option("--threads", type=int, default=None, help="CPU threads per training [default: CPU cores // --jobs].")
@click.option("--jobs", "-j", type=int, default=1, show_default=True,
              help="Trainings run at once, in worker processes (same results as --jobs 1 with the same --threads).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of splits, generation and training.")
@click.option("--positive", default=None, metavar="CLASS",
              help="Add a CLASS-vs-rest section (AUROC, sensitivity at 90%/95% specificity) with paired verdicts.")
@click.option("--strict", is_flag=True, help="Treat unreadable images as an error.")
@click.option("--no-plots", is_flag=True, help="Skip the matplotlib plots.")
@click.option("--json", "as_json", is_flag=True, help="Print the test summary as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or tables.")
def evaluate_cmd(data: Path, out: Path, experiments, fractions, shares, strengths, label_mode, proportion_mode, upsample,
                 generator, options, synthetic,
                 n_splits, repeats, folds, splits_file, val, test, groups, backend, model, alpha, weights,
                 image_size, batch_size, epochs, steps, eval_every, lr, no_augment, select, device, precision, threads, jobs, seed,
                 positive, strict, no_plots, as_json, quiet) -> None:
    """Train a classifier per experiment and split; compare each with the real-only baseline.

    DATA is a class folder or CSV (split with --splits, --repeats/--folds or --splits-file)
    or a split root ROOT/{train,val,test}/<class>/ (one fixed split).
    """
    from .._evaluate.config import EvaluationConfig, TrainConfig
    from .._evaluate.runner import run_evaluation
    from .common import RichProgress, make_console, parse_option_pairs

    generator_options = None
    if generator:
        from .._plugins import get_generator

        generator_options = parse_option_pairs(options, get_generator(generator).Options)
    elif options:
        raise InvalidParameterError("-o/--option", list(options), "only together with --generator")
    config = TrainConfig(backend=backend, model=model, alpha=alpha, weights=weights, image_size=image_size,
                         batch_size=batch_size, epochs=epochs, steps=steps, eval_every=eval_every,
                         learning_rate=lr, augment=not no_augment, threads=threads, select=select,
                         label_mode=label_mode, device=device, precision=precision)
    evaluation = EvaluationConfig(
        experiments=_names(experiments), shares=_floats(shares, "--shares"), fractions=_floats(fractions, "--fractions"),
        proportion_mode=proportion_mode, strengths=_strengths(strengths),
        upsample=upsample, generator=generator, generator_options=generator_options, synthetic=list(synthetic),
        splits=n_splits, repeats=repeats, folds=folds, splits_file=splits_file, val=val, test=test, groups=groups,
        train=config, seed=seed, positive=positive, strict=strict, plots=not no_plots, jobs=jobs, command=command_line(),
    )
    show = not quiet and not as_json
    with RichProgress(quiet=not show) as progress:
        report = run_evaluation(data, out, evaluation, progress=progress)
    html = write_html_report(out)  # report.html beside report.json (synthaug._html_report)
    keys = ("mean", "std", "ci_low", "ci_high", "wilcoxon_p", "verdict")
    summary = {name: {"synthetic_share": e["synthetic_share"], "test": {m: e["test"][m] for m in
                      ("accuracy", "balanced_accuracy", "macro_f1")},
                      "vs_baseline": {m: {k: e["vs_baseline"][m][k] for k in keys}
                                      for m in ("accuracy", "balanced_accuracy", "macro_f1")},
                      "possibly_undertrained": e["convergence"]["possibly_undertrained"]}
               for name, e in report["experiments"].items()}
    if as_json:
        click.echo(json.dumps({"out": str(out), "experiments": summary}, indent=2))
        return
    if not show:
        return
    from rich.table import Table

    table = Table(title=f"test results over {report['splits']['n']} split(s) (mean ± std, %) -> {out}/report.md")
    for col in ("experiment", "synthetic %", "accuracy", "balanced acc.", "macro-F1", "Δ balanced acc.", "verdict"):
        table.add_column(col, justify="left" if col == "experiment" else "right", overflow="fold")

    def pm(stat, signed=False):
        if stat.get("mean") is None:
            return "-"
        return f"{stat['mean'] * 100:{'+' if signed else ''}.2f} ± {stat['std'] * 100:.2f}"

    for name, s in summary.items():
        table.add_row(name, f"{s['synthetic_share'] * 100:.1f}", pm(s["test"]["accuracy"]),
                      pm(s["test"]["balanced_accuracy"]), pm(s["test"]["macro_f1"]),
                      "-" if name == "baseline" else pm(s["vs_baseline"]["balanced_accuracy"], signed=True),
                      "-" if name == "baseline" else s["vs_baseline"]["balanced_accuracy"]["verdict"]
                      + (" (under-trained?)" if s["possibly_undertrained"] else ""))
    console = make_console()
    console.print(table)
    console.print(f"report: {out / 'report.md'}\nreport.html: {html}")


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``evaluate`` to the ``synthaug`` group."""
    cli.add_command(evaluate_cmd)

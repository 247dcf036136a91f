"""Statistics of the report (checked against scipy and by hand), checkpoint selection on a
scripted history, and the under-trained / near-chance flags."""

from __future__ import annotations

import math

import pytest

from synthaug._evaluate import TrainConfig, classification_metrics, compare, corrected_interval, verdict, wilcoxon_p
from synthaug._evaluate import training as training_module
from synthaug._evaluate.summary import holdout_ratio, summarize_experiment
from synthaug._evaluate.training import TrainingTask, best_checkpoint, is_late, run_training

stats = pytest.importorskip("scipy.stats")

DIFFS = [0.031, -0.012, 0.054, 0.020, 0.008, 0.047, -0.004, 0.036, 0.015, 0.029]


# -- interval, p-value, verdict ---------------------------------------------------------------
def test_corrected_interval_by_hand():
    # n=3, mean 0.2, s^2 = 0.01, corrected var = (1/3 + 0.25) * 0.01, t(0.975, 2) = 4.303 (printed tables)
    low, high = corrected_interval([0.1, 0.2, 0.3], test_train_ratio=0.25)
    half = 4.303 * math.sqrt((1 / 3 + 0.25) * 0.01)
    assert low == pytest.approx(0.2 - half, abs=1e-4) and high == pytest.approx(0.2 + half, abs=1e-4)
    assert (round(low, 3), round(high, 3)) == (-0.129, 0.529)
    assert verdict((low, high)) == "no evidence"


def test_corrected_interval_agrees_with_scipy():
    n = len(DIFFS)
    mean = sum(DIFFS) / n
    sd = stats.tstd(DIFFS)
    ratio = 178 / 534  # test/train images of a 5-fold split of the skin-lesion set
    expected = stats.t.interval(0.95, n - 1, loc=mean, scale=sd * math.sqrt(1 / n + ratio))
    assert corrected_interval(DIFFS, ratio) == pytest.approx(expected)
    # without the correction it is the plain paired t interval
    plain = stats.ttest_1samp(DIFFS, 0.0).confidence_interval(0.95)
    assert corrected_interval(DIFFS, 0.0) == pytest.approx((plain.low, plain.high))
    # the correction widens the interval: the plain t-test would call this difference significant
    assert plain.low > 0 and corrected_interval(DIFFS, ratio)[0] < 0


def test_wilcoxon_agrees_with_scipy_and_edge_cases():
    assert wilcoxon_p(DIFFS) == pytest.approx(stats.wilcoxon(DIFFS).pvalue)
    assert wilcoxon_p([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) == pytest.approx(2 / 2**6)  # exact: all positive, n=6
    assert wilcoxon_p([0.0, 0.0, 0.0]) == 1.0
    assert wilcoxon_p([0.1]) is None and corrected_interval([0.1], 0.2) is None


def test_verdicts():
    assert verdict((0.01, 0.05)) == "better"
    assert verdict((-0.05, -0.01)) == "worse"
    assert verdict((-0.01, 0.05)) == "no evidence" and verdict(None) == "no evidence"
    clear = [0.10, 0.12, 0.11, 0.09, 0.13, 0.10, 0.12, 0.11, 0.10, 0.12]
    assert compare(clear, 0.33)["verdict"] == "better"
    assert compare([-d for d in clear], 0.33)["verdict"] == "worse"
    result = compare(DIFFS, 0.33)
    assert result["verdict"] == "no evidence" and result["wilcoxon_p"] == pytest.approx(stats.wilcoxon(DIFFS).pvalue)
    assert holdout_ratio([{"train": 500, "test": 100}, {"train": 520, "test": 120}]) == pytest.approx(110 / 510)


# -- checkpoint selection ------------------------------------------------------------------
HISTORY = [  # each metric prefers a different step
    {"step": 10, "val_loss": 0.70, "val_accuracy": 0.50, "val_balanced_accuracy": 0.30, "val_macro_f1": 0.25},
    {"step": 20, "val_loss": 0.90, "val_accuracy": 0.60, "val_balanced_accuracy": 0.45, "val_macro_f1": 0.40},
    {"step": 30, "val_loss": 0.80, "val_accuracy": 0.65, "val_balanced_accuracy": 0.40, "val_macro_f1": 0.42},
    {"step": 40, "val_loss": 0.95, "val_accuracy": 0.70, "val_balanced_accuracy": 0.45, "val_macro_f1": 0.41},
]
EXPECTED_STEP = {"loss": 10, "balanced_accuracy": 20, "macro_f1": 30, "accuracy": 40}


class ScriptedClassifier:
    """Stands in for a backend: snapshots are step numbers, test predictions are trivial."""

    restored: list[int] = []

    def __init__(self, data, config, *, class_weights, seed, cache=None):
        self.done = 0

    def train_steps(self, n: int) -> float:
        self.done += n
        return 1.0

    def snapshot(self) -> int:
        return self.done

    def restore(self, state: int) -> None:
        ScriptedClassifier.restored.append(state)

    def predict(self, split: str):
        import numpy as np

        return np.eye(2), [0, 1]

    def close(self) -> None:
        pass


@pytest.mark.parametrize("select", sorted(EXPECTED_STEP))
def test_selection_picks_the_right_checkpoint(select, monkeypatch, tmp_path):
    from synthaug import Dataset
    from synthaug.testing import make_image_folder

    assert HISTORY[best_checkpoint(HISTORY, select)]["step"] == EXPECTED_STEP[select]
    scripted = iter(HISTORY)
    monkeypatch.setattr(training_module, "_classifier", lambda config: ScriptedClassifier)
    monkeypatch.setattr(training_module, "_validate",
                        lambda clf, classes: {k: v for k, v in next(scripted).items() if k != "step"})
    train = Dataset.from_folder(make_image_folder(tmp_path / "train", {"a": 2, "b": 2}, size=8))
    held = Dataset.from_folder(make_image_folder(tmp_path / "held", {"a": 1, "b": 1}, size=8))
    task = TrainingTask(0, "baseline", ("a", "b"), tuple(train), (), held, held,
                        TrainConfig(select=select, model="small-cnn"), None, 0, 40, 10)
    ScriptedClassifier.restored = []
    record = run_training(task)
    assert record["best_step"] == EXPECTED_STEP[select] and ScriptedClassifier.restored == [EXPECTED_STEP[select]]
    assert record["select"] == select and [h["step"] for h in record["history"]] == [10, 20, 30, 40]
    assert record["late_best"] == (select == "accuracy")  # step 40 of 40: still improving


# -- flags -------------------------------------------------------------------------------------
def _run(late: bool, correct: int) -> dict:
    y = [0, 0, 1, 1, 2, 2]
    pred = y[:correct] + [(v + 1) % 3 for v in y[correct:]]
    m = classification_metrics(y, pred, ["a", "b", "c"])
    return {"test": m, "val": m, "synthetic_share": 0.0, "late_best": late, "best_step": 40 if late else 10}


def test_under_trained_and_near_chance_experiments_are_flagged():
    from synthaug._evaluate.report import _warning_lines

    assert is_late(37, 40) and not is_late(36, 40)
    baseline = [_run(False, 6), _run(False, 5), _run(False, 6)]
    late = summarize_experiment({"name": "late", "kind": "x"}, [_run(True, 6), _run(True, 5), _run(False, 6)],
                                baseline, ["a", "b", "c"], 0.25, 0.95)
    assert late["convergence"]["possibly_undertrained"] and late["convergence"]["late_runs"] == 2
    assert "--epochs" in late["convergence"]["advice"] and not late["near_chance"]
    fine = summarize_experiment({"name": "fine", "kind": "x"}, [_run(True, 6), _run(False, 5), _run(False, 6)],
                                baseline, ["a", "b", "c"], 0.25, 0.95)
    assert not fine["convergence"]["possibly_undertrained"]
    chance = summarize_experiment({"name": "chance", "kind": "x"}, [_run(False, 1), _run(False, 0), _run(False, 2)],
                                  baseline, ["a", "b", "c"], 0.25, 0.95)
    assert chance["near_chance"] and chance["vs_baseline"]["balanced_accuracy"]["verdict"] == "too few runs"  # 3 runs
    lines = "\n".join(_warning_lines({"classes": ["a", "b", "c"],
                                      "experiments": {"late": late, "fine": fine, "chance": chance}}))
    assert "`late` may be under-trained" in lines and "2 of 3 runs" in lines
    assert "`chance` is near chance" in lines and "`fine`" not in lines

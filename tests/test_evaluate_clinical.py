"""Clinical metrics (hand-computed), the small-sample rules of the statistics, and --positive errors."""

from __future__ import annotations

import numpy as np
import pytest

from synthaug._errors import InvalidParameterError
from synthaug._evaluate.clinical import (
    binary_metrics,
    clinical_metrics,
    expected_calibration_error,
    sensitivity_at_specificity,
)
from synthaug._evaluate.report_clinical import count_cell, few_images_note, verdict_notes
from synthaug._evaluate.stats import compare, corrected_interval

pytest.importorskip("sklearn")


def test_ece_by_hand_one_sample_per_bin():
    probs = [[0.9, 0.1], [0.62, 0.38], [0.18, 0.82], [0.55, 0.45]]  # bins 13, 9, 12, 8 of 15
    y = [0, 1, 1, 0]  # right, wrong, right, right
    assert expected_calibration_error(probs, y) == pytest.approx((0.1 + 0.62 + 0.18 + 0.45) / 4)


def test_ece_by_hand_two_samples_share_a_bin():
    probs = [[0.91, 0.09], [0.93, 0.07], [0.3, 0.7]]  # 0.91 and 0.93 in bin (0.867, 0.933]; 0.7 in (0.667, 0.733]
    y = [0, 1, 1]
    shared = 2 / 3 * abs(0.5 - 0.92)
    alone = 1 / 3 * abs(1 - 0.7)
    assert expected_calibration_error(probs, y) == pytest.approx(shared + alone)
    assert expected_calibration_error(np.eye(3), [0, 1, 2]) == 0.0  # confident and right: calibrated


def test_per_class_figures_by_hand_and_auroc_as_scikit_learn():
    from sklearn.metrics import roc_auc_score

    probs = np.array([[0.7, 0.2, 0.1], [0.4, 0.5, 0.1], [0.2, 0.6, 0.2], [0.3, 0.3, 0.4], [0.5, 0.1, 0.4]])
    y = [0, 0, 1, 1, 0]  # predicted 0, 1, 1, 2, 0; class c absent
    m = clinical_metrics(y, probs, ["a", "b", "c"])
    a, b, c = (m["per_class"][k] for k in "abc")
    assert a == {"n": 3, "sensitivity": 2 / 3, "specificity": 1.0, "ppv": 1.0,
                 "auroc": pytest.approx(roc_auc_score([1, 1, 0, 0, 1], probs[:, 0]))}
    assert b["sensitivity"] == 0.5 and b["specificity"] == pytest.approx(2 / 3) and b["ppv"] == 0.5
    assert c["sensitivity"] is None and c["auroc"] is None and c["ppv"] == 0.0 and c["specificity"] == 0.8
    assert m["auroc_undefined"] == ["c"]
    assert m["macro_auroc"] == pytest.approx((a["auroc"] + b["auroc"]) / 2)


def test_sensitivity_at_fixed_specificity_by_hand():
    scores = np.array([0.9, 0.8, 0.4, 0.7, 0.3, 0.25, 0.2, 0.15, 0.1, 0.08, 0.06, 0.04, 0.02])
    positive = np.array([True, True, True] + [False] * 10)
    assert sensitivity_at_specificity(positive, scores, 0.9) == 1.0  # threshold 0.4: 1 of 10 negatives above
    assert sensitivity_at_specificity(positive, scores, 0.95) == pytest.approx(2 / 3)  # none allowed: 0.8
    assert sensitivity_at_specificity(np.zeros(3, bool), scores[:3], 0.9) is None
    probs = np.stack([1 - scores, scores], 1)
    b = binary_metrics(positive.astype(int), probs, ["rest", "mel"], "mel")
    assert b["n_positive"] == 3 and b["n_negative"] == 10 and b["auroc"] == pytest.approx(29 / 30)
    assert b["sensitivity_at_specificity_0.9"] == 1.0


def test_fewer_than_five_runs_give_no_interval_and_say_so():
    four = compare([0.1, 0.2, 0.15, 0.12], 0.2)
    assert four["verdict"] == "too few runs" and four["ci_low"] is None and four["ci_high"] is None
    five = compare([0.1, 0.2, 0.15, 0.12, 0.11], 0.2)
    assert five["verdict"] == "better" and five["ci_low"] > 0
    assert compare([-0.1, -0.2, -0.15, -0.12, -0.11], 0.2, lower_is_better=True)["verdict"] == "better"


def test_an_interval_is_never_wider_than_the_metric_range():
    diffs = [0.9, -0.9, 0.8, -0.7, 0.95]
    raw = corrected_interval(diffs, 0.3)
    assert raw[0] < -1 and raw[1] > 1  # the statistics alone would print beyond ±100 points
    result = compare(diffs, 0.3)
    assert (result["ci_low"], result["ci_high"]) == (-1.0, 1.0) and result["clipped"]
    notes = verdict_notes({"verdicts": [{**result, "n": 5}]})
    assert any("clipped" in n for n in notes) and not any("Too few" in n for n in notes)
    notes = verdict_notes({"verdicts": [{"verdict": "too few runs", "n": 2}]})
    assert "--repeats 5 --folds 5" in notes[0] and notes[1].startswith("How many runs")


def test_small_test_counts_are_marked():
    assert count_cell([2, 3, 2]) == "2–3 †" and count_cell([6, 6]) == "6" and count_cell([4]) == "4 †"
    assert "dermatofibroma" in few_images_note({"dermatofibroma": [2, 2], "nevus": [60, 61]})
    assert "nevus" not in few_images_note({"dermatofibroma": [2, 2], "nevus": [60, 61]})
    assert few_images_note({"nevus": [60, 61]}) is None


def test_positive_must_be_a_class(tmp_path):
    pytest.importorskip("torch")
    from synthaug._evaluate import TrainConfig, run_evaluation
    from synthaug.testing import make_image_folder

    root = make_image_folder(tmp_path / "d", {"a": 6, "b": 6}, size=16)
    with pytest.raises(InvalidParameterError, match=r"--positive='melanoma'.*one of the classes: a, b"):
        run_evaluation(root, tmp_path / "o", experiments=["oversample"], splits=2, positive="melanoma",
                       train=TrainConfig(steps=1, image_size=16), plots=False)

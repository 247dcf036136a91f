"""``-e real-fraction --fractions``: stratified fractions of the real training images, the
learning curve of real data, and what each experiment is "worth" in real images."""

from __future__ import annotations

import pytest

from synthaug import Dataset
from synthaug._errors import InvalidParameterError
from synthaug._evaluate import parse_experiments
from synthaug._evaluate.experiments.real_fraction import stratified_fraction
from synthaug._evaluate.worth import crossing, plot_worth, real_worth, worth_markdown, worth_table
from synthaug.testing import make_image_folder


def test_real_fraction_is_a_registered_kind_with_validated_fractions():
    exps = parse_experiments(["real-fraction"], fractions=[0.25, 0.5])
    assert [e.name for e in exps] == ["baseline", "real-fraction-25", "real-fraction-50"]
    assert exps[1].to_dict() == {"name": "real-fraction-25", "kind": "real-fraction", "fraction": 0.25}
    assert [e.name for e in parse_experiments(["real-fraction:0.75"])] == ["baseline", "real-fraction-75"]
    with pytest.raises(InvalidParameterError, match=r"--fractions=None.*fractions in \(0, 1\)"):
        parse_experiments(["real-fraction"])
    with pytest.raises(InvalidParameterError, match=r"--fractions=1\.0.*fractions in \(0, 1\)"):
        parse_experiments(["real-fraction"], fractions=[1.0])


def test_fractions_are_class_stratified_seeded_and_keep_every_class(tmp_path):
    train = Dataset.from_folder(make_image_folder(tmp_path / "d", {"a": 20, "b": 8, "c": 2}, size=8))
    half = stratified_fraction(train, 0.5, seed=3)
    counts = {c: sum(1 for s in half if s.label == c) for c in "abc"}
    assert counts == {"a": 10, "b": 4, "c": 1}
    assert [s.path for s in half] == [s.path for s in stratified_fraction(train, 0.5, seed=3)]
    assert [s.path for s in half] != [s.path for s in stratified_fraction(train, 0.5, seed=4)]
    assert {s.path for s in half} <= {s.path for s in train}
    ts = parse_experiments(["real-fraction:0.25"])[1].training_set(train, pool=None, source="None", seed=0)
    assert len(ts.real) == 5 + 2 + 1 and ts.synthetic == []


def test_crossing_interpolates_and_bounds():
    curve = [(0.25, 0.40), (0.5, 0.50), (1.0, 0.60)]
    assert crossing(curve, 0.45) == {"fraction": pytest.approx(0.375), "bound": None}
    assert crossing(curve, 0.55) == {"fraction": pytest.approx(0.75), "bound": None}
    assert crossing(curve, 0.30) == {"fraction": 0.25, "bound": "below"}
    assert crossing(curve, 0.70) == {"fraction": 1.0, "bound": "above"}
    assert crossing([(0.25, 0.5), (0.5, 0.4), (1.0, 0.6)], 0.55)["fraction"] == pytest.approx(0.875)  # first rise


def _exp(kind: str, per_split: list[float], n_train: int = 100, **extra) -> dict:
    from synthaug._evaluate.metrics import mean_std

    stat = mean_std(per_split)
    return {"kind": kind, **extra, "test": {m: stat for m in ("accuracy", "balanced_accuracy", "macro_f1")},
            "per_split": [{"n_train": n_train, "test": {m: v for m in ("accuracy", "balanced_accuracy", "macro_f1")}}
                          for v in per_split]}


def test_worth_in_real_images_with_per_split_uncertainty(tmp_path):
    exps = {"baseline": _exp("baseline", [0.60, 0.62]),
            "real-fraction-50": _exp("real-fraction", [0.50, 0.50], 50, fraction=0.5),
            "upsample": _exp("upsample", [0.55, 0.56])}
    worth = real_worth(exps)
    bacc = worth["worth"]["upsample"]["balanced_accuracy"]
    # means: curve (0.5, 0.50) -> (1, 0.61); 0.555 is reached at 0.5 + 0.055 / 0.11 * 0.5 = 0.75
    assert bacc["fraction"] == pytest.approx(0.75) and bacc["images"] == pytest.approx(75.0)
    # per split: 0.55 on (0.5,0.5)->(1,0.6): 0.75; 0.56 on (0.5,0.5)->(1,0.62): 0.75
    assert bacc["per_split"] == pytest.approx([0.75, 0.75]) and bacc["std"] == pytest.approx(0.0)
    assert worth["fractions"] == [0.5, 1.0] and "real-fraction-50" not in worth["worth"]
    report = {"experiments": exps, "real_worth": worth}
    md = "\n".join(worth_markdown(report))
    assert "| `upsample` | 75% ± 0 (75 images) |" in md and "of 100 real training images" in md
    assert worth_table(report)["rows"][0][0] == "upsample"
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg", force=True)
    assert plot_worth(report, tmp_path / "curve.png") and (tmp_path / "curve.png").stat().st_size > 5000
    assert real_worth({"baseline": exps["baseline"], "upsample": exps["upsample"]}) is None

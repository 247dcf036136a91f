"""The evaluation harness: metrics, splits, experiments, leakage rules and the full command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from synthaug import Dataset, LeakageError, SyntheticAugmenter
from synthaug._errors import DatasetError, InvalidParameterError
from synthaug._evaluate import (
    TrainConfig,
    build_training_set,
    classification_metrics,
    kfold_splits,
    load_splits_file,
    mean_std,
    paired_differences,
    parse_experiments,
    random_splits,
    splits_to_json,
)
from synthaug._evaluate.experiments import balanced_class_weights
from synthaug._splitting import split_dataset, write_split
from synthaug.testing import make_image_folder

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

CLASSES = ["a", "b", "c"]


# -- metrics --------------------------------------------------------------------------------
def test_metrics_on_a_hand_checked_example():
    m = classification_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], CLASSES)
    assert m["n"] == 5 and m["accuracy"] == pytest.approx(0.6)
    assert m["per_class_recall"] == {"a": 0.5, "b": 1.0, "c": 0.0}
    assert m["balanced_accuracy"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_metrics_agree_with_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    import numpy as np

    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    m = classification_metrics(y, p, list("wxyz"))
    assert m["balanced_accuracy"] == pytest.approx(metrics.balanced_accuracy_score(y, p))
    assert m["macro_f1"] == pytest.approx(metrics.f1_score(y, p, average="macro"))
    assert m["confusion_matrix"] == metrics.confusion_matrix(y, p).tolist()


def test_mean_std_and_paired_differences():
    assert mean_std([0.5, 0.7]) == pytest.approx({"mean": 0.6, "std": 0.1414213, "n": 2})
    assert mean_std([0.3]) == {"mean": 0.3, "std": 0.0, "n": 1}
    base = [classification_metrics([0, 1], [0, 0], ["a", "b"]), classification_metrics([0, 1], [0, 1], ["a", "b"])]
    exp = [classification_metrics([0, 1], [0, 1], ["a", "b"]), classification_metrics([0, 1], [0, 1], ["a", "b"])]
    d = paired_differences(exp, base, ["a", "b"])
    assert d["accuracy"]["per_split"] == [0.5, 0.0] and d["accuracy"]["mean"] == pytest.approx(0.25)
    assert d["per_class_recall"]["b"]["per_split"] == [1.0, 0.0]


# -- splits ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("evaluate") / "data", {"a": 12, "b": 6, "c": 5}, size=16)


def _paths(ds) -> set[str]:
    return {str(s.path) for s in ds}


def test_random_splits_are_disjoint_grouped_and_differ(folder):
    data = Dataset.from_folder(folder)
    groups = {f"a_{i:03d}": f"g{i // 2}" for i in range(12)}  # pairs of class-a images
    splits = random_splits(data, 2, val=0.2, test=0.2, seed=1, groups=groups)
    assert len(splits) == 2 and splits[0]["test"] != splits[1]["test"]
    for split in splits:
        parts = [_paths(split[p]) for p in ("train", "val", "test")]
        assert sum(map(len, parts)) == len(data) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        for part in ("train", "val", "test"):
            stems = {s.path.stem for s in split[part] if s.label == "a"}
            assert all((f"a_{2 * (int(x[2:]) // 2):03d}" in stems) == (f"a_{2 * (int(x[2:]) // 2) + 1:03d}" in stems)
                       for x in stems)


def test_repeated_kfold_tests_every_image_once_per_repeat(folder):
    data = Dataset.from_folder(folder)
    splits = kfold_splits(data, 2, 4, seed=0)
    assert len(splits) == 8
    for r in range(2):
        tested = [p for split in splits[4 * r: 4 * r + 4] for p in _paths(split["test"])]
        assert sorted(tested) == sorted(_paths(data))
        for split in splits[4 * r: 4 * r + 4]:
            assert {s.label for s in split["test"]} == set(CLASSES)  # stratified
            assert not _paths(split["val"]) & _paths(split["test"])
    with pytest.raises(InvalidParameterError, match="--folds"):
        kfold_splits(data, 1, 2)


def test_splits_file_round_trip_and_errors(folder, tmp_path):
    data = Dataset.from_folder(folder)
    splits = random_splits(data, 2, seed=3)
    doc = splits_to_json(splits, data.root)
    assert doc["splits"][0]["test"][0].count("/") == 1  # "<class>/<file>", relative to the data root
    path = tmp_path / "splits.json"
    path.write_text(json.dumps(doc))
    again = load_splits_file(path, data)
    assert [[_paths(s[p]) for p in ("train", "val", "test")] for s in again] == \
           [[_paths(s[p]) for p in ("train", "val", "test")] for s in splits]
    by_stem = {"splits": [{"train": ["a_000", "b_000"], "val": ["a_001"], "test": ["c_000"]}]}
    path.write_text(json.dumps(by_stem))
    assert [s.path.stem for s in load_splits_file(path, data)[0]["train"]] == ["a_000", "b_000"]
    path.write_text(json.dumps({"splits": [{"train": ["a_000"], "val": ["zzz"], "test": ["c_000"]}]}))
    with pytest.raises(DatasetError, match="'zzz' is not an image"):
        load_splits_file(path, data)
    path.write_text(json.dumps({"splits": [{"train": ["a_000"], "val": ["a_000"], "test": ["c_000"]}]}))
    with pytest.raises(DatasetError, match="in both train and val"):
        load_splits_file(path, data)


# -- experiments ----------------------------------------------------------------------------
def test_parse_experiments_always_runs_the_baseline_first():
    exps = parse_experiments(["oversample", "proportion", "class_weights"], shares=[0.1, 0.6])
    assert [e.name for e in exps] == ["baseline", "oversample", "proportion-10", "proportion-60", "class-weights"]
    with pytest.raises(InvalidParameterError, match="--experiments"):
        parse_experiments(["smote"])
    with pytest.raises(InvalidParameterError, match="--shares"):
        parse_experiments(["proportion"])


def test_training_sets_of_each_experiment(folder, tmp_path):
    train = Dataset.from_folder(folder)  # a=12, b=6, c=5
    with pytest.warns(UserWarning, match="above the majority"):
        aug = SyntheticAugmenter("classic", {"name": "upsample", "strategy": {"a": 18, "b": 20, "c": 20}},
                                 out_dir=tmp_path / "syn").fit_resample(train)
    pool = {}
    for s in aug.synthetic:
        pool.setdefault(s.label, []).append(s)
    exps = {e.name: e for e in parse_experiments(["upsample", "oversample", "class-weights", "proportion"],
                                                 shares=[0.5])}
    counts = lambda ts: {c: (v["real"], v["synthetic"]) for c, v in ts.counts(CLASSES).items()}  # noqa: E731
    assert counts(build_training_set(exps["baseline"], train)) == {"a": (12, 0), "b": (6, 0), "c": (5, 0)}
    assert counts(build_training_set(exps["oversample"], train)) == {"a": (12, 0), "b": (12, 0), "c": (12, 0)}
    up = build_training_set(exps["upsample"], train, pool=pool)
    assert counts(up) == {"a": (12, 0), "b": (6, 6), "c": (5, 7)} and all(s.is_synthetic for s in up.synthetic)
    half = build_training_set(exps["proportion-50"], train, pool=pool)
    assert counts(half) == {"a": (6, 6), "b": (3, 3), "c": (2, 3)} or counts(half) == {"a": (6, 6), "b": (3, 3), "c": (3, 2)}
    weights = build_training_set(exps["class-weights"], train).class_weights
    assert weights == balanced_class_weights(train) and weights["c"] == pytest.approx(23 / (3 * 5))
    with pytest.raises(DatasetError, match="has 0 image"):
        build_training_set(exps["upsample"], train, pool={"b": pool["b"]}, source="x")


def test_budget_is_the_same_for_every_experiment():
    cfg = TrainConfig(epochs=2.5, batch_size=10)
    assert cfg.budget(95) == (25, 10)
    assert TrainConfig(steps=7, eval_every=3).budget(1000) == (7, 3)
    with pytest.raises(InvalidParameterError, match="--backend"):
        TrainConfig(backend="jax")
    with pytest.raises(InvalidParameterError, match="--weights"):
        TrainConfig(weights="/no/such/file.h5")


def test_torch_backend_weights(tmp_path):
    from synthaug._evaluate.torch_backend import build_model

    cfg = TrainConfig(model="small-cnn", image_size=16)
    model = build_model(cfg, 3)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    loaded = build_model(TrainConfig(model="small-cnn", image_size=16, weights=str(tmp_path / "w.pt")), 3)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(InvalidParameterError, match="ImageNet weights exist only for --backend keras"):
        TrainConfig(model="mobilenet", weights="imagenet")
    with pytest.raises(InvalidParameterError, match="state_dict saved from this backbone"):
        build_model(TrainConfig(model="mobilenet", image_size=16, weights=str(tmp_path / "w.pt")), 3)


def test_keras_imagenet_download_failure_is_a_clear_error(monkeypatch):
    keras = pytest.importorskip("keras")
    from synthaug._evaluate.keras_backend import build_keras_model

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -2]")

    monkeypatch.setattr(keras.applications, "MobileNet", offline)
    with pytest.raises(InvalidParameterError, match="downloading the ImageNet MobileNet weights failed"):
        build_keras_model(TrainConfig(backend="keras", model="mobilenet", weights="imagenet"), 3)


# -- the command ----------------------------------------------------------------------------
TINY = ["--steps", "2", "--eval-every", "1", "--image-size", "32", "--model", "small-cnn", "--batch-size", "8",
        "--threads", "1", "--quiet", "--seed", "0"]


@pytest.fixture(scope="module")
def evaluated(folder, tmp_path_factory) -> Path:
    from synthaug._cli import main

    out = tmp_path_factory.mktemp("evaluated") / "run"
    code = main([
        "evaluate", str(folder), "--out", str(out), "--splits", "2", "--val", "0.2", "--test", "0.2",
        "-e", "upsample,proportion,oversample,class-weights,classic", "--shares", "0.5",
        "-g", "classic", "-o", "max_rotation=5", "--positive", "b", *TINY,
    ])
    assert code == 0
    return out


def test_evaluate_writes_every_documented_file_and_key(evaluated):
    report = json.loads((evaluated / "report.json").read_text())
    for key in ("format", "synthaug_version", "versions", "created", "command", "config", "data", "classes", "splits",
                "train", "statistics", "synthetic_sources", "verdicts", "experiments", "plots"):
        assert key in report
    assert report["format"] == 3 and report["train"]["select"] == "balanced_accuracy"
    assert report["config"]["experiments"] == ["upsample", "proportion", "oversample", "class-weights", "classic"]
    assert {"torch", "numpy", "synthaug"} <= set(report["versions"])
    # 2 paired runs: no interval, and the verdict says so
    assert len(report["verdicts"]) == 5 * 3 and {r["verdict"] for r in report["verdicts"]} == {"too few runs"}
    assert all(r["ci_low"] is None and r["ci_high"] is None for r in report["verdicts"])
    used = "cuda:0" if torch.cuda.is_available() else "cpu"  # --device auto
    assert report["compute"] == {"backend": "torch", "device_requested": "auto", "devices": used, "precision": "fp32"}
    assert report["classes"] == CLASSES
    assert list(report["experiments"]) == ["baseline", "upsample", "proportion-50", "oversample", "class-weights",
                                           "classic"]
    for e in report["experiments"].values():
        assert {"name", "kind", "source", "synthetic_share", "per_split", "test", "val", "vs_baseline"} <= set(e)
        assert len(e["per_split"]) == 2
        for metric in ("accuracy", "balanced_accuracy", "macro_f1"):
            assert {"mean", "std", "n"} <= set(e["test"][metric]) and e["test"][metric]["n"] == 2
            assert len(e["vs_baseline"][metric]["per_split"]) == 2
        assert set(e["test"]["per_class_recall"]) == set(CLASSES)
        for r in e["per_split"]:
            assert r["steps"] == 2 and len(r["history"]) == 2  # same budget for every experiment
            assert {"val", "test", "train_counts", "synthetic_share", "best_step", "late_best", "seconds"} <= set(r)
            assert r["late_best"] == (r["best_step"] == 2) and r["select"] == "balanced_accuracy"
            assert sum(map(sum, r["test"]["confusion_matrix"])) == r["test"]["n"]
    baseline = report["experiments"]["baseline"]
    assert baseline["vs_baseline"]["accuracy"]["per_split"] == [0.0, 0.0]
    sizes = report["splits"]["sizes"]
    for k, size in enumerate(sizes):  # every experiment is tested on the same real test images
        assert {e["per_split"][k]["test"]["n"] for e in report["experiments"].values()} == {size["test"]}
    up = report["experiments"]["upsample"]["per_split"][0]["train_counts"]
    assert up["a"]["synthetic"] == 0 and up["b"]["real"] + up["b"]["synthetic"] == up["a"]["real"]
    assert report["experiments"]["proportion-50"]["synthetic_share"] == pytest.approx(0.5, abs=0.1)
    for plot in report["plots"].values():
        assert (evaluated / plot).is_file() and (evaluated / plot).stat().st_size > 1000
    assert {"confusion_baseline", "accuracy_vs_share", "per_class_recall"} <= set(report["plots"])
    md = (evaluated / "report.md").read_text()
    assert "| `upsample` |" in md and "Δ accuracy" in md and "plots/per_class_recall.png" in md
    assert md.startswith("# synthaug evaluation\n\n## Verdicts") and "| `classic` | balanced acc. |" in md
    assert "Too few runs: 2 paired run(s)" in md and "--repeats 5 --folds 5" in md and "How many runs" in md
    used = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert f"Device: {used} (asked: `--device auto`), precision fp32." in md


def test_evaluate_reports_clinical_metrics_and_per_split_test_counts(evaluated):
    report = json.loads((evaluated / "report.json").read_text())
    base = report["experiments"]["baseline"]
    for r in base["per_split"]:
        cm, clinical = r["test"]["confusion_matrix"], r["test"]["clinical"]
        assert "test_probabilities" not in r  # kept in the result cache only
        for i, c in enumerate(CLASSES):
            tp, n = cm[i][i], sum(cm[i])
            assert clinical["per_class"][c]["n"] == n
            assert clinical["per_class"][c]["sensitivity"] == pytest.approx(tp / n)
            predicted = sum(row[i] for row in cm)
            assert clinical["per_class"][c]["ppv"] == (pytest.approx(tp / predicted) if predicted else None)
        assert 0 <= clinical["ece"] <= 1 and r["test"]["binary"]["positive"] == "b"
        assert r["test"]["binary"]["n_positive"] == sum(cm[1])
    counts = base["test"]["clinical"]["test_counts"]
    assert counts == {c: [sum(r["test"]["confusion_matrix"][i]) for r in base["per_split"]] for i, c in enumerate(CLASSES)}
    rows = [r for r in report["clinical_verdicts"] if r["experiment"] == "oversample"]
    assert [r["metric"] for r in rows] == ["macro_auroc", "ece", "binary:auroc",
                                          "binary:sensitivity_at_specificity_0.9",
                                          "binary:sensitivity_at_specificity_0.95"]
    md = (evaluated / "report.md").read_text()
    low, high = min(counts["c"]), max(counts["c"])
    cell = (str(low) if low == high else f"{low}–{high}") + (" †" if low < 5 else "")
    assert f"| `c` | 5 | {cell} |" in md  # whole-dataset images, then test images per split
    assert "## Per-class test figures: upsample (%)" in md and "## b vs rest (test, %)" in md
    assert "| `oversample` | b vs rest: sensitivity at 90% specificity |" in md
    assert "15 equal-width bins" in md


def test_evaluate_splits_json_is_real_only_and_reusable(evaluated, folder):
    doc = json.loads((evaluated / "splits.json").read_text())
    assert len(doc["splits"]) == 2
    real = {f"{p.parent.name}/{p.name}" for p in folder.glob("*/*.png")}
    for split in doc["splits"]:
        assert set(split["val"]) | set(split["test"]) <= real  # never a synthetic image
    data = Dataset.from_folder(folder)
    again = load_splits_file(evaluated / "splits.json", data)
    assert [len(s["test"]) for s in again] == [len(s["test"]) for s in doc["splits"]]
    synthetic_sources = {str((evaluated / "work").resolve())}
    for split in again:
        assert not any(str(s.path.resolve()).startswith(tuple(synthetic_sources)) for s in split["test"])


def test_evaluate_resumes_finished_results(evaluated, folder):
    from synthaug._cli import main

    before = {p: p.stat().st_mtime_ns for p in (evaluated / "work").glob("split-*/results/*.json")}
    assert len(before) == 12
    assert main(["evaluate", str(folder), "--out", str(evaluated), "--splits", "2", "--val", "0.2", "--test", "0.2",
                 "-e", "upsample,proportion,oversample,class-weights,classic", "--shares", "0.5",
                 "-g", "classic", "-o", "max_rotation=5", "--no-plots", *TINY]) == 0
    after = {p: p.stat().st_mtime_ns for p in (evaluated / "work").glob("split-*/results/*.json")}
    assert after == before


def test_evaluate_keras_backend_on_a_split_root(folder, tmp_path):
    pytest.importorskip("tensorflow")
    from synthaug._cli import main

    root = write_split(split_dataset(Dataset.from_folder(folder), val=0.2, test=0.2, seed=0), tmp_path / "split")
    out = tmp_path / "keras"
    fast = [a if a != "2" else "1" for a in TINY]  # one step, one validation pass
    code = main(["evaluate", str(root), "--out", str(out), "-e", "oversample", "--backend", "keras",
                 "--no-plots", *fast])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["splits"]["method"] == "split-root" and report["train"]["backend"] == "keras"
    assert report["experiments"]["oversample"]["per_split"][0]["test"]["n"] == len(list((root / "test").glob("*/*")))


def test_synthetic_folder_made_from_test_images_is_refused(folder, tmp_path):
    from synthaug._evaluate import run_evaluation

    root = write_split(split_dataset(Dataset.from_folder(folder), val=0.2, test=0.2, seed=0), tmp_path / "split")
    everything = tmp_path / "all-synthetic"
    SyntheticAugmenter("classic", "upsample", out_dir=everything).fit_resample(folder)  # fitted on all images
    with pytest.raises(LeakageError, match="held-out"):
        run_evaluation(root, tmp_path / "out", experiments=["upsample"], synthetic=[everything],
                       train=TrainConfig(steps=1, image_size=16, model="small-cnn"), plots=False)


def test_evaluate_input_errors(folder, tmp_path):
    from synthaug._evaluate import run_evaluation

    cfg = TrainConfig(steps=1, image_size=16, model="small-cnn")
    with pytest.raises(InvalidParameterError, match="needs synthetic images"):
        run_evaluation(folder, tmp_path / "o1", experiments=["proportion"], shares=[0.5], train=cfg)
    with pytest.raises(InvalidParameterError, match="one synthetic folder per split"):
        run_evaluation(folder, tmp_path / "o2", experiments=["upsample"], splits=3, synthetic=[folder], train=cfg)
    root = write_split(split_dataset(Dataset.from_folder(folder), val=0.2, test=0.2, seed=0), tmp_path / "split")
    with pytest.raises(InvalidParameterError, match="not with a split root"):
        run_evaluation(root, tmp_path / "o3", experiments=["oversample"], splits=2, train=cfg)
    with pytest.raises(InvalidParameterError, match="only one of"):
        run_evaluation(folder, tmp_path / "o4", experiments=["oversample"], splits=2, repeats=2, folds=3, train=cfg)
    shutil.rmtree(tmp_path / "split")


def test_upsample_spec_chooses_the_classes_to_fill():
    from synthaug._evaluate.experiments import upsample_strategy

    counts = {"a": 12, "b": 6, "c": 5}
    assert upsample_strategy("rarest:1", counts) == {"c": 12}
    assert upsample_strategy("b,c", counts) == {"b": 12, "c": 12}
    assert upsample_strategy("not-majority", counts) == "not-majority"
    exp = parse_experiments(["upsample"], upsample="rarest:2")[1]
    assert exp.policy(counts).plan(counts).synthetic_counts() == {"a": 0, "b": 6, "c": 7}
    with pytest.raises(InvalidParameterError, match="--upsample"):
        upsample_strategy("rarest:0", counts)
    with pytest.raises(InvalidParameterError, match="--upsample"):
        upsample_strategy("melanoma", counts)

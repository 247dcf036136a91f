"""The experiment registry (a new kind is one class), the Source dataclass and EvaluationConfig."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pytest

from synthaug import Dataset
from synthaug._dataset import Sample
from synthaug._errors import InvalidParameterError
from synthaug._evaluate import (
    EvaluationConfig,
    Experiment,
    Source,
    TrainConfig,
    TrainingSet,
    experiment_kinds,
    parse_experiments,
    run_evaluation,
)
from synthaug.testing import make_image_folder

pytest.importorskip("torch")


@dataclass(frozen=True)
class Undersample(Experiment):
    """The whole new kind: every class cut to the smallest class's size (real images only)."""

    kind = "undersample"
    summary = "real images of every class cut to the smallest class"

    def training_set(self, train: Dataset, *, pool: Mapping[str, Sequence[Sample]] | None, source: str,
                     seed: int) -> TrainingSet:
        by_class: dict[str, list[Sample]] = {}
        for s in train:
            by_class.setdefault(s.label, []).append(s)
        smallest = min(len(v) for v in by_class.values())
        return TrainingSet([s for label in sorted(by_class) for s in by_class[label][:smallest]])


@pytest.fixture
def undersample():
    """The kind arrives through the ``register_experiments`` hook, like a plugin's."""
    import types

    import synthaug
    from synthaug._plugins import register_module, reset_plugins

    plugin = types.ModuleType("undersample_plugin")
    plugin.register_experiments = synthaug.hookimpl(lambda register: register(Undersample))
    reset_plugins()
    register_module(plugin)
    yield Undersample
    reset_plugins()
    assert "undersample" not in experiment_kinds()


def test_a_new_experiment_kind_is_one_class(undersample, tmp_path):
    assert "undersample" in experiment_kinds()
    assert [e.name for e in parse_experiments(["undersample", "oversample"])] == ["baseline", "undersample", "oversample"]
    folder = make_image_folder(tmp_path / "data", {"a": 9, "b": 6, "c": 5}, size=16)
    report = run_evaluation(folder, tmp_path / "out", experiments=["undersample"], splits=2, val=0.2, test=0.2,
                            plots=False, train=TrainConfig(steps=2, eval_every=1, image_size=16, batch_size=4, threads=1))
    runs = report["experiments"]["undersample"]["per_split"]
    for r, size in zip(runs, report["splits"]["sizes"]):
        real = [c["real"] for c in r["train_counts"].values()]
        assert len(set(real)) == 1 and r["n_train"] == 3 * real[0] < size["train"]  # balanced down
        assert r["test"]["n"] == size["test"]
    assert report["experiments"]["undersample"]["kind"] == "undersample"
    assert {row["experiment"] for row in report["verdicts"]} == {"undersample"}
    assert "| `undersample` |" in (tmp_path / "out" / "report.md").read_text()


def test_unknown_kind_lists_the_registered_ones(undersample):
    with pytest.raises(InvalidParameterError, match="undersample") as err:
        parse_experiments(["smote"])
    assert "class-weights" in str(err.value)
    with pytest.raises(InvalidParameterError, match="takes no ':value'"):
        parse_experiments(["undersample:3"])


def test_sources_are_typed_not_strings():
    classic = parse_experiments(["classic"])[1]
    upsample = parse_experiments(["upsample"])[1]
    chosen = Source.generator("ddpm", {"train_steps": 5})
    assert classic.source(chosen) == Source.generator("classic") and classic.source(None).key == "generator:classic"
    assert upsample.source(chosen) is chosen and chosen.describe()["options"] == {"train_steps": 5}
    assert upsample.source(None) == Source.generator("classic")  # as `balance` without -g
    with pytest.raises(InvalidParameterError, match="needs synthetic images"):
        parse_experiments(["proportion"], shares=[0.5])[1].source(None)
    folders = Source.from_folders(["x", "y"])
    assert folders.key == "folders" and folders.describe() == {"kind": "folders", "folders": ["x", "y"]}
    assert parse_experiments(["oversample"])[1].source(chosen) is None


def test_evaluation_config_replaces_the_keyword_list(tmp_path):
    config = EvaluationConfig(experiments=["oversample"], repeats=2, folds=3, jobs=2,
                              train=TrainConfig(model="small-cnn", steps=3))
    doc = config.to_dict()
    assert json.loads(json.dumps(doc)) == doc and doc["train"]["steps"] == 3 and doc["jobs"] == 2
    assert EvaluationConfig.from_options({"experiments": ["oversample"], "splits": 2}).splits == 2
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        run_evaluation(tmp_path, tmp_path / "out", epochs=3)
    with pytest.raises(TypeError, match="not both"):
        run_evaluation(tmp_path, tmp_path / "out", config, splits=2)
    with pytest.raises(InvalidParameterError, match="--jobs"):
        EvaluationConfig(jobs=0)
    with pytest.raises(InvalidParameterError, match="--select"):
        TrainConfig(select="f1")

"""``--jobs N`` gives the results of ``--jobs 1``; user model factories (``--model module:function``)
train and are evaluated, with a weights file from disk."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from synthaug._errors import InvalidParameterError
from synthaug._evaluate import TrainConfig, run_evaluation
from synthaug.testing import make_image_folder

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

FACTORIES = '''
import torch


def tiny(n_classes):
    """A very small CNN: input float NCHW in [0, 1], output logits."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(8, n_classes),
    )


def not_a_model(n_classes):
    return "resnet18"


def tiny_keras(n_classes):
    import keras

    return keras.Sequential([keras.layers.Rescaling(1 / 255), keras.layers.Conv2D(4, 3, strides=2),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(n_classes)])
'''


@pytest.fixture(scope="module")
def factories(tmp_path_factory) -> str:
    """An importable module of model factories (its folder on sys.path, so spawned workers find it too)."""
    folder = tmp_path_factory.mktemp("factories")
    (folder / "user_factories.py").write_text(FACTORIES)
    sys.path.insert(0, str(folder))
    yield "user_factories"
    sys.path.remove(str(folder))
    sys.modules.pop("user_factories", None)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("jobs") / "data", {"a": 10, "b": 6, "c": 5}, size=16)


def _results(report: dict) -> dict:
    """The numbers of a report that must not depend on --jobs (everything but timings)."""
    return {name: [{k: v for k, v in r.items() if k != "seconds"} for r in e["per_split"]]
            for name, e in report["experiments"].items()}


@pytest.mark.slow
def test_jobs_2_gives_the_results_of_jobs_1_with_a_factory_model(folder, factories, tmp_path):
    from synthaug._cli import main

    common = [str(folder), "--splits", "2", "--val", "0.2", "--test", "0.2", "-e", "oversample,class-weights",
              "--model", f"{factories}:tiny", "--steps", "3", "--eval-every", "1", "--image-size", "16",
              "--batch-size", "8", "--threads", "1", "--quiet", "--no-plots"]
    assert main(["evaluate", *common, "--out", str(tmp_path / "one"), "--jobs", "1"]) == 0
    assert main(["evaluate", *common, "--out", str(tmp_path / "two"), "--jobs", "2"]) == 0
    one = json.loads((tmp_path / "one" / "report.json").read_text())
    two = json.loads((tmp_path / "two" / "report.json").read_text())
    assert _results(one) == _results(two)
    assert list(two["experiments"]) == ["baseline", "oversample", "class-weights"]
    assert [r["split"] for r in two["experiments"]["class-weights"]["per_split"]] == [0, 1]
    assert two["config"]["jobs"] == 2 and two["train"]["model"] == f"{factories}:tiny"
    run = one["experiments"]["baseline"]["per_split"][0]
    assert [h["step"] for h in run["history"]] == [1, 2, 3] and run["test"]["n"] == one["splits"]["sizes"][0]["test"]
    losses = {r["history"][0]["train_loss"] for e in one["experiments"].values() for r in e["per_split"]}
    assert len(losses) > 1  # the factory's model really trained on each experiment's data


def test_factory_weights_file_is_loaded(factories, tmp_path):
    from synthaug._evaluate.torch_backend import build_model

    module = __import__(factories)
    saved = module.tiny(3)
    with torch.no_grad():
        for p in saved.parameters():
            p.fill_(0.125)
    torch.save(saved.state_dict(), tmp_path / "weights.pt")
    cfg = TrainConfig(model=f"{factories}:tiny", weights=str(tmp_path / "weights.pt"))
    loaded = build_model(cfg, 3)
    assert all(torch.equal(p, torch.full_like(p, 0.125)) for p in loaded.parameters())
    assert not all(torch.equal(p, torch.full_like(p, 0.125)) for p in build_model(TrainConfig(model=module.tiny), 3).parameters())
    with pytest.raises(InvalidParameterError, match="state_dict saved from the factory's model"):
        build_model(TrainConfig(model=f"{factories}:tiny", weights=str(tmp_path / "weights.pt")), 4)  # head shape differs


def test_factory_errors_name_the_option(factories, folder, tmp_path):
    from synthaug._evaluate.torch_backend import build_model

    with pytest.raises(InvalidParameterError, match="--model.*has no attribute 'nope'"):
        TrainConfig(model=f"{factories}:nope")
    with pytest.raises(InvalidParameterError, match="cannot import 'no_such_module_xyz'"):
        TrainConfig(model="no_such_module_xyz:f")
    with pytest.raises(InvalidParameterError, match="the factory returned str"):
        build_model(TrainConfig(model=f"{factories}:not_a_model"), 3)
    with pytest.raises(InvalidParameterError, match="--weights.*factory loads its own"):
        TrainConfig(model=f"{factories}:tiny", weights="imagenet")
    local = lambda n: torch.nn.Linear(1, n)  # noqa: E731 - not importable by a worker process
    with pytest.raises(InvalidParameterError, match="--jobs.*module level"):
        run_evaluation(folder, tmp_path / "out", experiments=["oversample"], splits=2, jobs=2, plots=False,
                       train=TrainConfig(model=local, steps=1, image_size=16))


def test_keras_factory_model_gets_the_harness_inputs(factories):
    keras = pytest.importorskip("keras")
    pytest.importorskip("tensorflow")
    from synthaug._evaluate.keras_backend import build_keras_model

    model = build_keras_model(TrainConfig(backend="keras", model=f"{factories}:tiny_keras", image_size=16), 3)
    assert model.output_shape == (None, 3) and model.input_shape == (None, 16, 16, 3)
    assert any(isinstance(layer, keras.layers.RandomFlip) for layer in model.layers)  # harness augmentation first
    with pytest.raises(InvalidParameterError, match="keras.Model"):
        build_keras_model(TrainConfig(backend="keras", model=f"{factories}:tiny", image_size=16), 3)

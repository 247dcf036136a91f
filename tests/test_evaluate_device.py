"""``evaluate --device/--precision``: validation, device assignment per worker, CPU results unchanged,
and a ``gpu``-marked test that trains on CUDA with mixed precision."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from synthaug import Dataset
from synthaug._errors import InvalidParameterError
from synthaug._evaluate import TrainConfig
from synthaug._evaluate.device import check_amp, resolve_device, worker_devices
from synthaug._evaluate.jobs import on_device
from synthaug._evaluate.training import TrainingTask, run_training
from synthaug.testing import make_image_folder

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "CUDA", "", "cuda:-1", "mps"])
def test_a_bad_device_names_the_option_echoes_and_lists(device):
    with pytest.raises(InvalidParameterError, match=r"--device.*auto, cpu, cuda or cuda:N") as info:
        TrainConfig(device=device)
    assert repr(device) in str(info.value)


def test_a_bad_precision_names_the_option_and_keras_keeps_fp32():
    with pytest.raises(InvalidParameterError, match=r"--precision='fp8'.*fp32, fp16 or bf16"):
        TrainConfig(precision="fp8")
    with pytest.raises(InvalidParameterError, match=r"--precision='bf16'.*fp32 with --backend keras"):
        TrainConfig(backend="keras", precision="bf16")
    with pytest.raises(InvalidParameterError, match="fp16 mixed precision needs a CUDA device"):
        check_amp("cpu", "fp16")
    check_amp("cuda:1", "fp16")


def test_device_resolution_without_and_with_gpus():
    assert resolve_device("auto", 0) == "cpu" and resolve_device("cpu", 4) == "cpu"
    assert resolve_device("auto", 2) == "cuda:0" and resolve_device("cuda", 1) == "cuda:0"
    assert resolve_device("cuda:1", 2) == "cuda:1"
    with pytest.raises(InvalidParameterError, match="--device='cuda'.*no CUDA device"):
        resolve_device("cuda", 0)
    with pytest.raises(InvalidParameterError, match=r"--device='cuda:2'.*cuda:0 … cuda:1.*2 CUDA device"):
        resolve_device("cuda:2", 2)


def test_jobs_with_several_gpus_put_one_training_per_device():
    assert worker_devices("auto", 4, 2) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert worker_devices("cuda", 3, 3) == ["cuda:0", "cuda:1", "cuda:2"]
    assert worker_devices("cuda:1", 3, 3) == ["cuda:1"] * 3  # an explicit device is kept
    assert worker_devices("auto", 2, 0) == ["cpu", "cpu"]
    assert worker_devices("auto", 1, 4) == ["cuda:0"]


@pytest.fixture(scope="module")
def task_parts(tmp_path_factory):
    root = make_image_folder(tmp_path_factory.mktemp("device") / "data", {"a": 10, "b": 8}, size=16)
    s = list(Dataset.from_folder(root))
    return Dataset(s[:2] + s[10:12]), Dataset(s[2:4] + s[12:14]), tuple(s[4:10] + s[14:])


def _digest(task_parts, **options) -> tuple[str, dict]:
    val, test, train = task_parts
    cfg = TrainConfig(image_size=16, steps=4, eval_every=2, batch_size=4, **options)
    record = run_training(TrainingTask(0, "baseline", ("a", "b"), train, (), val, test, cfg, None, 7, 4, 2))
    blob = json.dumps(record["history"]).encode() + json.dumps(record["test"]).encode()
    return hashlib.sha256(blob).hexdigest(), record


def test_cpu_results_are_bit_identical_whatever_the_device_spelling(task_parts):
    """--device cpu and auto (no GPU here) run the exact fp32 code path: the same losses and metrics
    to the last bit (before --device existed this task gave the same digest, see the CHANGELOG)."""
    if torch.cuda.is_available():
        pytest.skip("auto means a GPU here")
    cpu, record = _digest(task_parts, device="cpu")
    auto, _ = _digest(task_parts, device="auto")
    assert cpu == auto and record["device"] == "cpu" and record["precision"] == "fp32"
    bf16, other = _digest(task_parts, device="cpu", precision="bf16")
    assert bf16 != cpu and other["precision"] == "bf16"  # autocast really changed the arithmetic


def test_on_device_places_torch_tasks_only(task_parts):
    val, test, train = task_parts
    task = TrainingTask(0, "baseline", ("a", "b"), train, (), val, test, TrainConfig(), None, 7, 4, 2)
    assert on_device(task, "cuda:1").config.device == "cuda:1" and on_device(task, None) is task
    keras = TrainingTask(0, "baseline", ("a", "b"), train, (), val, test, TrainConfig(backend="keras"), None, 7, 4, 2)
    assert on_device(keras, "cuda:1") is keras


def test_cli_rejects_bad_device_and_precision(tmp_path: Path, capsys):
    from synthaug._cli import main

    root = make_image_folder(tmp_path / "d", {"a": 4, "b": 4}, size=16)
    assert main(["evaluate", str(root), "--out", str(tmp_path / "o"), "--device", "gpu0"]) == 2
    err = capsys.readouterr().err
    assert "--device='gpu0'" in err and "cuda:N" in err
    assert main(["evaluate", str(root), "--out", str(tmp_path / "o"), "--precision", "half"]) == 2
    assert "--precision='half'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_training_on_cuda_with_mixed_precision(task_parts, precision):
    _, record = _digest(task_parts, device="cuda", precision=precision)
    assert record["device"] == "cuda:0" and record["precision"] == precision
    assert all(h["train_loss"] == h["train_loss"] for h in record["history"])  # finite, not NaN
    assert record["test"]["n"] == 4

"""Soft labels (Diff-Mix translations): the adapters serve them as probability targets and the
evaluation harness trains on them with soft cross-entropy; hard labels stay the default."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from synthaug import AugmentedDataset, Dataset, Sample
from synthaug._errors import InvalidParameterError
from synthaug.testing import make_image_folder

torch = pytest.importorskip("torch")
torch.set_num_threads(1)
CLASSES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> AugmentedDataset:
    """Real a=4, b=3, c=3 (train), val and test 2 per class; two synthetic ``b`` images translated from
    ``a`` (soft label b: 0.8, a: 0.2) and one synthetic ``c`` image with a hard label."""
    root = tmp_path_factory.mktemp("soft")
    splits = {name: Dataset.from_folder(make_image_folder(root / name, {"a": n_a, "b": n, "c": n}, size=24, seed=i))
              for i, (name, n_a, n) in enumerate([("train", 4, 3), ("val", 2, 2), ("test", 2, 2)])}
    extra = make_image_folder(root / "synthetic", {"b": 2, "c": 1}, size=24, seed=9)
    soft = {"b": 0.8, "a": 0.2}
    synthetic = [Sample(p, p.parent.name, split="train",
                        provenance={"class": p.parent.name, **({"soft_label": soft} if p.parent.name == "b" else {})})
                 for p in sorted(Path(extra).glob("*/*.png"))]
    return AugmentedDataset(splits["train"], synthetic, classes=CLASSES, val=splits["val"], test=splits["test"])


def _expected_target(sample: Sample) -> list[float]:
    if sample.provenance and "soft_label" in sample.provenance:
        return [0.2, 0.8, 0.0]
    return [float(c == sample.label) for c in CLASSES]


def test_torch_soft_targets_are_the_records_soft_labels_or_one_hot(data) -> None:
    ds = data.to_torch(image_size=8, label_mode="soft")
    assert len(ds) == 13
    for i, sample in enumerate(data.samples):
        _, target = ds[i]
        assert target.dtype == torch.float32 and target.tolist() == pytest.approx(_expected_target(sample))
    assert [int(y) for _, y in data.to_torch(image_size=8)] == [CLASSES.index(s.label) for s in data.samples]
    images, targets = next(iter(data.to_torch_loader(batch_size=13, shuffle=False, image_size=8, label_mode="soft")))
    assert targets.shape == (13, 3) and float(targets.sum()) == pytest.approx(13.0)
    with pytest.raises(InvalidParameterError, match="label_mode"):
        data.to_torch(label_mode="categorical")


@pytest.mark.slow
def test_tf_soft_targets_in_concat_and_probability_mixing(data) -> None:
    pytest.importorskip("tensorflow")
    ds = data.to_tf(image_size=8, batch_size=None, shuffle=False, label_mode="soft")
    targets = [y.numpy().tolist() for _, y in ds]
    np.testing.assert_allclose(targets, [_expected_target(s) for s in data.samples], atol=1e-6)
    # probability mixing with p=1: every real b is replaced by a synthetic b (soft), every real c by the hard c
    mixed = data.to_tf(image_size=8, batch_size=None, shuffle=False, label_mode="soft", mixing="probability", p=1.0)
    served = [y.numpy().tolist() for _, y in mixed]
    np.testing.assert_allclose(served, [[1.0, 0, 0]] * 4 + [[0.2, 0.8, 0.0]] * 3 + [[0, 0, 1.0]] * 3, atol=1e-6)


def test_a_bad_soft_label_is_an_error_naming_the_image(data) -> None:
    bad = Sample(data.synthetic[0].path, "b", split="train", provenance={"soft_label": {"b": 0.5, "z": 0.5}})
    broken = AugmentedDataset(data.real, [bad], classes=CLASSES, val=data.val, test=data.test)
    with pytest.raises(InvalidParameterError, match="soft_label") as info:
        broken.to_torch(image_size=8, label_mode="soft")[10]
    assert str(bad.path) in str(info.value)


def test_the_harness_loss_on_a_fixed_batch_is_the_hand_computed_soft_cross_entropy(data) -> None:
    from synthaug._evaluate.config import TrainConfig
    from synthaug._evaluate.torch_backend import TorchClassifier

    clf = TorchClassifier(data, TrainConfig(image_size=16, steps=1, label_mode="soft"), class_weights=None, seed=0)
    logits = torch.tensor([[math.log(3.0), 0.0, -math.inf], [0.0, 0.0, 0.0]])
    targets = torch.tensor([[0.8, 0.2, 0.0], [0.0, 0.0, 1.0]])
    # -(0.8 ln 0.75 + 0.2 ln 0.25) = 0.507405; -ln(1/3) = 1.098612; the mean of the two
    loss = clf.loss(logits.nan_to_num(neginf=-1e4), targets)
    assert float(loss) == pytest.approx((0.507405 + 1.098612) / 2, abs=1e-5)
    clf.close()


@pytest.mark.parametrize("label_mode, bad", [("soft", "--label-mode")])
def test_label_mode_is_checked(label_mode, bad) -> None:
    from synthaug._evaluate.config import TrainConfig

    assert TrainConfig(label_mode=label_mode).label_mode == "soft" and TrainConfig().label_mode == "hard"
    with pytest.raises(InvalidParameterError, match=bad):
        TrainConfig(label_mode="mixup")


def test_a_harness_run_with_soft_labels_differs_from_hard_labels(data) -> None:
    from synthaug._evaluate.config import TrainConfig
    from synthaug._evaluate.training import TrainingTask, run_training

    def run(label_mode: str) -> list[float]:
        config = TrainConfig(image_size=16, batch_size=13, steps=3, eval_every=1, augment=False, threads=1,
                             label_mode=label_mode)
        task = TrainingTask(0, "soft", tuple(CLASSES), tuple(data.real), tuple(data.synthetic), data.val, data.test,
                            config, None, seed=0, steps=3, eval_every=1)
        return [h["train_loss"] for h in run_training(task)["history"]]

    hard, soft, hard_again = run("hard"), run("soft"), run("hard")
    assert hard == hard_again  # deterministic: the difference is the labels
    assert soft[0] != pytest.approx(hard[0], abs=1e-6)

"""Dataset adapters (torch, tf.data): counts, labels, one mapping, real-only val/test, mixing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import synthaug
from synthaug import AugmentedDataset, Dataset, LeakageError, MissingDependencyError, SyntheticAugmenter
from synthaug._errors import InvalidParameterError
from synthaug._splitting import split_dataset, write_split
from synthaug.testing import make_image_folder

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def augmented(tmp_path_factory) -> AugmentedDataset:
    """Split root of a 3-class folder (a=12, b=6, c=4), minority-upsampled with ``classic``."""
    tmp = tmp_path_factory.mktemp("adapters")
    data = make_image_folder(tmp / "data", {"a": 12, "b": 6, "c": 4}, size=24)
    splits = split_dataset(Dataset.from_folder(data), val=0.25, test=0.25, seed=0)
    root = write_split(splits, tmp / "split")
    return SyntheticAugmenter("classic", out_dir=tmp / "out").fit_resample(root)


def _expected(aug: AugmentedDataset) -> Counter:
    return Counter((aug.class_to_index[s.label], s.is_synthetic) for s in aug.samples)


def test_augmented_fixture_is_what_the_tests_assume(augmented):
    counts = augmented.counts()
    assert [counts[c]["real"] for c in "abc"] == [6, 2, 2]
    assert [counts[c]["synthetic"] for c in "abc"] == [0, 4, 4]
    assert augmented.class_to_index == {"a": 0, "b": 1, "c": 2}


def test_torch_dataset_counts_labels_and_flags(augmented):
    ds = augmented.to_torch(image_size=(12, 16), return_is_synthetic=True, synthetic_weight=0.25)
    assert isinstance(ds, torch.utils.data.Dataset)
    assert len(ds) == len(augmented) == 18
    seen = Counter()
    for i in range(len(ds)):
        image, label, weight, is_synthetic = ds[i]
        assert image.shape == (3, 12, 16) and image.dtype == torch.float32
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
        sample = augmented.samples[i]
        assert label == augmented.class_to_index[sample.label]
        assert is_synthetic == sample.is_synthetic
        assert float(weight) == (0.25 if is_synthetic else 1.0)
        seen[(label, is_synthetic)] += 1
    assert seen == _expected(augmented)
    assert ds.targets == [augmented.class_to_index[s.label] for s in augmented.samples]


def test_torch_loader_batches_every_item_once_per_epoch(augmented):
    loader = augmented.to_torch_loader(batch_size=5, image_size=8, seed=3)
    labels = torch.cat([labels for _, labels in loader])
    assert sorted(labels.tolist()) == sorted(augmented.class_to_index[s.label] for s in augmented.samples)
    again = torch.cat([labels for _, labels in loader])
    assert sorted(again.tolist()) == sorted(labels.tolist()) and again.tolist() != labels.tolist()


def test_torch_loader_batches_equal_the_dataset_items(augmented):
    """The loader collates uint8 pixels and converts each batch to float: the same values,
    labels, weights and flags as the dataset's own items, with and without worker processes."""
    options = dict(image_size=(12, 16), synthetic_weight=0.5, return_is_synthetic=True)
    ds = augmented.to_torch(**options)
    expected = [ds[i] for i in range(len(ds))]
    for workers in (0, 2):
        loader = augmented.to_torch_loader(batch_size=4, shuffle=False, num_workers=workers, **options)
        batches = list(loader)
        images, labels, weights = (torch.cat([b[k] for b in batches]) for k in range(3))
        flags = [f for b in batches for f in b[3]]
        assert images.dtype == torch.float32 and images.shape == (len(ds), 3, 12, 16)
        assert torch.equal(images, torch.stack([e[0] for e in expected]))
        assert labels.tolist() == [e[1] for e in expected]
        assert weights.tolist() == [float(e[2]) for e in expected]
        assert [bool(f) for f in flags] == [e[3] for e in expected]


@pytest.mark.parametrize("size", [(40, 56), (9, 7)], ids=["upscale", "downscale"])
def test_torch_resize_is_pillow_bilinear_within_two_levels(tmp_path, size):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    smooth = np.kron(rng.integers(0, 256, (6, 8, 3)), np.ones((4, 4, 1))).astype(np.uint8)
    Image.fromarray(smooth).save(data / "a" / "x.png")  # 24 x 32, lossless
    item = AugmentedDataset(Dataset.from_folder(data)).to_torch(image_size=size)[0][0]
    ours = (item * 255).round().to(torch.uint8).permute(1, 2, 0).numpy().astype(int)
    pillow = np.asarray(Image.fromarray(smooth).resize(size[::-1], Image.Resampling.BILINEAR)).astype(int)
    assert ours.shape == pillow.shape
    assert np.abs(ours - pillow).max() <= 2
    assert (ours == pillow).mean() > 0.9


def test_tf_dataset_matches_torch_mapping_and_counts(augmented):
    pytest.importorskip("tensorflow")
    ds = augmented.to_tf(image_size=8, batch_size=4, shuffle=True, seed=1, return_is_synthetic=True)
    seen, n_batches = Counter(), 0
    for images, labels, flags in ds:
        assert images.shape[1:] == (8, 8, 3) and images.dtype.name == "float32"
        seen.update(zip(labels.numpy().tolist(), flags.numpy().tolist()))
        n_batches += 1
    assert n_batches == 5  # 18 items in batches of 4
    assert seen == _expected(augmented)
    onehot = next(iter(augmented.to_tf(8, None, False, label_mode="categorical")))
    assert onehot[1].numpy().tolist() == [1.0, 0.0, 0.0]  # first sample is real class "a"


def test_tf_sample_weights_mark_synthetic_images(augmented):
    pytest.importorskip("tensorflow")
    ds = augmented.to_tf(8, None, False, synthetic_weight=0.5, return_is_synthetic=True)
    pairs = {(float(w), bool(f)) for _, _, w, f in ds}
    assert pairs == {(1.0, False), (0.5, True)}


@pytest.mark.parametrize("split", ["val", "test"])
def test_held_out_splits_are_real_only(augmented, split):
    held = getattr(augmented, split)
    ds = augmented.to_torch(split, image_size=8, return_is_synthetic=True)
    assert len(ds) == len(held) == 6
    assert not any(ds[i][2] for i in range(len(ds)))
    with pytest.raises(LeakageError, match="real-only"):
        augmented.to_torch(split, mixing="probability", p=0.5)
    pytest.importorskip("tensorflow")
    with pytest.raises(LeakageError, match="real-only"):
        augmented.to_tf(8, split=split, mixing="probability", p=0.5)
    flags = [bool(f) for _, _, f in augmented.to_tf(8, None, split=split, return_is_synthetic=True)]
    assert len(flags) == 6 and not any(flags)


def test_synthetic_or_training_images_in_val_or_test_are_refused(augmented):
    synthetic_val = Dataset(list(augmented.val) + [augmented.synthetic[0]])
    with pytest.raises(LeakageError, match="synthetic"):
        AugmentedDataset(augmented.real, augmented.synthetic, val=synthetic_val)
    leaked_test = Dataset([augmented.real[0]])
    with pytest.raises(LeakageError, match="also a training image"):
        AugmentedDataset(augmented.real, augmented.synthetic, test=leaked_test)


def test_probability_mixing_replaces_at_rate_p_in_torch(augmented):
    ds = augmented.to_torch(image_size=4, mixing="probability", p=0.3, return_is_synthetic=True, seed=7)
    assert len(ds) == len(augmented.real) == 10
    replaceable = [i for i, s in enumerate(augmented.real) if s.label in ("b", "c")]
    draws = []
    for epoch in range(150):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            sample = ds.mixed.draw(i, epoch)
            assert sample.label == augmented.real[i].label  # same class, always
            if i in replaceable:
                draws.append(sample.is_synthetic)
            else:
                assert not sample.is_synthetic  # class "a" has no synthetic pool
    rate, n = sum(draws) / len(draws), len(draws)
    assert abs(rate - 0.3) < 4 * (0.3 * 0.7 / n) ** 0.5, rate
    _, label, flag = ds[replaceable[0]]
    assert label == augmented.class_to_index[augmented.real[replaceable[0]].label]


def test_probability_mixing_replaces_at_rate_p_in_tf(augmented):
    pytest.importorskip("tensorflow")
    ds = augmented.to_tf(4, None, True, seed=2, mixing="probability", p=0.5, return_is_synthetic=True)
    flags, epochs = [], []
    for _ in range(40):
        epoch = [(int(label), bool(flag)) for _, label, flag in ds]
        assert Counter(label for label, _ in epoch) == Counter({0: 6, 1: 2, 2: 2})
        assert not any(flag for label, flag in epoch if label == 0)
        flags.extend(flag for label, flag in epoch if label != 0)
        epochs.append(epoch)
    rate, n = sum(flags) / len(flags), len(flags)
    assert abs(rate - 0.5) < 4 * (0.25 / n) ** 0.5, rate
    assert len({tuple(e) for e in epochs}) > 1  # new draws every epoch


def test_probability_mixing_extremes(augmented):
    never = augmented.to_torch(mixing="probability", p=0.0)
    always = augmented.to_torch(mixing="probability", p=1.0)
    assert not any(never.mixed.draw(i).is_synthetic for i in range(10))
    assert [always.mixed.draw(i).is_synthetic for i in range(10)] == [s.label != "a" for s in augmented.real]


def test_bad_adapter_arguments_raise_clear_errors(augmented):
    with pytest.raises(InvalidParameterError, match="mixing"):
        augmented.to_torch(mixing="interleave")
    with pytest.raises(InvalidParameterError, match="p=None"):
        augmented.to_torch(mixing="probability")
    with pytest.raises(InvalidParameterError, match="image_size"):
        augmented.to_torch(image_size=(0, 3))
    with pytest.raises(InvalidParameterError, match="split"):
        augmented.to_torch("holdout")


def test_missing_framework_names_the_pip_command(augmented, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "synthaug\[torch\]"'):
        augmented.to_torch()
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "synthaug\[tf\]"'):
        augmented.to_tf(8)


def test_importing_the_adapters_imports_no_framework():
    code = (
        "import sys, synthaug._adapters, synthaug._adapters.torch, synthaug._adapters.keras, synthaug._augmented;"
        "bad = [m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_hf_dataset_to_adapters(tmp_path):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    colours = {"cat": (200, 30, 30), "dog": (30, 30, 200)}
    # distinct pixels per row: from_hf keys its cache by content, so identical rows would be one image
    images = [Image.new("RGB", (10, 10), tuple(c + i for c in colours[name]))
              for i, name in enumerate(["dog", "cat", "dog", "dog"])]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "dog"])})
    hf = datasets.Dataset.from_dict({"image": images, "label": [1, 0, 1, 1]}, features=features)
    ds = Dataset.from_hf(hf, tmp_path / "hf-cache")
    assert ds.counts() == {"cat": 1, "dog": 3}
    again = Dataset.from_hf(hf, tmp_path / "hf-cache")  # reuses the written files
    assert [s.path for s in again] == [s.path for s in ds]
    loader = AugmentedDataset(ds).to_torch_loader(batch_size=4, image_size=6, shuffle=False)
    images_t, labels = next(iter(loader))
    assert labels.tolist() == [1, 0, 1, 1]
    assert images_t[1, 0].mean() > images_t[1, 2].mean()  # the cat image is red
    with pytest.raises(synthaug.DatasetError, match="no column 'img'"):
        Dataset.from_hf(hf, tmp_path / "x", image_column="img")


# -- generators are fitted on training images only ----------------------------------------------
def test_augmenter_fits_on_the_train_split_only(augmented):
    fitted_on = {p.name for s in augmented.synthetic for p in [Path(s.provenance["source"])]}
    train_names = {s.path.name for s in augmented.real}
    held_names = {s.path.name for s in list(augmented.val) + list(augmented.test)}
    assert fitted_on and fitted_on <= train_names and not fitted_on & held_names


def test_fitting_on_a_val_or_test_image_is_refused(tmp_path):
    data = make_image_folder(tmp_path / "data", {"a": 8, "b": 4}, size=16)
    root = write_split(split_dataset(Dataset.from_folder(data), val=0.25, test=0.25, seed=0), tmp_path / "split")
    leaked = next((root / "test" / "b").iterdir())
    shutil.copy(leaked, root / "train" / "b" / "copy-of-a-test-image.png")
    augmenter = SyntheticAugmenter("classic", out_dir=tmp_path / "out")
    with pytest.raises(LeakageError, match="test split"):
        augmenter.fit_resample(root)
    assert not (tmp_path / "out").exists()
    marked = Dataset.from_folder(data).with_split("val")
    with pytest.raises(LeakageError, match="val"):
        augmenter.fit_resample(marked)


def test_torch_dataset_pickles_for_loader_workers(augmented):
    import pickle

    ds = augmented.to_torch(image_size=8, mixing="probability", p=0.5, seed=4)
    clone = pickle.loads(pickle.dumps(ds))
    assert isinstance(clone, torch.utils.data.Dataset) and len(clone) == len(ds)
    for i in range(len(ds)):  # same draws for the same (epoch, index), in any process
        assert clone[(3, i)][1] == ds[(3, i)][1] and torch.equal(clone[(3, i)][0], ds[(3, i)][0])


def test_adapter_keywords_have_one_definition(augmented):
    """to_torch/to_tf/mixed_samples take the fields of the options dataclasses, and only those."""
    from dataclasses import fields

    from synthaug._adapters import MixingOptions, TfOptions, TorchOptions

    mixing = {f.name for f in fields(MixingOptions)}
    assert mixing <= {f.name for f in fields(TorchOptions)} and mixing <= {f.name for f in fields(TfOptions)}
    with pytest.raises(InvalidParameterError,
                       match=r"synthetic_wieght=0.5: not a keyword of to_torch\(\);.*synthetic_weight"):
        augmented.to_torch(synthetic_wieght=0.5)
    with pytest.raises(InvalidParameterError, match=r"label_mod='int': not a keyword of to_tf\(\);.*drop_remainder"):
        augmented.to_tf(8, label_mod="int")
    with pytest.raises(TypeError, match="multiple values for image_size"):
        augmented.to_tf(8, image_size=8)
    with pytest.raises(TypeError, match="at most 4 positional"):
        augmented.to_tf(8, None, False, 0, "int")
    by_position = [int(y) for _, y in augmented.to_tf(8, None, False, 3)]
    by_name = [int(y) for _, y in augmented.to_tf(image_size=8, batch_size=None, shuffle=False, seed=3)]
    assert by_position == by_name and len(by_name) == len(augmented)

"""``AugmentedDataset.to_hf()``: a Hugging Face dataset out, read back with ``Dataset.from_hf``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import synthaug
from synthaug import AugmentedDataset, Dataset
from synthaug._errors import InvalidParameterError

datasets = pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def balanced(tmp_path_factory: pytest.TempPathFactory) -> AugmentedDataset:
    from synthaug.testing import make_image_folder

    root = tmp_path_factory.mktemp("hf")
    data = make_image_folder(root / "data", {"a": 6, "bb": 3, "c": 2})
    return synthaug.upsample(data, root / "synthetic")


def test_columns_labels_and_provenance(balanced: AugmentedDataset) -> None:
    hf = balanced.to_hf()
    assert list(hf.column_names) == ["image", "label", "is_synthetic", "generator", "seed", "source"]
    assert hf.features["label"].names == list(balanced.class_to_index)
    assert len(hf) == len(balanced) == 18
    assert hf["is_synthetic"] == [s.is_synthetic for s in balanced]
    assert [hf.features["label"].int2str(i) for i in hf["label"]] == [s.label for s in balanced]
    real, synthetic = balanced.samples[0], balanced.synthetic[0]
    assert hf[0]["generator"] is None and hf[0]["seed"] is None and hf[0]["source"] == str(real.path)
    row = hf[len(balanced.real)]
    assert row["generator"] == "classic" and row["seed"] == synthetic.provenance["seed"]
    assert row["source"] == synthetic.provenance["source"]  # the training image the transform started from
    assert np.array_equal(np.asarray(row["image"].convert("RGB")), np.asarray(synthetic.load()))


def test_round_trip_through_from_hf(balanced: AugmentedDataset, tmp_path: Path) -> None:
    back = Dataset.from_hf(balanced.to_hf(embed_images=True), tmp_path / "cache")
    assert back.counts() == {c: n["total"] for c, n in balanced.counts().items()}
    assert back.class_to_index == balanced.class_to_index
    for original, restored in zip(balanced, back):
        assert restored.label == original.label
        assert np.array_equal(np.asarray(restored.load()), np.asarray(original.load()))


def test_saved_to_disk_with_embedded_images_survives_without_the_folders(balanced: AugmentedDataset,
                                                                          tmp_path: Path) -> None:
    balanced.to_hf(embed_images=True).save_to_disk(str(tmp_path / "saved"))
    loaded = datasets.load_from_disk(str(tmp_path / "saved"))
    assert Counter(loaded["is_synthetic"]) == {False: 11, True: 7}
    assert np.array_equal(np.asarray(loaded[-1]["image"].convert("RGB")), np.asarray(balanced[-1].load()))


def test_held_out_splits_are_real_only_and_missing_ones_are_a_clear_error(balanced: AugmentedDataset) -> None:
    with pytest.raises(InvalidParameterError, match="no val data"):
        balanced.to_hf("val")
    assert balanced.to_hf(include_synthetic=False)["is_synthetic"] == [False] * len(balanced.real)

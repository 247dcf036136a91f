"""A generator that learns from its images, fitted on an unsplit folder, gets a one-line notice."""

from __future__ import annotations

from synthaug import Dataset, SyntheticAugmenter
from synthaug._parameters import unsplit_notice
from synthaug._plugins import get_generator
from synthaug._splitting import split_dataset, write_split
from synthaug.testing import make_image_folder


class Learner(get_generator("classic")):
    """classic's images, but declared as a generator that trains on them."""

    name = "learner"
    learns_from_images = True


def test_notice_only_for_a_learning_generator_on_an_unsplit_folder(tmp_path):
    data = make_image_folder(tmp_path / "d", {"a": 6, "b": 3}, size=8)
    learner = SyntheticAugmenter(Learner(), "upsample", out_dir=tmp_path / "o1")
    assert unsplit_notice("learner") in learner.notices(data)
    assert "synthaug split" in unsplit_notice("learner") and "\n" not in unsplit_notice("learner")
    classic = SyntheticAugmenter(get_generator("classic")(), "upsample", out_dir=tmp_path / "o2")
    assert not any("unsplit" in n for n in classic.notices(data))  # classic trains nothing
    root = write_split(split_dataset(Dataset.from_folder(data), val=0.2, test=0.3, seed=0), tmp_path / "split")
    split = SyntheticAugmenter(Learner(), "upsample", out_dir=tmp_path / "o3")
    assert not any("unsplit" in n for n in split.notices(root))

"""``-e upsample-filtered:FILTER``: the filtered and unfiltered pools side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthaug import InvalidParameterError
from synthaug._dataset import Dataset, Sample
from synthaug._evaluate.experiments import parse_experiments
from synthaug._evaluate.experiments.filtered import FilteredUpsample
from synthaug._evaluate.experiments.upsample import Upsample


def _textured(colour: tuple[int, int, int], seed: int) -> Image.Image:
    noise = np.random.default_rng(seed).integers(-25, 25, (24, 24, 3))
    return Image.fromarray((np.array(colour) + noise).clip(0, 255).astype("uint8"))


def test_experiment_spec_and_pool_headroom(tmp_path: Path) -> None:
    exps = parse_experiments(["upsample", "upsample-filtered:classifier-confidence:0.3"])
    assert [e.name for e in exps] == ["baseline", "upsample", "upsample-filtered-classifier-confidence-0.3"]
    filtered = exps[2]
    assert filtered.to_dict()["filter"] == "classifier-confidence:0.3"
    assert parse_experiments(["upsample-filtered"])[1].filter == "classifier-confidence:0.3"
    with pytest.raises(InvalidParameterError, match="upsample-filtered:classifier-confidence"):
        parse_experiments(["upsample-filtered:nearest-real"])
    for label, n in (("red", 12), ("blue", 4)):
        (tmp_path / label).mkdir()
        for i in range(n):
            _textured((200, 40, 40), i).save(tmp_path / label / f"{i}.png")
    train = Dataset.from_folder(tmp_path)
    assert Upsample("upsample").needed_synthetic(train) == {"red": 0, "blue": 8}
    assert filtered.needed_synthetic(train) == {"red": 0, "blue": 12}  # 50 % headroom for rejected images


@pytest.mark.slow  # trains a small CNN
def test_filtered_pool_skips_the_other_class_image(tmp_path: Path) -> None:
    colours = {"red": (200, 40, 40), "blue": (40, 40, 200)}
    for label, n in (("red", 16), ("blue", 6)):
        (tmp_path / "real" / label).mkdir(parents=True)
        for i in range(n):
            _textured(colours[label], i).save(tmp_path / "real" / label / f"{i}.png")
    train = Dataset.from_folder(tmp_path / "real")
    pool_dir = tmp_path / "pool"
    pool_dir.mkdir()
    pool = {"red": [], "blue": []}
    for i in range(14):
        colour = colours["red"] if i == 0 else colours["blue"]  # the first blue image is red: wrong class
        _textured(colour, 100 + i).save(pool_dir / f"{i}.png")
        pool["blue"].append(Sample(pool_dir / f"{i}.png", "blue"))
    spec = "classifier-confidence:min=0.3,steps=60,size=16"
    plain = Upsample("upsample").training_set(train, pool=pool, source="pool", seed=0)
    filtered = FilteredUpsample("f", filter=spec).training_set(train, pool=pool, source="pool", seed=0)
    assert len(plain.synthetic) == len(filtered.synthetic) == 10
    assert pool["blue"][0] in plain.synthetic and pool["blue"][0] not in filtered.synthetic
    assert filtered.synthetic == pool["blue"][1:11]  # the same order, the rejected image replaced by the next

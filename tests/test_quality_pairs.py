"""nearest-pairs.png: each thumbnail says whether it is the synthetic or the real image, the
labels fit under their own thumbnail, and a long class name is wrapped, not cut."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from synthaug._quality.plots import PAIR_LABELS, save_pairs, wrap_text
from synthaug.testing import make_image_folder

LONG = "pigmented_benign_keratosis and seborrheic lesions of the trunk"


def test_labels_fit_their_thumbnail_and_long_captions_wrap(tmp_path: Path) -> None:
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    assert all(draw.textlength(label) <= 80 for label in PAIR_LABELS)  # no overlap with the neighbour
    lines = wrap_text(draw, f"{LONG} sim 0.97", 164)
    assert len(lines) > 1 and all(draw.textlength(line) <= 164 for line in lines)
    assert " ".join(lines).replace("  ", " ") == f"{LONG} sim 0.97"  # every character kept
    assert "".join(wrap_text(draw, "x" * 60, 100)) == "x" * 60


def test_pairs_sheet_has_a_label_band_under_each_thumbnail(tmp_path: Path) -> None:
    folder = make_image_folder(tmp_path / "d", {"a": 2}, size=16)
    a, b = sorted(folder.glob("a/*.png"))
    out = save_pairs([(a, b, f"{LONG} sim 0.97", False), (b, a, "a sim 0.50", True)], tmp_path / "p.png",
                     thumb=80, per_row=2)
    pixels = np.asarray(Image.open(out).convert("L"))
    short = save_pairs([(a, b, "a sim 0.5", False)], tmp_path / "s.png", thumb=80, per_row=2)
    assert pixels.shape[0] > Image.open(short).height  # the long caption took extra lines
    title_h = pixels.shape[0] - 80 - 13 - 8
    band = pixels[title_h + 80 + 2: title_h + 80 + 13]
    for x0 in (4, 4 + 84):  # under the synthetic and under the real thumbnail of the first pair
        assert (band[:, x0:x0 + 80] < 128).any()
    assert not (band[:, 4 + 80: 4 + 84] < 128).any()  # the gap between the two labels stays clear

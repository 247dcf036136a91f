"""``synthaug filter --by``: each filter rejects a planted bad image and keeps the good ones.

The images are textured squares (a +-20 checkerboard on a base colour), so the feature
``mean_rgb`` below is exactly the base colour and the geometry is known: the real ``red``
images lie on a line with spacing 5 (green channel 40, 45, ... 135), the good synthetic ones
between two of them (distances 2 and 3), ``blue`` likewise.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthaug import Proportion, SyntheticAugmenter
from synthaug._cli import main
from synthaug._quality import filter_synthetic, quality_report
from synthaug._store import Store

BASES = {"red": lambda v: (200, v, 40), "blue": lambda v: (40, v, 200)}


def mean_rgb(images: list) -> np.ndarray:
    """The feature space of these tests: the mean colour (a user callable, package.module:function)."""
    return np.stack([np.asarray(im, dtype=np.float64).reshape(-1, 3).mean(0) for im in images])


class PromptSpace:
    """A stand-in for CLIP: images are their mean colour, prompts name a colour."""

    name = "toy-clip"

    def extract(self, paths):  # noqa: ANN001
        return mean_rgb([Image.open(p).convert("RGB") for p in paths])

    def text_features(self, prompts):  # noqa: ANN001
        return np.array([[1.0, 0.2, 0.2] if "red" in p else [0.2, 0.2, 1.0] for p in prompts])


def textured(colour: tuple[int, int, int], side: int = 32) -> Image.Image:
    yy, xx = np.mgrid[0:side, 0:side]
    sign = np.where((yy // 4 + xx // 4) % 2 == 0, 20, -20)[..., None]
    return Image.fromarray((np.array(colour)[None, None, :] + sign).clip(0, 255).astype("uint8"))


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """Real images, a synthaug output folder of good images, and planted bad ones (file -> kind)."""
    real = tmp_path / "real"
    for label, base in BASES.items():
        (real / label).mkdir(parents=True)
        for i in range(20):
            textured(base(40 + 5 * i)).save(real / label / f"{i:02d}.png")
    out = tmp_path / "out"
    SyntheticAugmenter("classic", Proportion(0.5), out_dir=out).fit_resample(real)
    records = Store(out).records()
    planted: dict[str, str] = {}
    for label, base in BASES.items():
        mine = sorted((r for r in records if r["class"] == label), key=lambda r: r["file"])
        for j, r in enumerate(mine):
            textured(base(42 + 5 * j)).save(out / r["file"])  # 2 from one real image, 3 from the next
        red = label == "red"
        (out / mine[0]["file"]).write_bytes((real / label / "07.png").read_bytes())  # a copy of a real image
        textured((40, 200, 40)).save(out / mine[1]["file"])  # green: far from everything
        other = BASES["blue" if red else "red"](90)
        textured(other).save(out / mine[2]["file"])  # an image of the other class
        planted.update({mine[0]["file"]: "copy", mine[1]["file"]: "outlier", mine[2]["file"]: "other-class"})
    return real, out, planted


def _rejected(out: Path) -> dict[str, str]:
    return {r["file"]: r.get("reason", "") for r in Store(out).rejected()}


def test_nearest_real_rejects_copies_and_far_images_and_keeps_the_good_ones(folders, tmp_path: Path) -> None:
    real, out, planted = folders
    n_before = len(Store(out).records())
    result = filter_synthetic(out, real, features=f"{__name__}:mean_rgb", reasons=["blank", "unreadable"],
                              by=["nearest-real"], figures=False)
    rejected = _rejected(out)
    wanted = {f for f, kind in planted.items() if kind in ("copy", "outlier", "other-class")}
    assert set(rejected) == wanted  # the copy (too near), the green and the other-class images (too far)
    assert result["rejected"] == len(wanted) and len(Store(out).records()) == n_before - len(wanted)
    rates = result["keep_rates"]["nearest-real"]
    assert {label: (c["n"], c["kept"]) for label, c in rates.items()} == {
        label: (n_before // 2, n_before // 2 - 3) for label in BASES}
    for file in wanted:  # moved aside, not deleted
        assert (out.parent / f"{out.name}.synthaug" / "rejected" / file).is_file() and not (out / file).exists()


def test_outlier_filter_rejects_only_the_far_images(folders) -> None:
    real, out, planted = folders
    filter_synthetic(out, real, features=f"{__name__}:mean_rgb", reasons=["blank"], by=["outlier"], figures=False)
    assert set(_rejected(out)) == {f for f, kind in planted.items() if kind in ("outlier", "other-class")}


@pytest.mark.slow  # trains a small CNN (about 15 s with the torch import on 2 cores)
def test_classifier_confidence_rejects_the_other_class_image(folders) -> None:
    real, out, planted = folders
    report = quality_report(real, out, features=f"{__name__}:mean_rgb", figures=False, bootstrap=0)
    result = filter_synthetic(out, report=report, reasons=["blank"],
                              by=["classifier-confidence:min=0.3,steps=80,size=16"])
    rejected = set(_rejected(out))
    other = {f for f, kind in planted.items() if kind == "other-class"}
    assert other <= rejected  # the blue image in the red folder and the red one in the blue folder
    assert len(rejected - other) <= 1  # the green one may go either way; every good image is kept
    assert "classifier-confidence" in " ".join(_rejected(out).values())
    assert result["keep_rates"]["classifier-confidence:min=0.3,steps=80,size=16"]["red"]["n"] == len(report.images) // 2


def test_prompt_similarity_rejects_the_image_unlike_its_prompt(folders) -> None:
    real, out, planted = folders
    filter_synthetic(out, real, features=PromptSpace(), reasons=["blank"], by=["prompt-similarity:0.9"], figures=False)
    assert set(_rejected(out)) == {f for f, kind in planted.items() if kind in ("other-class", "outlier")}


def test_prompt_similarity_needs_clip(folders) -> None:
    from synthaug import InvalidParameterError

    real, out, _ = folders
    with pytest.raises(InvalidParameterError, match="clip"):
        filter_synthetic(out, real, features=f"{__name__}:mean_rgb", by=["prompt-similarity"], figures=False)
    assert _rejected(out) == {}


def test_filter_specs_are_checked() -> None:
    from synthaug import InvalidParameterError
    from synthaug._quality.selection import parse_filter

    assert parse_filter("nearest-real:far=0.9,near=0.05").options == {"far": "0.9", "near": "0.05"}
    assert parse_filter("classifier-confidence:0.4").options == {"min": "0.4"}
    assert parse_filter("outlier:top=0.8").options == {"top": "0.8"}
    for bad in ("sharpness", "nearest-real:0.3", "outlier:top=0", "nearest-real:far=2", "copy:0.5"):
        with pytest.raises(InvalidParameterError, match="--by"):
            parse_filter(bad)


def test_filter_cli_combines_filters_reports_keep_rates_and_balance_tops_up(folders, tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture) -> None:
    real, out, planted = folders
    planned = len(Store(out).records())
    blank = sorted(r["file"] for r in Store(out).records() if r["class"] == "blue")[3]
    Image.new("RGB", (32, 32), (90, 90, 90)).save(out / blank)  # left to the blank rule, kept by --on's default
    report_dir = tmp_path / "report"
    code = main(["filter", str(out), "--real", str(real), "--features", f"{__name__}:mean_rgb", "--by",
                 "nearest-real:far=0.99,near=0.05", "--by", "outlier", "--report", str(report_dir), "--json"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)["filtered"]
    assert set(_rejected(out)) == {*planted, blank} and summary["rejected"] == len(planted) + 1
    assert _rejected(out)[blank] == "blank" and summary["by_reason"]["blank"] == 1
    saved = json.loads((report_dir / "report.json").read_text())
    assert set(saved["filters"]) == {"nearest-real:far=0.99,near=0.05", "outlier", "all filters"}
    assert saved["filters"]["all filters"]["red"]["kept"] == planned // 2 - 3
    assert "## Filters: share of images kept" in (report_dir / "report.md").read_text()
    assert "Filters: images kept per class" in (report_dir / "report.html").read_text()
    SyntheticAugmenter("classic", Proportion(0.5), out_dir=out).fit_resample(real)  # the same run again
    assert len(Store(out).records()) == planned

"""Reading datasets: folders, CSV, lists; unreadable files; colour modes; empty classes."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthaug import Dataset, DatasetError, UnreadableImageError
from synthaug._dataset import EmptyClassWarning, UnreadableImagesWarning
from synthaug._imageio import load_image


def _rgb(path: Path, color=(200, 30, 40), size=(16, 12)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def test_folder_ignores_hidden_and_non_image_files(tmp_path: Path) -> None:
    for i in range(3):
        _rgb(tmp_path / "cat" / f"{i}.png")
    _rgb(tmp_path / "dog" / "a.jpg")
    (tmp_path / "dog" / ".DS_Store").write_bytes(b"\x00\x01junk")
    (tmp_path / "dog" / "notes.txt").write_text("hello")
    _rgb(tmp_path / "dog" / ".hidden.png")
    _rgb(tmp_path / ".git" / "x.png")
    ds = Dataset.from_folder(tmp_path)
    assert ds.counts() == {"cat": 3, "dog": 1}
    assert ds.class_to_index == {"cat": 0, "dog": 1}


def test_unreadable_files_skipped_with_one_warning(tmp_path: Path) -> None:
    _rgb(tmp_path / "a" / "good.png")
    (tmp_path / "a" / "zero.png").write_bytes(b"")
    (tmp_path / "a" / "corrupt.jpg").write_bytes(b"not an image at all")
    full = _rgb(tmp_path / "b" / "full.jpg", size=(64, 64))
    (tmp_path / "b" / "truncated.jpg").write_bytes(full.read_bytes()[:200])
    with pytest.warns(UnreadableImagesWarning) as record:
        ds = Dataset.from_folder(tmp_path)
    assert len(record) == 1
    message = str(record[0].message)
    assert "3 unreadable" in message
    for name in ("zero.png", "corrupt.jpg", "truncated.jpg"):
        assert name in message
    assert ds.counts() == {"a": 1, "b": 1}
    assert len(ds.skipped) == 3
    with pytest.raises(UnreadableImageError, match="3 unreadable"):
        Dataset.from_folder(tmp_path, strict=True)


def test_empty_class_is_reported_not_dropped(tmp_path: Path) -> None:
    _rgb(tmp_path / "a" / "1.png")
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.png").write_bytes(b"")
    with pytest.warns(EmptyClassWarning, match="broken, empty"):
        ds = Dataset.from_folder(tmp_path)
    assert ds.counts() == {"a": 1, "broken": 0, "empty": 0}
    assert ds.empty_classes == ("broken", "empty")


def test_colour_modes_become_rgb_deterministically(tmp_path: Path) -> None:
    grey = Image.fromarray(np.full((8, 8), 100, np.uint8), "L")
    grey.save(tmp_path / "l.png")
    Image.new("RGBA", (8, 8), (255, 0, 0, 128)).save(tmp_path / "rgba.png")
    grey.convert("P").save(tmp_path / "p.png")
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(tmp_path / "i16.png")
    expected = {
        "l.png": (100, 100, 100),
        "rgba.png": (128, 0, 0),  # composited onto black
        "p.png": (100, 100, 100),
        "i16.png": (255, 255, 255),  # scaled by the 16-bit range
    }
    for name, pixel in expected.items():
        image = load_image(tmp_path / name)
        assert image.mode == "RGB", name
        assert image.getpixel((3, 3)) == pixel, name
        assert load_image(tmp_path / name).tobytes() == image.tobytes()
    cmyk = load_image(tmp_path / "cmyk.jpg")
    assert cmyk.mode == "RGB"
    r, g, b = cmyk.getpixel((3, 3))
    assert r > 200 and g < 60 and b < 60  # CMYK (0,255,255,0) is red


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.new("RGB", (20, 10), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    image.save(tmp_path / "rot.jpg", exif=exif.tobytes())
    assert load_image(tmp_path / "rot.jpg").size == (10, 20)


def test_decompression_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import synthaug._imageio as io

    _rgb(tmp_path / "a" / "small.png", size=(8, 8))
    _rgb(tmp_path / "a" / "big.png", size=(100, 100))
    monkeypatch.setattr(io, "MAX_IMAGE_PIXELS", 1000)
    with pytest.warns(UnreadableImagesWarning, match="big.png"):
        ds = Dataset.from_folder(tmp_path)
    assert [s.path.name for s in ds] == ["small.png"]


def test_csv_paths_are_relative_to_the_csv(tmp_path: Path) -> None:
    _rgb(tmp_path / "imgs" / "1.png")
    _rgb(tmp_path / "imgs" / "2.png")
    (tmp_path / "labels.csv").write_text("path,label,lesion\nimgs/1.png,x,L1\nimgs/2.png,y,L2\n")
    ds = Dataset.from_csv(tmp_path / "labels.csv", group_column="lesion")
    assert ds.counts() == {"x": 1, "y": 1}
    assert [s.group for s in ds] == ["L1", "L2"]
    assert Dataset.load(tmp_path / "labels.csv").counts() == {"x": 1, "y": 1}
    with pytest.raises(DatasetError, match="no column 'nope'"):
        Dataset.from_csv(tmp_path / "labels.csv", label_column="nope")
    (tmp_path / "bad.csv").write_text("path,label\nimgs/missing.png,x\n")
    with pytest.raises(DatasetError, match="do not exist"):
        Dataset.from_csv(tmp_path / "bad.csv")


def test_lists_and_errors(tmp_path: Path) -> None:
    paths = [_rgb(tmp_path / f"{i}.png") for i in range(3)]
    ds = Dataset.from_lists(paths, ["a", "b", "a"])
    assert ds.counts() == {"a": 2, "b": 1}
    with pytest.raises(DatasetError, match="differ in length"):
        Dataset.from_lists(paths, ["a"])
    with pytest.raises(DatasetError, match="cannot be used as a folder name"):
        Dataset.from_lists(paths[:1], ["../evil"])
    with pytest.raises(DatasetError, match="does not exist"):
        Dataset.from_folder(tmp_path / "nope")


def test_skin_lesions_dev_set(skin_lesions: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = Dataset.from_folder(skin_lesions)
    assert len(ds) == 890
    assert ds.counts()["nevus"] == 400 and ds.counts()["dermatofibroma"] == 30
    assert len(ds.classes) == 7

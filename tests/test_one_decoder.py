"""Issue 21: one decoder for every reader.

A corpus of tricky images is written in the test (EXIF orientations 1-8, 16-bit grey, RGBA,
LA, P with transparency, CMYK JPEG, grey JPEG). ``synthaug.load_image`` is the reference;
the torch adapter, the TF adapter (at native size: no resize differences) and a
``Dataset.from_hf`` round trip through a real ``datasets.Dataset`` must give identical pixels.
The rules themselves are checked on values known in advance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthaug import AugmentedDataset, Dataset, load_image

#: EXIF orientation -> the transpose that *writes* an upright image so that applying the
#: orientation on display restores it (the inverse of what the viewer applies).
_WRITE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def _upright() -> Image.Image:
    """48x24 px, asymmetric: a bright top-left quadrant and a horizontal gradient."""
    pixels = np.zeros((24, 48, 3), np.uint8)
    pixels[..., 0] = np.linspace(0, 255, 48, dtype=np.uint8)[None, :]
    pixels[:12, :24, 1] = 250
    pixels[12:, 24:, 2] = 180
    return Image.fromarray(pixels)


def write_corpus(folder: Path) -> dict[str, Path]:
    """Write the tricky images under ``folder/x/`` (one class) and return name -> path."""
    root = folder / "x"
    root.mkdir(parents=True)
    paths: dict[str, Path] = {}
    for orientation, transpose in _WRITE.items():
        image = _upright() if transpose is None else _upright().transpose(transpose)
        exif = Image.Exif()
        exif[0x0112] = orientation
        paths[f"exif{orientation}"] = root / f"exif{orientation}.jpg"
        image.save(paths[f"exif{orientation}"], "JPEG", quality=95, exif=exif.tobytes())
    grey16 = np.tile(np.linspace(0, 65535, 40).astype(np.uint16), (20, 1))
    grey16[0, 0] = 32896  # 32896 / 257 = 128 exactly
    Image.fromarray(grey16).save(root / "grey16.png")
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, np.linspace(0, 255, 30, dtype=np.uint8)[None, :]
    rgba[0, 0] = (255, 0, 0, 128)
    Image.fromarray(rgba, "RGBA").save(root / "rgba.png")
    la = np.stack([np.full((20, 30), 200, np.uint8), np.tile(np.linspace(0, 255, 30, dtype=np.uint8), (20, 1))], -1)
    Image.fromarray(la, "LA").save(root / "la.png")
    palette = Image.new("P", (30, 20), 1)
    palette.putpalette([0, 0, 0, 250, 10, 10, 10, 250, 10] + [0] * 759)
    palette.paste(2, (0, 0, 15, 20))
    palette.save(root / "ptrans.png", transparency=1)
    Image.new("CMYK", (30, 20), (10, 200, 30, 40)).save(root / "cmyk.jpg", "JPEG", quality=95)
    Image.fromarray(np.tile(np.linspace(0, 255, 30, dtype=np.uint8), (20, 1)), "L").save(root / "grey.jpg", "JPEG")
    for name in ("grey16", "rgba", "la", "ptrans", "cmyk", "grey"):
        paths[name] = next(root.glob(f"{name}.*"))
    return paths


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    folder = tmp_path_factory.mktemp("corpus")
    return folder, write_corpus(folder)


def reference(paths: dict[str, Path]) -> dict[str, np.ndarray]:
    return {name: np.asarray(load_image(path)) for name, path in paths.items()}


def test_the_decoder_applies_the_rules(corpus) -> None:
    _, paths = corpus
    ref = reference(paths)
    upright = ref["exif1"].astype(int)
    for orientation in range(2, 9):
        assert ref[f"exif{orientation}"].shape == (24, 48, 3), orientation
        assert np.abs(ref[f"exif{orientation}"].astype(int) - upright).mean() < 3, orientation
    assert tuple(ref["grey16"][0, 0]) == (128, 128, 128)
    assert tuple(ref["grey16"][5, -1]) == (255, 255, 255) and tuple(ref["grey16"][5, 1]) != (255, 255, 255)
    assert tuple(ref["rgba"][0, 0]) == (128, 0, 0)  # composited on black
    assert tuple(ref["la"][0, 0]) == (0, 0, 0) and tuple(ref["la"][0, -1]) == (200, 200, 200)
    assert tuple(ref["ptrans"][0, 0]) == (10, 250, 10) and tuple(ref["ptrans"][0, -1]) == (0, 0, 0)
    assert ref["cmyk"].shape == (20, 30, 3) and ref["grey"].shape == (20, 30, 3)


def test_folder_reader_gives_the_decoders_pixels(corpus) -> None:
    folder, paths = corpus
    ref = reference(paths)
    for sample in Dataset.from_folder(folder):
        assert np.array_equal(np.asarray(sample.load()), ref[sample.path.stem])


def test_from_hf_round_trip_gives_identical_pixels(corpus, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    _, paths = corpus
    ref = reference(paths)
    names = sorted(paths)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["x"])})
    hf = datasets.Dataset.from_dict({"image": [str(paths[n]) for n in names], "label": [0] * len(names)},
                                    features=features)
    back = Dataset.from_hf(hf, tmp_path / "cache")
    by_pixels = {np.asarray(load_image(s.path)).tobytes() for s in back}
    # rows decoding to the same pixels (e.g. EXIF 5 and 6 of an image aligned to the JPEG blocks)
    # share one cached file, named by its content
    assert by_pixels == {ref[name].tobytes() for name in names} and len(back) == len(by_pixels)
    bytes_rows = [{"image": {"bytes": paths[n].read_bytes(), "path": None}, "label": 0} for n in names]

    class Rows(list):
        features = {"image": object(), "label": type("L", (), {"names": ["x"]})()}

    again = Dataset.from_hf(Rows(bytes_rows), tmp_path / "cache2")
    assert {np.asarray(load_image(s.path)).tobytes() for s in again} == by_pixels


def _augmented(folder: Path) -> AugmentedDataset:
    return AugmentedDataset(Dataset.from_folder(folder))


def test_torch_adapter_gives_identical_pixels(corpus) -> None:
    pytest.importorskip("torch")
    folder, paths = corpus
    ref = reference(paths)
    ds = _augmented(folder).to_torch(image_size=None)
    samples = ds.mixed.base
    for i, sample in enumerate(samples):
        image, _ = ds[i]
        pixels = (image * 255).round().byte().permute(1, 2, 0).numpy()
        assert np.array_equal(pixels, ref[sample.path.stem]), sample.path.name


def test_tf_adapter_gives_identical_pixels(corpus) -> None:
    pytest.importorskip("tensorflow")
    folder, paths = corpus
    ref = reference(paths)
    augmented = _augmented(folder)
    stems = [s.path.stem for s in augmented.real]
    images = [np.asarray(x) for x, _ in augmented.to_tf(image_size=None, batch_size=None, shuffle=False)]
    assert len(images) == len(stems)
    for stem, image in zip(stems, images):
        assert np.array_equal(image.astype(np.uint8), ref[stem]) and image.max() <= 255, stem


def test_tf_adapter_on_plain_jpegs_gives_identical_pixels(tmp_path: Path) -> None:
    """Plain JPEGs (RGB, grey; 4:2:0, 4:2:2, 4:4:4) go through tf.io: the same pixels at native size."""
    pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    folder = tmp_path / "jpegs"
    (folder / "x").mkdir(parents=True)
    for i, (h, w, sub) in enumerate([(48, 64, 2), (37, 51, 1), (32, 32, 0)]):
        pixels = (rng.integers(0, 128, (h, w, 3)) + np.linspace(0, 120, w)[None, :, None]).astype(np.uint8)
        Image.fromarray(pixels).save(folder / "x" / f"rgb{i}.jpg", "JPEG", quality=90, subsampling=sub)
        Image.fromarray(pixels[..., 0]).save(folder / "x" / f"grey{i}.jpg", "JPEG")
    augmented = _augmented(folder)
    images = [np.asarray(x) for x, _ in augmented.to_tf(image_size=None, batch_size=None, shuffle=False)]
    for sample, image in zip(augmented.real, images):
        assert np.array_equal(image.astype(np.uint8), np.asarray(load_image(sample.path))), sample.path.name


def test_tf_speed_path_only_for_plain_jpegs(corpus, tmp_path: Path) -> None:
    """The tf.io path is taken only for plain JPEGs without EXIF rotation."""
    from synthaug._adapters.keras import jpeg_ratio

    _, paths = corpus
    big = tmp_path / "big.jpg"
    Image.new("RGB", (400, 400), (1, 2, 3)).save(big, "JPEG")
    assert jpeg_ratio([big], (100, 100)) == 4
    assert jpeg_ratio([big], None) == 1 and jpeg_ratio([big], (400, 400)) == 1
    rotated = tmp_path / "rot.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (400, 400)).save(rotated, "JPEG", exif=exif.tobytes())
    assert jpeg_ratio([big, rotated], (100, 100)) is None
    assert jpeg_ratio([big, paths["cmyk"]], (10, 10)) is None

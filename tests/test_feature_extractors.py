"""Feature extractors: the register_feature_extractors hook, local checkpoints, user callables, the cache."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthaug import InvalidParameterError
from synthaug._extractors import registered_extractors, resolve_feature_space
from synthaug._plugins import PluginLoadWarning, get_registry, reset_plugins

CALLS: list[int] = []


def counting_mean(images: list) -> np.ndarray:
    """A user feature function that records how many images it embedded."""
    CALLS.append(len(images))
    return np.stack([np.asarray(im, dtype=np.float64).reshape(-1, 3).mean(0) for im in images])


def wrong_shape(images: list) -> np.ndarray:
    return np.zeros((len(images) + 1, 2))


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "input"
    folder.mkdir()
    paths = []
    for i in range(5):
        path = folder / f"{i}.png"
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_builtins_are_registered_through_the_hook() -> None:
    names = registered_extractors()
    assert {"colour-texture", "inception", "dinov2", "clip", "hf"} <= set(names)
    assert all(names[n].factory.__module__ == "synthaug._default_plugins.features" for n in ("dinov2", "clip"))
    assert resolve_feature_space("colour-texture")[0].name == "colour-texture"
    with pytest.raises(InvalidParameterError, match="dinov2, clip"):
        resolve_feature_space("vgg")


def test_missing_or_wrong_checkpoint_folders_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "dinov2-base"
    with pytest.raises(InvalidParameterError, match=f"checkpoint folder '{missing}' does not exist"):
        resolve_feature_space(f"dinov2:{missing}")
    with pytest.raises(InvalidParameterError, match="nothing is downloaded"):
        resolve_feature_space("clip")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidParameterError, match=f"'{empty / 'config.json'}' is missing"):
        resolve_feature_space(f"clip:{empty}")
    vit = tmp_path / "vit"
    vit.mkdir()
    (vit / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(InvalidParameterError, match=f"'{vit}' holds a 'vit' model, not dinov2"):
        resolve_feature_space(f"dinov2:{vit}")
    with pytest.raises(InvalidParameterError, match="not clip"):
        resolve_feature_space(f"clip:{vit}")
    with pytest.raises(InvalidParameterError, match="does not exist"):
        resolve_feature_space(f"inception:{tmp_path / 'pt_inception.pth'}")


def test_user_callable_is_cached_by_content(images: list[Path], tmp_path: Path) -> None:
    spec = f"{__name__}:counting_mean"
    CALLS.clear()
    space, note = resolve_feature_space(spec)
    first = space.extract(images)
    assert first.shape == (5, 3) and sum(CALLS) == 5 and "user function" in note
    again, _ = resolve_feature_space(spec)
    np.testing.assert_array_equal(again.extract(images), first)
    assert sum(CALLS) == 5 and again.computed == 0  # every row from the cache
    Image.new("RGB", (20, 24), (10, 200, 30)).save(images[2])  # a changed image is embedded again
    changed = resolve_feature_space(spec)[0]
    rows = changed.extract(images)
    assert sum(CALLS) == 6 and changed.computed == 1
    np.testing.assert_allclose(rows[2], [10, 200, 30])
    np.testing.assert_array_equal(np.delete(rows, 2, 0), np.delete(first, 2, 0))
    copy = images[0].parent / "copy.png"  # the key is the content, not the path
    copy.write_bytes(images[0].read_bytes())
    assert resolve_feature_space(spec)[0].extract([copy]).tolist() == [first[0].tolist()] and sum(CALLS) == 6
    names = sorted(p.name for p in images[0].parent.rglob("*"))
    assert names == ["0.png", "1.png", "2.png", "3.png", "4.png", "copy.png"]  # nothing written into the input


def test_cache_can_be_turned_off(images: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTHAUG_CACHE_DIR", "off")
    CALLS.clear()
    for _ in range(2):
        resolve_feature_space(f"{__name__}:counting_mean")[0].extract(images)
    assert sum(CALLS) == 10


def test_user_callable_errors(images: list[Path]) -> None:
    with pytest.raises(InvalidParameterError, match="got shape"):
        resolve_feature_space(f"{__name__}:wrong_shape")[0].extract(images)
    with pytest.raises(InvalidParameterError, match="has no attribute"):
        resolve_feature_space(f"{__name__}:nothing_here")
    with pytest.raises(InvalidParameterError, match="cannot import"):
        resolve_feature_space("no_such_package.module:embed")


PLUGIN = """
    import numpy as np
    import synthaug

    class Toy:
        name = "toy"
        def __init__(self, scale):
            self.scale = float(scale or 1)
        def extract(self, paths):
            return np.full((len(paths), 2), self.scale)

    @synthaug.hookimpl
    def register_feature_extractors(register):
        register("toy", lambda argument, *, device: Toy(argument), "toy features")
"""


def _distribution(site: Path, module: str, source: str) -> None:
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[synthaug]\n{module} = {module}\n")


def test_third_party_extractor_plugin_and_a_broken_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       images: list[Path]) -> None:
    _distribution(tmp_path / "site", "toy_features", PLUGIN)
    _distribution(tmp_path / "site", "bad_features", """
        import synthaug

        @synthaug.hookimpl
        def register_feature_extractors(register):
            raise RuntimeError("no GPU driver")
    """)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    reset_plugins()
    try:
        with pytest.warns(PluginLoadWarning, match="bad_features.*no GPU driver"):
            space, note = resolve_feature_space("toy:3")
        assert space.extract(images[:2]).tolist() == [[3.0, 3.0], [3.0, 3.0]] and "toy features from 3" in note
        assert resolve_feature_space("colour-texture")[0].name == "colour-texture"  # the built-ins still work
        bad = next(p for p in get_registry().plugins if p.name == "bad_features")
        assert "register_feature_extractors raised RuntimeError" in bad.error
    finally:
        reset_plugins()


# -- tiny random transformers models saved to a temporary folder ------------------------------------------
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("transformers")
    from transformers import (
        BitImageProcessor,
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        Dinov2Config,
        Dinov2Model,
        ViTConfig,
        ViTModel,
    )

    root = tmp_path_factory.mktemp("checkpoints")
    small = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 37}
    Dinov2Model(Dinov2Config(**small, image_size=28, patch_size=14)).save_pretrained(root / "dinov2")
    ViTModel(ViTConfig(**small, image_size=28, patch_size=14)).save_pretrained(root / "vit")
    text = {**small, "vocab_size": 520, "max_position_embeddings": 32, "bos_token_id": 512, "eos_token_id": 513}
    CLIPModel(CLIPConfig(text_config=text, vision_config={**small, "image_size": 28, "patch_size": 14},
                         projection_dim=24)).save_pretrained(root / "clip")
    _tiny_clip_tokenizer(root / "clip")
    # DINOv2 and CLIP with their image processors (as real checkpoints have); the ViT without (fallback resize)
    crop = {"size": {"shortest_edge": 32}, "crop_size": {"height": 28, "width": 28}}
    BitImageProcessor(**crop).save_pretrained(root / "dinov2")
    CLIPImageProcessor(**crop).save_pretrained(root / "clip")
    return {"dinov2": root / "dinov2", "vit": root / "vit", "clip": root / "clip"}


def _tiny_clip_tokenizer(folder: Path) -> None:
    """A byte-level CLIP tokenizer without merges (514 tokens) saved beside the model."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)} | {c + "</w>": 256 + i for i, c in enumerate(chars)}
    vocab |= {"<|startoftext|>": 512, "<|endoftext|>": 513}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(folder)


@pytest.mark.slow  # imports transformers and torch
def test_local_checkpoints_give_features_of_the_right_shape(checkpoints: dict[str, Path], images: list[Path],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for spec, dims in ((f"dinov2:{checkpoints['dinov2']}", 32), (f"hf:{checkpoints['vit']}", 32),
                       (f"clip:{checkpoints['clip']}", 24)):
        space, note = resolve_feature_space(spec, device="cpu")
        rows = space.extract(images)
        assert rows.shape == (5, dims) and np.isfinite(rows).all() and str(spec.split(":", 1)[1]) in note
        assert len({tuple(np.round(r, 6)) for r in rows}) == 5  # distinct images, distinct rows
        again = resolve_feature_space(spec, device="cpu")[0]
        np.testing.assert_allclose(again.extract(images), rows)
        assert again.computed == 0  # the second run reads the cache
    clip = resolve_feature_space(f"clip:{checkpoints['clip']}", device="cpu")[0]
    assert clip.text_features(["a photo of red", "a photo of blue lesions"]).shape == (2, 24)
    with pytest.raises(InvalidParameterError, match="holds a 'clip' model, not dinov2"):
        resolve_feature_space(f"dinov2:{checkpoints['clip']}")


@pytest.mark.slow
def test_quality_report_in_a_dinov2_space(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    from synthaug._quality import quality_report

    real, synth = tmp_path / "real", tmp_path / "synth"
    for root, offset in ((real, 0), (synth, 50)):
        for label in ("a", "b"):
            (root / label).mkdir(parents=True)
            for i in range(6):
                rng = np.random.default_rng(offset + i + (100 if label == "b" else 0))
                Image.fromarray(rng.integers(0, 255, (28, 28, 3), dtype=np.uint8)).save(root / label / f"{i}.png")
    report = quality_report(real, synth, features=f"dinov2:{checkpoints['dinov2']}", device="cpu", figures=False,
                            bootstrap=5)
    assert report.settings["feature_space"] == "dinov2"
    assert report.overall["feature_dims"] == 32 and "precision" in report.classes["a"]
    assert any("FD: n=6 < d=32" in w for w in report.classes["a"]["warnings"])

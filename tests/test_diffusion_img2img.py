"""Generation guided by real images (img2img, recipes, soft labels) end to end on the tiny SD1.5 model."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from synthaug import InvalidOptionsError, SyntheticAugmenter  # noqa: E402
from synthaug._cli import main  # noqa: E402
from synthaug.diffusion import ARTIFACT_FILE  # noqa: E402
from synthaug.testing import InterruptAfter, make_image_folder  # noqa: E402

torch.set_num_threads(1)
FAST = {"resolution": 32, "num_inference_steps": 2, "validation_images": 0, "max_train_steps": 2}
PLUGINS = ("lora-sd15", "textual-inversion", "lora-sdxl", "lora-sd3", "lora-flux")


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def split_root(tmp_path_factory) -> Path:
    """A split root: train (a: 6, b: 2, c: 3 images), val and test (2 per class)."""
    root = tmp_path_factory.mktemp("split")
    make_image_folder(root / "train", {"a": 6, "b": 2, "c": 3}, size=40, seed=1)
    make_image_folder(root / "val", {"a": 2, "b": 2, "c": 2}, size=40, seed=2)
    make_image_folder(root / "test", {"a": 2, "b": 2, "c": 2}, size=40, seed=3)
    return root


def _augmenter(model: Path, out: Path, **options) -> SyntheticAugmenter:
    return SyntheticAugmenter("lora-sd15", generator_options={"base_model": str(model), **FAST, **options},
                              out_dir=out)


def test_sources_are_training_images_and_diff_mix_records_soft_labels(split_root, tiny_sd15_model, tmp_path) -> None:
    """real-guidance (nothing trained) with other classes' images: sources from train/ of other classes only."""
    out = tmp_path / "out"
    aug = _augmenter(tiny_sd15_model, out, recipe="real-guidance", init_from="other-classes", soft_labels=True,
                     strength=0.64)
    aug.fit_resample(split_root)
    records = _records(out)
    assert sorted(r["class"] for r in records) == ["b"] * 4 + ["c"] * 3
    held_out = {p.resolve() for split in ("val", "test") for p in (split_root / split).glob("*/*.png")}
    for r in records:  # init_image is relative to the training data's folder (train/ of a split root)
        source = (split_root / "train" / r["init_image"]).resolve()
        assert source.is_file() and source not in held_out and r["init_class"] != r["class"], r
        assert r["init_image"].split("/")[0] == r["init_class"] and r["strength"] == 0.64
        assert r["soft_label"] == pytest.approx({r["class"]: 0.8, r["init_class"]: 0.2}), r  # 0.64 ** 0.5 = 0.8
        assert r["adapter_files"] == [] and r["adapter_sha256"] is None
        assert r["prompt"] == f"a dermoscopic image of {r['class']}"
    fits = out.parent / f"{out.name}.synthaug" / "fits" / "lora-sd15"
    info = json.loads((fits / "b" / ARTIFACT_FILE).read_text())
    assert info["training"] is None and info["adapter_files"] == [] and not list((fits / "b").glob("*.safetensors"))


@pytest.mark.slow
def test_resume_after_a_kill_gives_the_same_sources_and_bytes(split_root, tiny_sd15_model, tmp_path) -> None:
    options = {"recipe": "real-guidance", "strength": 0.5}
    _augmenter(tiny_sd15_model, tmp_path / "straight", **options).fit_resample(split_root)
    killed = _augmenter(tiny_sd15_model, tmp_path / "killed", **options)
    killed.progress = InterruptAfter(3)
    with pytest.raises(KeyboardInterrupt):
        killed.fit_resample(split_root)
    assert len(_records(tmp_path / "killed")) == 3 < len(_records(tmp_path / "straight")) == 7
    _augmenter(tiny_sd15_model, tmp_path / "killed", **options).fit_resample(split_root)
    key = ("id", "sha256", "init_image", "seed")
    straight = sorted(tuple(r[k] for k in key) for r in _records(tmp_path / "straight"))
    assert straight == sorted(tuple(r[k] for k in key) for r in _records(tmp_path / "killed"))
    assert len({r[2] for r in straight}) > 1  # the seeds chose different sources


def test_strength_one_is_text_to_image_and_guidance_options_are_fit_neutral(tiny_sd15_model) -> None:
    from synthaug_lora_sd15 import LoraSD15Generator

    plain = LoraSD15Generator(base_model=str(tiny_sd15_model))
    assert plain.options.strength == 1.0 and plain.options.recipe is None
    for options in ({"strength": 0.3}, {"recipe": "da-fusion"}, {"recipe": "diff-mix"},
                    {"init_from": "other-classes", "soft_labels": True, "soft_label_gamma": 2.0}):
        assert LoraSD15Generator(base_model=str(tiny_sd15_model), **options).fit_options() == plain.fit_options()
    assert LoraSD15Generator(recipe="real-guidance").fit_options()["fine_tune"] is False
    diff_mix = LoraSD15Generator(recipe="diff-mix", strength=0.9).options
    assert (diff_mix.strength, diff_mix.init_from, diff_mix.soft_labels, diff_mix.soft_label_gamma) == (
        0.9, "other-classes", True, 0.5)
    for bad in ({"strength": 0.0}, {"strength": 1.5}, {"recipe": "sdedit"}, {"init_from": "val"}):
        with pytest.raises(InvalidOptionsError, match=next(iter(bad))):
            LoraSD15Generator(**bad)


@pytest.mark.parametrize("generator", PLUGINS)
def test_generators_json_lists_strength_init_from_and_recipe(generator, capsys) -> None:
    assert main(["generators", generator, "--json"]) == 0
    schema = json.loads(capsys.readouterr().out)
    props = schema.get("properties", schema.get("options", {}).get("properties", {}))
    assert {"strength", "init_from", "recipe", "fine_tune", "soft_labels"} <= set(props), sorted(props)
    assert props["strength"]["default"] == 1.0


@pytest.mark.data
@pytest.mark.slow
def test_balance_with_the_da_fusion_recipe_on_the_skin_lesions(skin_lesions, tiny_sd15_model, tmp_path,
                                                               monkeypatch) -> None:
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() replaces it
    out = tmp_path / "out"
    argv = ["balance", str(skin_lesions), "--out", str(out), "--generator", "textual-inversion",
            "-o", f"base_model={tiny_sd15_model}", "-o", "recipe=da-fusion", "-o", "max_train_steps=2",
            "-o", "resolution=32", "-o", "num_inference_steps=2", "-o", "validation_images=0",
            "--target", "dermatofibroma=32"]
    assert main(argv) == 0
    records = _records(out)
    assert [r["class"] for r in records] == ["dermatofibroma", "dermatofibroma"]
    for r in records:
        assert r["strength"] == 0.5 and r["init_class"] == "dermatofibroma" and "soft_label" not in r
        assert r["init_image"].startswith("dermatofibroma/") and (skin_lesions / r["init_image"]).is_file()
        assert r["options"]["recipe"] == "da-fusion" and "<dermatofibroma>" in r["prompt"]


@pytest.mark.slow
def test_evaluate_strengths_gives_one_experiment_per_strength_sharing_the_adapters(split_root, tiny_sd15_model,
                                                                                  tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() replaces it
    out = tmp_path / "eval"
    argv = ["evaluate", str(split_root), "--out", str(out), "-e", "upsample", "--strengths", "0.5,1",
            "-g", "lora-sd15", "-o", f"base_model={tiny_sd15_model}", "-o", "max_train_steps=2", "-o", "resolution=32",
            "-o", "num_inference_steps=2", "-o", "validation_images=0", "--steps", "2", "--eval-every", "1",
            "--image-size", "16", "--batch-size", "8", "--threads", "1", "--quiet", "--no-plots"]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert list(report["experiments"]) == ["baseline", "upsample", "strength-0.5", "strength-1"]
    for name, strength in (("strength-0.5", 0.5), ("strength-1", 1.0)):
        e = report["experiments"][name]
        assert e["kind"] == "strength" and e["strength"] == strength
        assert e["source"] == f"generator:lora-sd15@strength={strength:g}"
        assert e["vs_baseline"]["balanced_accuracy"]["verdict"] == "too few runs"  # one split: no interval
        assert report["synthetic_sources"][e["source"]]["options"]["strength"] == strength
    work = next(out.glob("work/**/synthetic-lora-sd15@strength=0.5")).parent
    guided = _records(work / "synthetic-lora-sd15@strength=0.5")
    plain = _records(work / "synthetic-lora-sd15@strength=1")
    assert {r["strength"] for r in guided} == {0.5} and all("init_image" not in r for r in plain)
    # the two strengths used the same adapters, trained once, in the shared fits folder
    shared = work / "fits-lora-sd15"
    assert {r["adapter_sha256"] for r in guided} == {r["adapter_sha256"] for r in plain}
    assert sorted(p.parent.name for p in shared.glob("*/artifact.json")) == ["b", "c"]
    assert not list(work.glob("synthetic-lora-sd15@*.synthaug/fits"))

"""Attribute prompts from metadata (``balance --metadata labels.csv``, ``metadata=``): captions per
training image, attributes sampled per generated image, and a clear error for each bad input."""

from __future__ import annotations

import csv
import hashlib
import json
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from synthaug import Concept, DatasetError, InvalidOptionsError, SyntheticAugmenter  # noqa: E402
from synthaug._cli import main  # noqa: E402
from synthaug.diffusion import CaptionConditioning  # noqa: E402
from synthaug.testing import make_image_folder  # noqa: E402

torch.set_num_threads(1)
FAST = {"resolution": 32, "num_inference_steps": 2, "validation_images": 0, "max_train_steps": 2}
TEMPLATE = "a dermoscopic image of {dx} on the {site}, age {age}"


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture()
def folder(tmp_path) -> tuple[Path, Path]:
    """Classes a (4 images) and b (2); labels.csv gives dx, site and age per image."""
    root = make_image_folder(tmp_path / "data", {"a": 4, "b": 2}, size=40)
    rows = [{"image_id": p.stem, "dx": p.parent.name, "site": ["back", "arm", "leg"][i % 3], "age": str(30 + i)}
            for i, p in enumerate(sorted(root.glob("*/*.png")))]
    return root, _write_csv(tmp_path / "labels.csv", rows)


def _concept(root: Path, label: str, rows: dict[str, dict]) -> Concept:
    images = tuple(sorted((root / label).glob("*.png")))
    return Concept(label, label, images, attributes=tuple(rows.get(p.stem, {}) for p in images))


def _rows(csv_path: Path) -> dict[str, dict]:
    with open(csv_path, newline="") as fh:
        return {r.pop("image_id"): r for r in csv.DictReader(fh)}


@pytest.mark.parametrize("template, rows_edit, error, match", [
    ("a dermoscopic image of {dx} on the {place}", None, InvalidOptionsError, r"names place.*columns: age, dx, site"),
    (TEMPLATE, "blank", DatasetError, r"b_001.png.*has no site value"),
    (TEMPLATE, "drop", DatasetError, r"b_000.png.*is not in the metadata file"),
    ("a dermoscopic image on the {site}, age {age}", None, InvalidOptionsError, "names no class field"),
])
def test_each_metadata_error_is_clear(folder, tiny_sd15_model, tmp_path, template, rows_edit, error, match) -> None:
    from synthaug_lora_sd15 import LoraSD15Generator

    root, csv_path = folder
    rows = _rows(csv_path)
    if rows_edit == "blank":
        rows["b_001"]["site"] = ""
    if rows_edit == "drop":
        del rows["b_000"]
    gen = LoraSD15Generator(base_model=str(tiny_sd15_model), prompt_template=template, **FAST)
    with pytest.raises(error, match=match):
        gen.fit([_concept(root, "b", rows)], tmp_path / "work")
    assert not list((tmp_path / "work").rglob("*.safetensors"))  # failed before training


def test_a_template_naming_columns_without_metadata_is_an_error(tiny_sd15_model, folder, tmp_path) -> None:
    from synthaug_lora_sd15 import LoraSD15Generator

    root, _ = folder
    gen = LoraSD15Generator(base_model=str(tiny_sd15_model), prompt_template=TEMPLATE, **FAST)
    with pytest.raises(InvalidOptionsError, match=r"names dx, site, age but no metadata was given.*--metadata"):
        gen.fit([Concept("b", "b", tuple(sorted((root / "b").glob("*.png"))))], tmp_path / "work")


def test_a_template_with_concept_needs_no_class_column(folder, tiny_sd15_model) -> None:
    from synthaug_lora_sd15 import LoraSD15Generator

    root, csv_path = folder
    gen = LoraSD15Generator(base_model=str(tiny_sd15_model), prompt_template="a photo of {concept} on the {site}")
    prompt, attributes = gen.prompts_for(_concept(root, "a", _rows(csv_path)), [5, 6])
    assert {prompt(s) for s in (5, 6)} <= {f"a photo of a on the {site}" for site in ("back", "arm", "leg")}
    assert all(set(a) == {"site"} for a in attributes.values())


def test_caption_conditioning_encodes_each_caption_once_and_stacks_a_batch() -> None:
    calls: list[list[str]] = []

    def encode(prompts: list[str]) -> dict:
        calls.append(list(prompts))
        return {"encoder_hidden_states": torch.tensor([[float(len(p))] for p in prompts]),
                "txt_ids": torch.zeros(7, 3)}  # no batch dimension, like FLUX's text ids

    conditioning = CaptionConditioning(encode, ["ab", "abcd", "ab", "abcdef"])
    out = conditioning.batch([3, 0, 1, 2], None)
    assert out["encoder_hidden_states"].flatten().tolist() == [6.0, 2.0, 4.0, 2.0]
    assert out["txt_ids"].shape == (7, 3)
    assert sorted(map(tuple, calls)) == [("ab",), ("abcd",), ("abcdef",)]  # each once
    assert conditioning.prompt_batch(2)["encoder_hidden_states"].flatten().tolist() == [2.0, 4.0]
    assert len(calls) == 3  # cached


def test_balance_trains_on_captions_and_samples_attributes_per_image(folder, tiny_sd15_model, tmp_path,
                                                                     monkeypatch) -> None:
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() replaces it
    root, csv_path = folder
    out = tmp_path / "out"
    argv = ["balance", str(root), "--out", str(out), "--generator", "lora-sd15", "--metadata", str(csv_path),
            "-o", f"base_model={tiny_sd15_model}", "-o", f"prompt_template={TEMPLATE}",
            *[f"-o{k}={v}" for k, v in FAST.items()], "--target", "b=5"]
    assert main(argv) == 0
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    rows = _rows(csv_path)
    b_rows = [{k: rows[p.stem][k] for k in ("dx", "site", "age")} for p in sorted((root / "b").glob("*.png"))]
    assert len(records) == 3
    for r in records:  # each image's attributes are a training row of its class, in its prompt
        assert r["attributes"] in b_rows and r["prompt"] == TEMPLATE.format(**r["attributes"])
    artifact = json.loads(next((out.parent / "out.synthaug" / "fits" / "lora-sd15").glob("b/artifact.json")).read_text())
    captions = [TEMPLATE.format(**row) for row in b_rows]
    assert artifact["captions_sha256"] == hashlib.sha256(json.dumps(captions).encode()).hexdigest()
    run = json.loads((out / "plan.json").read_text())["run"]  # other metadata: another run
    assert run["metadata_sha256"] == hashlib.sha256(csv_path.read_bytes()).hexdigest()
    # the fit is reused with the same metadata; changed captions mean a new fit
    from synthaug_lora_sd15 import LoraSD15Generator

    gen = LoraSD15Generator(base_model=str(tiny_sd15_model), prompt_template=TEMPLATE, **FAST)
    gen.work_dir = out.parent / "out.synthaug" / "fits" / "lora-sd15"
    assert gen.is_fitted(_concept(root, "b", rows))
    rows["b_000"]["site"] = "scalp"
    assert not gen.is_fitted(_concept(root, "b", rows))
    assert SyntheticAugmenter("lora-sd15", metadata=csv_path).metadata == csv_path

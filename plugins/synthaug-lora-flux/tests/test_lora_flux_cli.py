"""`synthaug balance --generator lora-flux` end to end on the real skin lesions with the tiny FLUX.1-dev model."""

from __future__ import annotations

import json
import warnings

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from synthaug.cli import main  # noqa: E402
from synthaug.diffusion import adapter_digest  # noqa: E402

torch.set_num_threads(1)


@pytest.mark.data
def test_balance_writes_the_planned_counts_and_a_manifest(skin_lesions, tiny_model, tmp_path, capsys,
                                                          monkeypatch) -> None:
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() replaces it
    out = tmp_path / "out"
    argv = ["balance", str(skin_lesions), "--out", str(out), "--generator", "lora-flux",
            "-o", f"base_model={tiny_model}", "-o", "max_train_steps=2", "-o", "resolution=32", "-o", "dtype=float32",
            "-o", "num_inference_steps=2", "-o", "max_sequence_length=16", "-o", "validation_images=0",
            "--target", "dermatofibroma=32", "--target", "vascular_lesion=31"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "training dermatofibroma" in err and "loss=" in err
    plan = json.loads((out / "plan.json").read_text())
    planned = {c: v["synthetic"] for c, v in plan["classes"].items() if v["synthetic"]}
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(planned) == ["dermatofibroma", "vascular_lesion"]
    assert planned == {c: sum(r["class"] == c for r in records) for c in planned} and len(records) > 0
    fit = out.parent / "out.synthaug" / "fits" / "lora-flux" / "dermatofibroma"
    for record in records:
        assert record["generator"] == "lora-flux" and record["base_model"] == str(tiny_model)
        assert (out / record["file"]).is_file() and isinstance(record["seed"], int)
    record = next(r for r in records if r["class"] == "dermatofibroma")
    assert record["adapter_sha256"] == adapter_digest(fit / "pytorch_lora_weights.safetensors")
    assert record["prompt"] == "a dermoscopic image of dermatofibroma"

"""`synthaug balance --generator lora-sd15 / textual-inversion` end to end on the tiny model."""

from __future__ import annotations

import json
import warnings

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from synthaug._cli import main  # noqa: E402
from synthaug._plugins import list_generators  # noqa: E402
from synthaug.diffusion import adapter_digest  # noqa: E402

torch.set_num_threads(1)


@pytest.mark.data
@pytest.mark.parametrize("generator, adapter", [("lora-sd15", "pytorch_lora_weights.safetensors"),
                                                ("textual-inversion", "learned_embeds.safetensors")])
def test_balance_fits_generates_and_reuses_adapters(generator, adapter, skin_lesions, tiny_sd15_model, tmp_path, capsys,
                                                    monkeypatch) -> None:
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() replaces it
    if generator not in {getattr(g, "name", g) for g in list_generators()}:
        pytest.fail(f"{generator} is not registered: pip install -e plugins/synthaug-{generator}")
    out = tmp_path / "out"
    argv = ["balance", str(skin_lesions), "--out", str(out), "--generator", generator,
            "-o", f"base_model={tiny_sd15_model}", "-o", "max_train_steps=3", "-o", "resolution=32",
            "-o", "num_inference_steps=2", "-o", "validation_images=0",
            "--target", "dermatofibroma=32", "--target", "vascular_lesion=31"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "training dermatofibroma" in err and "3/3" in err and "loss=" in err  # progress bars
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["class"] for r in records) == ["dermatofibroma", "dermatofibroma", "vascular_lesion"]
    plan = json.loads((out / "plan.json").read_text())
    assert plan["classes"]["dermatofibroma"]["synthetic"] == 2 and plan["classes"]["nevus"]["synthetic"] == 0
    fit = out.parent / "out.synthaug" / "fits" / generator / "dermatofibroma"
    record = next(r for r in records if r["class"] == "dermatofibroma")
    assert record["generator"] == generator and record["base_model"] == str(tiny_sd15_model)
    assert record["adapter_sha256"] == adapter_digest(fit / adapter)
    assert "dermatofibroma" in record["prompt"] or "<dermatofibroma>" in record["prompt"]
    assert isinstance(record["seed"], int) and (out / record["file"]).is_file()

    # lose one image: the re-run regenerates it with the fitted adapter, without training again
    (out / record["file"]).unlink()
    stamp = (fit / adapter).stat().st_mtime_ns
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "reusing fitted artifact for dermatofibroma" in err and "training dermatofibroma" not in err
    assert (fit / adapter).stat().st_mtime_ns == stamp
    again = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(again) == 3 and (out / record["file"]).is_file()
    assert next(r for r in again if r["file"] == record["file"])["sha256"] == record["sha256"]  # same seed, same image

"""`synthaug balance --generator lora-flux` end to end on the real skin lesions with the tiny FLUX.1-dev model."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from synthaug.diffusion import adapter_digest  # noqa: E402
from synthaug.testing import check_balance_cli  # noqa: E402


@pytest.mark.data
def test_balance_writes_the_planned_counts_and_a_manifest(skin_lesions, quick, tmp_path, capsys) -> None:
    options = quick(max_train_steps=2, num_inference_steps=2)
    records = check_balance_cli(skin_lesions, tmp_path / "out", "lora-flux", options,
                                {"dermatofibroma": 32, "vascular_lesion": 31})
    err = capsys.readouterr().err
    assert "training dermatofibroma" in err and "loss=" in err
    fit = tmp_path / "out.synthaug" / "fits" / "lora-flux" / "dermatofibroma"
    record = next(r for r in records if r["class"] == "dermatofibroma")
    assert record["adapter_sha256"] == adapter_digest(fit / "pytorch_lora_weights.safetensors")
    assert record["prompt"] == "a dermoscopic image of dermatofibroma"

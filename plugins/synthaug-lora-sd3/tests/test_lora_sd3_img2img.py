"""lora-sd3 img2img (strength < 1): the same pixels as diffusers' StableDiffusion3Img2ImgPipeline."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from synthaug.diffusion import LORA_FILE  # noqa: E402
from synthaug.testing import check_img2img_matches_diffusers  # noqa: E402


def test_img2img_equals_diffusers_img2img_with_the_same_lora(fitted, concepts) -> None:
    check_img2img_matches_diffusers(
        fitted, concepts[0], img2img_class="StableDiffusion3Img2ImgPipeline",
        load_adapter=lambda pipe, folder: pipe.load_lora_weights(str(folder), weight_name=LORA_FILE),
        call_kwargs={"height": 32, "width": 32, "max_sequence_length": 16})

"""lora-sd15 img2img (strength < 1): the same pixels as diffusers' StableDiffusionImg2ImgPipeline."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from synthaug.testing import check_img2img_matches_diffusers, make_concepts  # noqa: E402
from synthaug_lora_sd15 import LORA_FILE, LoraSD15Generator  # noqa: E402

NO_CHECKER = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}


@pytest.fixture(scope="module")
def concepts(tmp_path_factory):
    return make_concepts(tmp_path_factory.mktemp("data"), n_concepts=2, n_images=3, size=40)


@pytest.fixture(scope="module")
def fitted(tiny_sd15_model, concepts, tmp_path_factory):
    gen = LoraSD15Generator(base_model=str(tiny_sd15_model), resolution=32, max_train_steps=4, learning_rate=1e-2,
                            num_inference_steps=3, validation_images=0, checkpoint_every=0)
    gen.fit(concepts[:1], tmp_path_factory.mktemp("work"))
    yield gen
    gen.close()


@pytest.mark.slow
def test_img2img_equals_diffusers_img2img_with_the_same_lora(fitted, concepts) -> None:
    check_img2img_matches_diffusers(
        fitted, concepts[0], img2img_class="StableDiffusionImg2ImgPipeline",
        load_adapter=lambda pipe, folder: pipe.load_lora_weights(str(folder), weight_name=LORA_FILE),
        load_kwargs=NO_CHECKER)

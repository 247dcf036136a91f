"""textual-inversion img2img (strength < 1, DA-Fusion): the same pixels as diffusers' StableDiffusionImg2ImgPipeline."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from synthaug.testing import check_img2img_matches_diffusers, make_concepts  # noqa: E402
from synthaug_textual_inversion import EMBEDS_FILE, TextualInversionGenerator  # noqa: E402

NO_CHECKER = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}


@pytest.fixture(scope="module")
def concepts(tmp_path_factory):
    return make_concepts(tmp_path_factory.mktemp("data"), n_concepts=2, n_images=3, size=40)


@pytest.fixture(scope="module")
def fitted(tiny_sd15_model, concepts, tmp_path_factory):
    gen = TextualInversionGenerator(base_model=str(tiny_sd15_model), resolution=32, max_train_steps=4,
                                    learning_rate=0.05, num_inference_steps=3, validation_images=0, checkpoint_every=0)
    gen.fit(concepts[:1], tmp_path_factory.mktemp("work"))
    yield gen
    gen.close()


@pytest.mark.slow
def test_img2img_equals_diffusers_img2img_with_the_same_embedding(fitted, concepts) -> None:
    items = check_img2img_matches_diffusers(
        fitted, concepts[0], img2img_class="StableDiffusionImg2ImgPipeline", strength=0.5,
        load_adapter=lambda pipe, folder: pipe.load_textual_inversion(str(folder / EMBEDS_FILE)),
        load_kwargs=NO_CHECKER)
    assert len(items) == 2


def test_da_fusion_recipe_fills_strength_and_explicit_options_win(tiny_sd15_model) -> None:
    gen = TextualInversionGenerator(base_model=str(tiny_sd15_model), recipe="da-fusion")
    assert (gen.options.strength, gen.options.init_from, gen.options.fine_tune) == (0.5, "own-class", True)
    assert TextualInversionGenerator(base_model=str(tiny_sd15_model), recipe="da-fusion", strength=0.3).options.strength == 0.3

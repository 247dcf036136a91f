"""textual-inversion on the tiny SD1.5 model: contract, only placeholder rows trained, interop."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from synthaug import InvalidOptionsError  # noqa: E402
from synthaug.testing import check_generator, make_concepts  # noqa: E402
from synthaug_textual_inversion import EMBEDS_FILE, TextualInversionGenerator  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def concepts(tmp_path_factory):
    return make_concepts(tmp_path_factory.mktemp("data"), n_concepts=2, n_images=3, size=32)


def quick(model: Path, **extra) -> dict:
    return {"base_model": str(model), "resolution": 32, "max_train_steps": 4, "learning_rate": 0.05,
            "num_inference_steps": 3, "validation_images": 0, "checkpoint_every": 0, **extra}


@pytest.fixture(scope="module")
def fitted(tiny_sd15_model, concepts, tmp_path_factory):
    """Two concepts with 2-vector placeholders, and the embedding matrix before training."""
    gen = TextualInversionGenerator(quick(tiny_sd15_model, max_train_steps=20, num_vectors=2))
    before = gen.pipeline.text_encoder.get_input_embeddings().weight.detach().clone()
    gen.fit(concepts, tmp_path_factory.mktemp("work"))
    yield gen, before
    gen.close()


def test_passes_check_generator(tiny_sd15_model):
    check_generator(TextualInversionGenerator, quick(tiny_sd15_model))


def test_only_placeholder_rows_are_trained(fitted, concepts):
    gen, before = fitted
    pipe = gen.pipeline
    weight = pipe.text_encoder.get_input_embeddings().weight.detach()
    assert torch.equal(weight[: before.shape[0]], before)  # every original row unchanged
    ids = pipe.tokenizer.convert_tokens_to_ids(gen.placeholder_tokens(concepts[0]))
    assert gen.placeholder_tokens(concepts[0]) == ["<class0>", "<class0>_1"]
    init = before[pipe.tokenizer.encode("lesion", add_special_tokens=False)].mean(0)
    assert all(not torch.allclose(weight[i], init) for i in ids)  # learned rows moved off the initializer
    for p in (*pipe.unet.parameters(), *pipe.vae.parameters()):
        assert not p.requires_grad


def test_training_lowers_the_loss_on_a_fixed_batch(fitted, concepts):
    training = fitted[0].artifact(concepts[0])["training"]
    assert training["probe_loss_end"] < training["probe_loss_start"], training


def test_embedding_loads_with_stock_load_textual_inversion(fitted, concepts, tiny_sd15_model):
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file

    gen, _ = fitted
    path = gen.concept_dir(concepts[1]) / EMBEDS_FILE
    saved = load_file(str(path))  # safetensors: no pickle
    assert list(saved) == ["<class1>"] and saved["<class1>"].shape == (2, 32)
    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd15_model), safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_textual_inversion(str(path))
    ids = pipe.tokenizer.convert_tokens_to_ids(["<class1>", "<class1>_1"])
    assert torch.equal(pipe.text_encoder.get_input_embeddings().weight[ids].detach(), saved["<class1>"])

    def run(prompt):
        return pipe(prompt, num_inference_steps=3, height=32, width=32, negative_prompt=gen.options.negative_prompt,
                    generator=torch.Generator().manual_seed(4), output_type="np").images[0]

    ours = next(iter(gen.generate(concepts[1], [4]))).image
    import numpy as np

    stock = run("a dermoscopic image of <class1>")
    assert np.array_equal(np.asarray(ours), (stock * 255).round().astype("uint8"))  # same image as stock diffusers
    assert abs(stock - run("a dermoscopic image of lesion")).mean() > 1e-4


def test_template_without_concept_is_rejected(tiny_sd15_model):
    with pytest.raises(InvalidOptionsError, match="prompt_template"):
        TextualInversionGenerator(quick(tiny_sd15_model, prompt_template="a dermoscopic image"))

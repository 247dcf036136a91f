"""The diffusion engine on a CUDA GPU: float16 weights, autocast, grad scaling, then generation."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("plugin, cls", [("synthaug_lora_sd15", "LoraSD15Generator"),
                                         ("synthaug_textual_inversion", "TextualInversionGenerator")])
def test_fp16_training_and_generation_on_cuda(plugin, cls, tmp_path) -> None:
    import importlib

    from synthaug.testing import make_concepts, tiny_sd15

    generator_cls = getattr(importlib.import_module(plugin), cls)
    concepts = make_concepts(tmp_path / "data", n_concepts=1, n_images=2, size=64)
    gen = generator_cls(base_model=str(tiny_sd15(tmp_path / "sd15")), resolution=64, max_train_steps=10,
                        learning_rate=1e-2, checkpoint_every=5, validation_images=2, num_inference_steps=4)
    assert gen.pipeline.unet.dtype == torch.float16 and gen.pipeline.device.type == "cuda"
    gen.fit(concepts, tmp_path / "work")
    training = gen.artifact(concepts[0])["training"]
    assert training["steps"] == 10 and training["probe_loss_end"] == training["probe_loss_end"]  # not NaN
    assert gen.pipeline.vae.dtype == torch.float16
    images = list(gen.generate(concepts[0], [1, 2, 3]))
    assert [im.image.size for im in images] == [(64, 64)] * 3
    assert not any("defect" in im.metadata for im in images)

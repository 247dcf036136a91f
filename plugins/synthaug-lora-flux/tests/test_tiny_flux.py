"""``synthaug.testing.tiny_flux``: a tiny random FLUX.1-like pipeline on disk, loadable by stock diffusers."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")


def test_tiny_flux_has_the_flux_wiring_and_generates(tiny_model) -> None:
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(str(tiny_model))
    pipe.set_progress_bar_config(disable=True)
    t = pipe.transformer.config
    assert t.guidance_embeds and t.num_layers == 1 and t.num_single_layers == 1  # FLUX.1-dev: guidance distilled
    assert t.in_channels == 4 * pipe.vae.config.latent_channels  # 2x2-packed latents
    assert t.joint_attention_dim == pipe.text_encoder_2.config.d_model
    assert t.pooled_projection_dim == pipe.text_encoder.config.hidden_size
    assert sum(t.axes_dims_rope) == t.attention_head_dim
    assert pipe.scheduler.config.use_dynamic_shifting
    images = pipe("a dermoscopic image of melanoma", num_inference_steps=2, height=32, width=32, guidance_scale=3.5,
                  max_sequence_length=16, generator=torch.Generator().manual_seed(0), output_type="np").images
    assert images.shape == (1, 32, 32, 3) and images.std() > 0


def test_schnell_variant_has_no_guidance_embedding(tmp_path) -> None:
    from diffusers import FluxTransformer2DModel

    from synthaug.testing import tiny_flux

    folder = tiny_flux(tmp_path / "schnell", guidance_embeds=False)
    assert not FluxTransformer2DModel.from_pretrained(str(folder), subfolder="transformer").config.guidance_embeds

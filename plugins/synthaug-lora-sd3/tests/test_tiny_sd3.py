"""``synthaug.testing.tiny_sd3``: a tiny random SD3.5-like pipeline on disk, loadable by stock diffusers."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")


def test_tiny_sd3_has_the_sd35_wiring_and_generates(tiny_model) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline.from_pretrained(str(tiny_model))
    pipe.set_progress_bar_config(disable=True)
    t = pipe.transformer.config
    assert t.qk_norm == "rms_norm" and list(t.dual_attention_layers) == [0]  # SD3.5 Medium's MMDiT-X features
    assert t.joint_attention_dim == pipe.text_encoder_3.config.d_model
    clips = (pipe.text_encoder, pipe.text_encoder_2)
    assert t.pooled_projection_dim == sum(c.config.projection_dim for c in clips)
    assert isinstance(pipe.scheduler, FlowMatchEulerDiscreteScheduler) and pipe.scheduler.config.shift == 3.0
    assert pipe.vae.config.shift_factor and sum(p.numel() for p in pipe.transformer.parameters()) < 200_000
    images = pipe("a dermoscopic image of melanoma", num_inference_steps=2, height=32, width=32,
                  max_sequence_length=16, generator=torch.Generator().manual_seed(0), output_type="np").images
    assert images.shape == (1, 32, 32, 3) and images.std() > 0


def test_tiny_t5_tokenizer_keeps_known_words_whole_and_spells_the_rest() -> None:
    from synthaug.testing import tiny_t5_tokenizer

    tok = tiny_t5_tokenizer()
    ids = tok("a dermoscopic image of xq7").input_ids
    pieces = tok.convert_ids_to_tokens(ids)
    assert pieces[:4] == ["\u2581a", "\u2581dermoscopic", "\u2581image", "\u2581of"]
    assert pieces[-1] == "</s>" and "".join(pieces[4:-1]).replace("\u2581", "") == "xq7"
    assert tok.pad_token_id == 0 and tok.eos_token_id == 1


def test_an_existing_complete_folder_is_reused(tiny_model) -> None:
    from synthaug.testing import tiny_sd3

    marker = tiny_model / "model_index.json"
    before = marker.stat().st_mtime_ns
    assert tiny_sd3(tiny_model) == tiny_model and marker.stat().st_mtime_ns == before

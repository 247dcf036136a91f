"""The engine's parts: a transformer denoiser trained with flow matching and prompt conditioning, no pipeline."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from synthaug.diffusion._parts import (  # noqa: E402
    ClassConditioning,
    PromptConditioning,
    TransformerDenoiser,
    UNetDenoiser,
    denoiser_for,
    text_encoders,
)

torch.set_num_threads(1)


def _tiny_sd3_transformer():
    from diffusers import SD3Transformer2DModel

    return SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=3, out_channels=3, num_layers=1,
                                 attention_head_dim=8, num_attention_heads=2, joint_attention_dim=16,
                                 caption_projection_dim=16, pooled_projection_dim=8, pos_embed_max_size=8)


def test_the_pipeline_decides_the_denoiser_and_the_text_encoders() -> None:
    transformer, unet = object(), object()
    assert isinstance(denoiser_for(SimpleNamespace(transformer=transformer, unet=None)), TransformerDenoiser)
    assert denoiser_for(SimpleNamespace(unet=unet)).module is unet
    assert isinstance(denoiser_for(SimpleNamespace(transformer=None, unet=unet)), UNetDenoiser)
    pipe = SimpleNamespace(text_encoder="a", text_encoder_2="b", text_encoder_3="c")
    assert text_encoders(pipe) == ["a", "b", "c"] and text_encoders(SimpleNamespace()) == []


def test_prompt_conditioning_encodes_once_unless_the_encoders_train() -> None:
    calls = []

    def encode(prompts):
        calls.append(list(prompts))
        return {"encoder_hidden_states": torch.ones(len(prompts), 5, 16), "pooled_projections": torch.ones(len(prompts), 8)}

    frozen = PromptConditioning(encode, "a photo")
    out = frozen.batch(torch.tensor([0, 3, 1]), None)
    frozen.batch(torch.tensor([2]), None)
    assert calls == [["a photo"]] and out["encoder_hidden_states"].shape == (3, 5, 16)
    assert out["pooled_projections"].shape == (3, 8)
    trained = PromptConditioning(encode, "a photo", needs_grad=True,
                                 per_image=lambda cond, idx: {**cond, "rows": idx.tolist()})
    assert trained.batch(torch.tensor([4, 2]), None)["rows"] == [4, 2] and calls[-1] == ["a photo"] * 2


def test_class_conditioning_drops_labels_only_in_random_batches() -> None:
    part = ClassConditioning(torch.tensor([0, 1, 2, 0]), null_index=3, dropout=0.5)
    fixed = part.batch(torch.arange(4).repeat(8), None)["class_labels"]
    assert fixed.tolist() == [0, 1, 2, 0] * 8
    dropped = part.batch(torch.arange(4).repeat(8), torch.Generator().manual_seed(0))["class_labels"]
    assert 0 < int((dropped == 3).sum()) < 32


def test_the_loop_trains_a_transformer_with_flow_matching_and_resumes_exactly(tmp_path) -> None:
    from synthaug.diffusion import LoopOptions
    from synthaug.diffusion._data import PixelSource
    from synthaug.diffusion._loop import TrainingLoop
    from synthaug.diffusion._parts import TrainingParts
    from synthaug.diffusion._targets import FlowMatchingRule

    pixels = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    pixels[:, 1, 2:6, 2:6] = 200
    g = torch.Generator().manual_seed(3)
    text = {"encoder_hidden_states": torch.randn(1, 5, 16, generator=g), "pooled_projections": torch.randn(1, 8,
                                                                                                       generator=g)}

    def parts() -> TrainingParts:
        model = _tiny_sd3_transformer()
        return TrainingParts(denoiser=TransformerDenoiser(model), rule=FlowMatchingRule(shift=3.0),
                             conditioning=PromptConditioning(lambda prompts: dict(text), "p"),
                             source=PixelSource(pixels), params=dict(model.named_parameters()), modules=[model])

    def loop(folder, steps: int, every: int = 0) -> TrainingLoop:
        options = LoopOptions(max_train_steps=steps, train_batch_size=4, learning_rate=2e-3,
                                           device="cpu", checkpoint_every=every, weight_decay=0.0)
        return TrainingLoop(parts, key="sd3-toy", folder=folder, options=options)

    straight = loop(tmp_path / "straight", 30)
    result = straight.run()
    assert result.target == "flow_matching" and result.probe_loss_end < 0.7 * result.probe_loss_start, result

    class Stop(Exception):
        pass

    interrupted = loop(tmp_path / "resumed", 30, every=10)
    interrupted.after_step = lambda: (_ for _ in ()).throw(Stop()) if len(interrupted.loss_history) == 14 else None
    with pytest.raises(Stop):
        interrupted.run()
    resumed = loop(tmp_path / "resumed", 30, every=10)
    again = resumed.run()
    assert again.resumed_from_step == 10 and again.losses == pytest.approx(result.losses, abs=1e-6)
    for name, p in straight.params.items():
        assert torch.allclose(p, resumed.params[name], atol=1e-6), name

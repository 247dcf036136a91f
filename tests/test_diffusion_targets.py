"""Target rules (epsilon, v, flow matching) and the model-agnostic training loop.

The flow-matching math is checked against its definition and against diffusers' own SD3
training helpers and FlowMatchEulerDiscreteScheduler; the loop is shown to train a pixel-space
UNet with each rule, with no pipeline at all.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from synthaug._errors import InvalidOptionsError  # noqa: E402
from synthaug.diffusion._targets import (  # noqa: E402
    DdpmRule,
    FlowMatchingRule,
    is_flow_matching,
    shift_sigmas,
    target_rule_for,
)

torch.set_num_threads(1)


def _x0_noise(n: int = 5) -> tuple:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, 4, 4, generator=g), torch.randn(n, 3, 4, 4, generator=g)


def test_flow_path_runs_from_data_to_noise_and_its_velocity_is_the_target() -> None:
    rule = FlowMatchingRule()
    x0, noise = _x0_noise()
    ends = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0])
    path = rule.noisy(x0, noise, ends)
    assert torch.equal(path[0], x0[0]) and torch.equal(path[1], noise[1])
    s = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9])
    target = rule.target(x0, noise, s)
    assert torch.allclose(target, noise - x0)
    h = 1e-3  # the target is the time derivative of the path
    slope = (rule.noisy(x0, noise, s + h) - rule.noisy(x0, noise, s - h)) / (2 * h)
    assert torch.allclose(slope, target, atol=1e-3)
    noisy = rule.noisy(x0, noise, s)  # a perfect prediction recovers both ends
    assert torch.allclose(noisy - s[:, None, None, None] * target, x0, atol=1e-6)
    assert torch.allclose(rule.model_timesteps(s), s * 1000)


def test_shift_matches_the_flow_match_scheduler_and_the_dynamic_shift() -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    plain = torch.linspace(1, 1000, 1000).flip(0) / 1000
    assert torch.allclose(shift_sigmas(plain, 3.0), scheduler.sigmas[:1000], atol=1e-6)
    assert shift_sigmas(torch.tensor(0.5), 3.0) == pytest.approx(0.75)
    assert torch.equal(shift_sigmas(plain, 1.0), plain)
    mu = 0.8  # FLUX's resolution-dependent shift: exp(mu) / (exp(mu) + 1/s - 1)
    assert torch.allclose(shift_sigmas(plain, math.exp(mu)), math.exp(mu) / (math.exp(mu) + 1 / plain - 1))


@pytest.mark.parametrize("sampling", ["logit_normal", "uniform", "mode"])
def test_timestep_sampling_equals_diffusers_sd3_density(sampling: str) -> None:
    from diffusers.training_utils import compute_density_for_timestep_sampling

    rule = FlowMatchingRule(timestep_sampling=sampling, logit_mean=0.3, logit_std=0.8)
    ours = rule.sample_timesteps(4096, torch.Generator().manual_seed(1))
    theirs = compute_density_for_timestep_sampling(sampling, 4096, logit_mean=0.3, logit_std=0.8, mode_scale=1.29,
                                                   generator=torch.Generator().manual_seed(1))
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert bool(((ours > 0) & (ours < 1)).all())
    if sampling == "logit_normal":
        logits = torch.log(ours / (1 - ours))
        assert logits.mean().item() == pytest.approx(0.3, abs=0.05)
        assert logits.std().item() == pytest.approx(0.8, abs=0.05)
    shifted = FlowMatchingRule(timestep_sampling=sampling, shift=3.0).sample_timesteps(4096, torch.Generator()
                                                                                       .manual_seed(1))
    assert shifted.mean() > ours.mean()  # the shift moves training towards noisier levels


@pytest.mark.parametrize("weighting", ["none", "sigma_sqrt", "cosmap"])
def test_loss_weighting_equals_diffusers_sd3_weighting(weighting: str) -> None:
    from diffusers.training_utils import compute_loss_weighting_for_sd3

    sigmas = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95])
    ours = FlowMatchingRule(loss_weighting=weighting).loss_weight(sigmas)
    theirs = compute_loss_weighting_for_sd3(weighting, sigmas)
    assert (ours is None and torch.equal(theirs, torch.ones(5))) or torch.allclose(ours, theirs)


def test_the_scheduler_chooses_the_rule() -> None:
    from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler

    flow = target_rule_for(FlowMatchEulerDiscreteScheduler(shift=3.0), flow={"loss_weighting": "cosmap",
                                                                            "shift": None})
    assert isinstance(flow, FlowMatchingRule) and flow.shift == 3.0 and flow.loss_weighting == "cosmap"
    assert is_flow_matching(dict(FlowMatchEulerDiscreteScheduler().config))
    v = target_rule_for(DDPMScheduler(prediction_type="v_prediction").config, snr_gamma=5.0)
    assert isinstance(v, DdpmRule) and v.name == "v_prediction" and v.loss_weight(torch.tensor([10])) is not None
    with pytest.raises(InvalidOptionsError, match="snr_gamma=5.0"):
        target_rule_for(FlowMatchEulerDiscreteScheduler(), snr_gamma=5.0)
    with pytest.raises(InvalidOptionsError, match="prediction_type='sample'"):
        target_rule_for(DDPMScheduler(prediction_type="sample"))


def test_ddpm_rule_targets() -> None:
    from diffusers import DDPMScheduler

    x0, noise = _x0_noise()
    t = torch.tensor([0, 250, 500, 750, 999])
    eps = DdpmRule(DDPMScheduler())
    assert torch.equal(eps.target(x0, noise, t), noise) and eps.loss_weight(t) is None
    v = DdpmRule(DDPMScheduler(prediction_type="v_prediction"))
    a = v.scheduler.alphas_cumprod[t][:, None, None, None]
    assert torch.allclose(v.target(x0, noise, t), a.sqrt() * noise - (1 - a).sqrt() * x0, atol=1e-6)
    assert torch.allclose(v.noisy(x0, noise, t), a.sqrt() * x0 + (1 - a).sqrt() * noise, atol=1e-6)


def _loop(tmp_path, rule, **extra):
    """The engine's loop on a tiny pixel-space class-conditional UNet: no pipeline, no text encoder."""
    from diffusers import UNet2DModel

    from synthaug.diffusion import LoopOptions
    from synthaug.diffusion._data import PixelSource
    from synthaug.diffusion._loop import TrainingLoop
    from synthaug.diffusion._parts import ClassConditioning, TrainingParts, UNetDenoiser

    pixels = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    pixels[:2, 0], pixels[2:, 2] = 220, 220  # class 0 red, class 1 blue
    labels = torch.tensor([0, 0, 1, 1])

    def parts() -> TrainingParts:
        unet = UNet2DModel(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1,
                           block_out_channels=(16, 32), down_block_types=("DownBlock2D", "DownBlock2D"),
                           up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=8, num_class_embeds=3)
        return TrainingParts(denoiser=UNetDenoiser(unet), rule=rule, source=PixelSource(pixels),
                             conditioning=ClassConditioning(labels, null_index=2, dropout=0.1),
                             params=dict(unet.named_parameters()), modules=[unet])

    options = LoopOptions(max_train_steps=40, train_batch_size=4, learning_rate=3e-3, device="cpu",
                                       checkpoint_every=0, weight_decay=0.0, **extra)
    return TrainingLoop(parts, key="toy", folder=tmp_path, options=options)


@pytest.mark.parametrize("rule", [FlowMatchingRule(), FlowMatchingRule(shift=3.0, loss_weighting="cosmap")],
                         ids=["flow", "flow-shift3-cosmap"])
def test_the_loop_trains_a_pixel_unet_with_flow_matching(tmp_path, rule) -> None:
    result = _loop(tmp_path, rule).run()
    assert result.target == "flow_matching" and result.steps == 40
    assert result.probe_loss_end < 0.7 * result.probe_loss_start, result


def test_the_loop_trains_with_v_prediction(tmp_path) -> None:
    from diffusers import DDPMScheduler

    rule = DdpmRule(DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction"))
    result = _loop(tmp_path, rule).run()
    assert result.target == "v_prediction" and result.probe_loss_end < result.probe_loss_start, result
    assert len(result.losses) == 40 and result.stopped_by == "max_train_steps"
    assert result.training_seconds > 0 and "losses" not in result.to_dict()

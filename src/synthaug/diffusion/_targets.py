"""Target rules: how a training step noises clean data and what the denoiser must predict.

A :class:`TargetRule` is one part of the diffusion engine (see :mod:`synthaug.diffusion._parts`
for the others). For clean data ``x0`` (latents or pixels), standard-normal ``noise`` and a
draw ``t`` from :meth:`TargetRule.sample_timesteps`, the loss of one batch is::

    noisy = rule.noisy(x0, noise, t)
    pred = denoiser(noisy, rule.model_timesteps(t), conditioning)
    per_item = mse(pred, rule.target(x0, noise, t)).mean(over all but the batch dim)
    loss = (per_item * rule.loss_weight(t)).mean()      # loss_weight None: plain mean

Rules here:

- :class:`DdpmRule`: a discrete DDPM schedule (a diffusers scheduler config) with the epsilon
  or v-prediction target, and optional Min-SNR weighting (``snr_gamma``).
- :class:`FlowMatchingRule`: rectified flow, as SD3 and FLUX train: ``noisy = (1 - s) x0 + s
  noise``, target ``noise - x0``, the noise level ``s`` drawn logit-normal, uniform or "mode"
  and then shifted (the scheduler's ``shift``; FLUX's resolution-dependent shift ``mu`` is the
  same formula with ``shift = exp(mu)``), with optional ``sigma_sqrt``/``cosmap`` loss weights.

:func:`target_rule_for` picks the rule a pipeline's scheduler implies. Every random
number comes from the ``torch.Generator`` passed in, so a resumed run draws what an
uninterrupted one would. Importing this module does not import torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from .._errors import InvalidOptionsError

__all__ = ["DdpmRule", "FlowMatchingRule", "TargetRule", "is_flow_matching", "shift_sigmas", "target_rule_for"]

TimestepSampling = Literal["logit_normal", "uniform", "mode"]
LossWeighting = Literal["none", "sigma_sqrt", "cosmap"]


class TargetRule(Protocol):
    """The noise/target rule of a training step (contract shared by every rule).

    ``t`` is the rule's own timestep: a long tensor of DDPM steps for :class:`DdpmRule`, a
    float tensor of noise levels in (0, 1) for :class:`FlowMatchingRule`. Tensors returned
    for a batch have batch size as their first dimension.
    """

    #: Short name recorded in the training summary: ``epsilon``, ``v_prediction`` or ``flow_matching``.
    name: str

    def sample_timesteps(self, batch: int, generator: Any) -> Any:
        """Draw ``batch`` timesteps (on the CPU) from the rule's training distribution."""

    def probe_timesteps(self, n: int) -> Any:
        """``n`` fixed timesteps spread over the schedule (for a loss comparable across steps)."""

    def noisy(self, x0: Any, noise: Any, t: Any) -> Any:
        """The denoiser's input: ``x0`` noised to level ``t``."""

    def target(self, x0: Any, noise: Any, t: Any) -> Any:
        """What the denoiser must predict at ``t``."""

    def model_timesteps(self, t: Any) -> Any:
        """The timestep tensor handed to the denoiser for ``t``."""

    def loss_weight(self, t: Any) -> Any | None:
        """Per-item loss weights (shape ``(batch,)``), or ``None`` for a plain mean."""


class DdpmRule:
    """Epsilon or v-prediction on a discrete DDPM schedule, optionally Min-SNR weighted."""

    def __init__(self, scheduler: Any, *, snr_gamma: float | None = None) -> None:
        prediction_type = scheduler.config.prediction_type
        if prediction_type not in ("epsilon", "v_prediction"):
            raise InvalidOptionsError(f"scheduler prediction_type={prediction_type!r} is not supported for training: "
                                      "use a base model whose scheduler predicts epsilon or v_prediction, or a "
                                      "flow-matching scheduler")
        self.scheduler, self.snr_gamma, self.name = scheduler, snr_gamma, prediction_type
        self.num_train_timesteps = int(scheduler.config.num_train_timesteps)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, snr_gamma: float | None = None) -> DdpmRule:
        """The rule of a (DDPM-family) scheduler config, e.g. ``pipe.scheduler.config``."""
        from diffusers import DDPMScheduler

        return cls(DDPMScheduler.from_config(config), snr_gamma=snr_gamma)

    def sample_timesteps(self, batch: int, generator: Any) -> Any:
        import torch

        return torch.randint(0, self.num_train_timesteps, (batch,), generator=generator)

    def probe_timesteps(self, n: int) -> Any:
        import torch

        margin = min(100, self.num_train_timesteps // 10)
        return torch.linspace(margin, self.num_train_timesteps - margin, n).long()

    def noisy(self, x0: Any, noise: Any, t: Any) -> Any:
        return self.scheduler.add_noise(x0, noise, t)

    def target(self, x0: Any, noise: Any, t: Any) -> Any:
        return noise if self.name == "epsilon" else self.scheduler.get_velocity(x0, noise, t)

    def model_timesteps(self, t: Any) -> Any:
        return t

    def loss_weight(self, t: Any) -> Any | None:
        """Min-SNR-gamma weights ``min(snr, gamma) / snr`` (v-prediction: ``/ (snr + 1)``)."""
        if self.snr_gamma is None:
            return None
        import torch
        from diffusers.training_utils import compute_snr

        snr = compute_snr(self.scheduler, t)
        clipped = torch.clamp(snr, max=self.snr_gamma)
        return clipped / (snr + 1 if self.name == "v_prediction" else snr)


def shift_sigmas(sigmas: Any, shift: float) -> Any:
    """Shift noise levels towards 1: ``shift * s / (1 + (shift - 1) * s)`` (identity for shift 1).

    This is the shift of diffusers' ``FlowMatchEulerDiscreteScheduler``; its dynamic
    (resolution-dependent) shift ``exp(mu) / (exp(mu) + 1/s - 1)`` equals it with ``shift = exp(mu)``.
    """
    return shift * sigmas / (1 + (shift - 1) * sigmas)


class FlowMatchingRule:
    """Rectified-flow target (SD3, FLUX): predict the velocity ``noise - x0`` along a straight path.

    Noise levels ``s`` in (0, 1): ``u`` drawn by ``timestep_sampling`` (``logit_normal``:
    ``sigmoid(N(logit_mean, logit_std))``; ``uniform``; ``mode``: SD3's mode sampling with
    ``mode_scale``), then ``s = shift_sigmas(u, shift)``. The denoiser receives
    ``s * num_train_timesteps`` (SD3's convention; a FLUX denoiser divides by 1000 again).
    ``loss_weighting``: ``none``, ``sigma_sqrt`` (``s ** -2``) or ``cosmap``
    (``2 / (pi (1 - 2 s + 2 s^2))``), as in diffusers' SD3 training script.
    """

    name = "flow_matching"

    def __init__(
        self,
        *,
        num_train_timesteps: int = 1000,
        shift: float = 1.0,
        timestep_sampling: TimestepSampling = "logit_normal",
        logit_mean: float = 0.0,
        logit_std: float = 1.0,
        mode_scale: float = 1.29,
        loss_weighting: LossWeighting = "none",
    ) -> None:
        if shift <= 0:
            raise InvalidOptionsError(f"flow-matching shift={shift!r}: must be > 0")
        self.num_train_timesteps, self.shift = int(num_train_timesteps), float(shift)
        self.timestep_sampling, self.loss_weighting = timestep_sampling, loss_weighting
        self.logit_mean, self.logit_std, self.mode_scale = float(logit_mean), float(logit_std), float(mode_scale)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides: Any) -> FlowMatchingRule:
        """The rule of a ``FlowMatchEulerDiscreteScheduler`` config (its ``shift`` and step count)."""
        kwargs: dict[str, Any] = {"num_train_timesteps": config.get("num_train_timesteps", 1000),
                                  "shift": config.get("shift", 1.0)}
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kwargs)

    def _uniform_levels(self, batch: int, generator: Any) -> Any:
        import torch

        if self.timestep_sampling == "logit_normal":
            return torch.sigmoid(torch.randn(batch, generator=generator) * self.logit_std + self.logit_mean)
        u = torch.rand(batch, generator=generator)
        if self.timestep_sampling == "mode":
            return 1 - u - self.mode_scale * (torch.cos(math.pi * u / 2) ** 2 - 1 + u)
        return u

    def sample_timesteps(self, batch: int, generator: Any) -> Any:
        return shift_sigmas(self._uniform_levels(batch, generator), self.shift)

    def probe_timesteps(self, n: int) -> Any:
        import torch

        return shift_sigmas(torch.linspace(0.1, 0.9, n), self.shift)

    @staticmethod
    def _expand(t: Any, like: Any) -> Any:
        return t.to(like.device, like.dtype).reshape(-1, *([1] * (like.dim() - 1)))

    def noisy(self, x0: Any, noise: Any, t: Any) -> Any:
        s = self._expand(t, x0)
        return (1 - s) * x0 + s * noise

    def target(self, x0: Any, noise: Any, t: Any) -> Any:
        return noise - x0

    def model_timesteps(self, t: Any) -> Any:
        return t * self.num_train_timesteps

    def loss_weight(self, t: Any) -> Any | None:
        if self.loss_weighting == "sigma_sqrt":
            return (t ** -2.0).float()
        if self.loss_weighting == "cosmap":
            return (2 / (math.pi * (1 - 2 * t + 2 * t**2))).float()
        return None


def is_flow_matching(scheduler: Any) -> bool:
    """True for a flow-matching scheduler (or its config): a ``FlowMatch*`` class, or a config with
    a ``shift`` and no DDPM betas."""
    config = getattr(scheduler, "config", scheduler)
    name = type(scheduler).__name__ if hasattr(scheduler, "config") else ""
    name = name + str(config.get("_class_name", ""))
    return "FlowMatch" in name or ("shift" in config and "beta_start" not in config)


def target_rule_for(scheduler: Any, *, snr_gamma: float | None = None,
                    flow: Mapping[str, Any] | None = None) -> TargetRule:
    """The rule a pipeline's scheduler (or scheduler config) implies: flow matching for a
    flow-matching scheduler (``flow``: :class:`FlowMatchingRule` keyword overrides, ``None``
    values ignored), else a :class:`DdpmRule` with the config's ``prediction_type``."""
    config = getattr(scheduler, "config", scheduler)
    if is_flow_matching(scheduler):
        if snr_gamma is not None:
            raise InvalidOptionsError(f"option snr_gamma={snr_gamma!r}: Min-SNR weighting applies to epsilon and "
                                      "v-prediction schedules, not to flow matching; leave it unset (None)")
        return FlowMatchingRule.from_config(config, **dict(flow or {}))
    return DdpmRule.from_config(config, snr_gamma=snr_gamma)

"""One option vocabulary for every generator: shared option groups and fit-neutral fields.

Built-in generators build their ``Options`` from these bases, so one idea has one name
everywhere (the names diffusers' training scripts and pipelines use):

- :class:`TrainingOptions`: ``max_train_steps``, ``train_batch_size`` (images per training
  micro-batch), ``learning_rate``, ``lr_warmup_steps``, ``seed``, ``checkpoint_every``;
- :class:`SamplingOptions`: ``num_inference_steps``, ``guidance_scale``,
  ``generation_batch_size`` (images per generation call);
- :class:`DeviceOptions`: ``device`` (``"auto"``: cuda > mps > cpu).

A field made with :func:`fit_neutral_field` does not change the fitted model (a generation or
speed-only setting): changing it never forces a refit (see
:func:`synthaug._generator.fit_neutral_options`).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from ._generator import FIT_NEUTRAL, GeneratorOptions

__all__ = ["DeviceOptions", "SamplingOptions", "TrainingOptions", "fit_neutral_field"]

DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:\d+)?)$"


def fit_neutral_field(default: Any = ..., *, description: str, **kwargs: Any) -> Any:
    """A pydantic ``Field`` marked as not changing the fitted model (generation or speed only)."""
    return Field(default, description=description, json_schema_extra={FIT_NEUTRAL: True}, **kwargs)


class TrainingOptions(GeneratorOptions):
    """The training vocabulary every training generator shares (defaults set per generator)."""

    max_train_steps: int = Field(1000, ge=1, description="Optimizer steps to train for.")
    train_batch_size: int = Field(1, ge=1, description="Training images per micro-batch (per optimizer step "
                                                      "without gradient accumulation).")
    learning_rate: float = Field(1e-4, gt=0, description="Peak learning rate.")
    lr_warmup_steps: int = Field(0, ge=0, description="Linear learning-rate warmup steps.")
    seed: int = Field(0, ge=0, description="Training seed (initial weights, data order, noise, timesteps).")
    checkpoint_every: int = fit_neutral_field(500, ge=0, description="Save a resumable checkpoint every N steps "
                                                                     "(0: never).")


class SamplingOptions(GeneratorOptions):
    """The generation vocabulary: none of these changes the fitted model."""

    num_inference_steps: int = fit_neutral_field(30, ge=1, le=1000, description="Denoising steps per generated image.")
    guidance_scale: float = fit_neutral_field(7.5, ge=0, description="Classifier-free guidance scale.")
    generation_batch_size: int = fit_neutral_field(1, ge=1, le=1024, description="Images generated per call.")


class DeviceOptions(GeneratorOptions):
    """Where the model runs: ``auto`` is cuda > mps > cpu (``None`` is read as ``auto``)."""

    device: str = fit_neutral_field("auto", pattern=DEVICE_PATTERN,
                                    description="Torch device: 'auto' (cuda > mps > cpu), 'cpu', 'cuda', 'cuda:N' "
                                                "or 'mps'.")

    @field_validator("device", mode="before")
    @classmethod
    def _none_is_auto(cls, value: Any) -> Any:
        return "auto" if value is None else value

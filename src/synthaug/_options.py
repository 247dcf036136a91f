"""One option vocabulary for every generator: shared option groups and fit-neutral fields.

Built-in generators build their ``Options`` from these bases, so one idea has one name
everywhere (the names diffusers' training scripts and pipelines use):

- :class:`TrainingOptions`: ``max_train_steps``, ``train_batch_size`` (images per training
  micro-batch), ``learning_rate``, ``lr_warmup_steps``, ``seed``, ``checkpoint_every``;
- :class:`SamplingOptions`: ``num_inference_steps``, ``guidance_scale``,
  ``generation_batch_size`` (images per generation call);
- :class:`DeviceOptions`: ``device`` (``"auto"``: cuda > mps > cpu).

Option groups are one level of mix-ins: each group derives from
:class:`~synthaug.GeneratorOptions` directly and no two groups declare the same field, so the
order in which a generator's ``Options`` lists them never changes a default. A generator
changes a default in its own ``Options`` body, with :func:`override_default` (same type,
constraints and description; ``tests/test_generator_defaults.py`` checks the rule).

A field made with :func:`fit_neutral_field` does not change the fitted model (a generation or
speed-only setting): changing it never forces a refit (see
:func:`synthaug._generator.fit_neutral_options`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator
from pydantic.fields import FieldInfo

from ._generator import FIT_NEUTRAL, GeneratorOptions

__all__ = ["DeviceOptions", "SamplingOptions", "TrainingOptions", "fit_neutral_field", "override_default"]

DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:\d+)?)$"


def fit_neutral_field(default: Any = ..., *, description: str, **kwargs: Any) -> Any:
    """A pydantic ``Field`` marked as not changing the fitted model (generation or speed only)."""
    return Field(default, description=description, json_schema_extra={FIT_NEUTRAL: True}, **kwargs)


def override_default(group: type[BaseModel], name: str, default: Any, **changes: Any) -> Any:
    """Field ``name`` of ``group`` with another ``default`` (and any other ``Field`` keyword in
    ``changes``, e.g. ``description``), keeping its type constraints and fit-neutral mark::

        class MyOptions(LoraOptions, DiffusionOptions):
            rank: int = override_default(LoraOptions, "rank", 16)
    """
    if name not in group.model_fields:
        raise TypeError(f"{group.__name__} has no option {name!r}")
    return FieldInfo.merge_field_infos(group.model_fields[name], Field(default, **changes))


class TrainingOptions(GeneratorOptions):
    """The training vocabulary every training generator shares (defaults set per generator)."""

    max_train_steps: int = Field(1000, ge=1, description="Optimizer steps to train for (per concept for per-concept generators).")
    train_batch_size: int = Field(1, ge=1, description="Training images per micro-batch (per optimizer step "
                                                      "without gradient accumulation).")
    learning_rate: float = Field(1e-4, gt=0, description="Peak learning rate.")
    lr_warmup_steps: int = Field(0, ge=0, description="Linear learning-rate warmup steps.")
    seed: int = Field(0, ge=0, description="Training seed (initial weights or adapters, data order, noise, timesteps).")
    checkpoint_every: int = fit_neutral_field(500, ge=0, description="Save a resumable checkpoint every N steps "
                                                                     "(0: never).")


class SamplingOptions(GeneratorOptions):
    """The generation vocabulary: none of these changes the fitted model."""

    num_inference_steps: int = fit_neutral_field(30, ge=1, le=1000, description="Denoising steps per generated image.")
    guidance_scale: float = fit_neutral_field(7.5, ge=0, description="Classifier-free guidance scale.")
    generation_batch_size: int = fit_neutral_field(
        1, ge=1, le=1024,
        description="Images generated per call. 1 is bit-for-bit reproducible; larger is faster on a GPU and equal up "
                    "to floating-point rounding (rare pixel values off by one).")


class DeviceOptions(GeneratorOptions):
    """Where the model runs: ``auto`` is cuda > mps > cpu (``None`` is read as ``auto``)."""

    device: str = fit_neutral_field("auto", pattern=DEVICE_PATTERN,
                                    description="Torch device: 'auto' (cuda > mps > cpu), 'cpu', 'cuda', 'cuda:N' "
                                                "or 'mps'.")

    @field_validator("device", mode="before")
    @classmethod
    def _none_is_auto(cls, value: Any) -> Any:
        return "auto" if value is None else value

"""One option vocabulary for every generator: shared option bases, fit-neutral fields, deprecated aliases.

Built-in generators build their ``Options`` from these bases, so one idea has one name
everywhere (the names diffusers' training scripts and pipelines use):

- :class:`TrainingOptions`: ``max_train_steps``, ``train_batch_size`` (images per training
  micro-batch), ``learning_rate``, ``lr_warmup_steps``, ``seed``, ``checkpoint_every``;
- :class:`SamplingOptions`: ``num_inference_steps``, ``guidance_scale``,
  ``generation_batch_size`` (images per generation call);
- :class:`DeviceOptions`: ``device`` (``"auto"``: cuda > mps > cpu).

A field made with :func:`fit_neutral_field` does not change the fitted model (a generation or
speed-only setting): changing it never forces a refit (see
:func:`synthaug.generator.fit_neutral_options`).

A renamed option keeps working for one release: list it in the class's ``deprecated_aliases``
(``{"old": "new"}``); passing the old name emits a :class:`DeprecationWarning` naming both.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from .generator import FIT_NEUTRAL, GeneratorOptions

__all__ = ["DeviceOptions", "OptionDeprecationWarning", "SamplingOptions", "TrainingOptions", "VocabularyOptions",
           "fit_neutral_field"]

#: The release that removes the deprecated option aliases.
ALIASES_REMOVED_IN = "0.3.0"
DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:\d+)?)$"


class OptionDeprecationWarning(DeprecationWarning):
    """A generator option was given by its deprecated name (shown by default, unlike other
    DeprecationWarnings, since CLI users pass option names too)."""


warnings.filterwarnings("default", category=OptionDeprecationWarning)


def fit_neutral_field(default: Any = ..., *, description: str, **kwargs: Any) -> Any:
    """A pydantic ``Field`` marked as not changing the fitted model (generation or speed only)."""
    return Field(default, description=description, json_schema_extra={FIT_NEUTRAL: True}, **kwargs)


def _outside_caller() -> int:
    """The ``stacklevel`` of the first caller outside synthaug and pydantic (the user's line)."""
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] in (
            "synthaug", "pydantic", "pydantic_core"):
        frame, level = frame.f_back, level + 1
    return level


class VocabularyOptions(GeneratorOptions):
    """Options base that maps deprecated option names to their new names (with a warning).

    ``deprecated_aliases`` maps old name -> new name; subclasses add theirs (the mappings of
    all base classes apply). Giving both the old and the new name is an error.
    """

    deprecated_aliases: ClassVar[dict[str, str]] = {}

    @classmethod
    def all_deprecated_aliases(cls) -> dict[str, str]:
        """Old -> new names declared by this class and its bases."""
        merged: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            merged.update(getattr(klass, "__dict__", {}).get("deprecated_aliases", {}))
        return merged

    @model_validator(mode="before")
    @classmethod
    def _rename_deprecated(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        aliases = cls.all_deprecated_aliases()
        renamed = dict(data)
        for old, new in aliases.items():
            if old not in renamed or old in cls.model_fields:
                continue
            if new in renamed:
                raise ValueError(f"option {old!r} is the deprecated name of {new!r}; give only {new!r}")
            warnings.warn(f"option {old!r} is deprecated and will be removed in synthaug {ALIASES_REMOVED_IN}; "
                          f"use {new!r}", OptionDeprecationWarning, stacklevel=_outside_caller())
            renamed[new] = renamed.pop(old)
        return renamed


class TrainingOptions(VocabularyOptions):
    """The training vocabulary every training generator shares (defaults set per generator)."""

    max_train_steps: int = Field(1000, ge=1, description="Optimizer steps to train for.")
    train_batch_size: int = Field(1, ge=1, description="Training images per micro-batch (per optimizer step "
                                                      "without gradient accumulation).")
    learning_rate: float = Field(1e-4, gt=0, description="Peak learning rate.")
    lr_warmup_steps: int = Field(0, ge=0, description="Linear learning-rate warmup steps.")
    seed: int = Field(0, ge=0, description="Training seed (initial weights, data order, noise, timesteps).")
    checkpoint_every: int = fit_neutral_field(500, ge=0, description="Save a resumable checkpoint every N steps "
                                                                     "(0: never).")


class SamplingOptions(VocabularyOptions):
    """The generation vocabulary: none of these changes the fitted model."""

    num_inference_steps: int = fit_neutral_field(30, ge=1, le=1000, description="Denoising steps per generated image.")
    guidance_scale: float = fit_neutral_field(7.5, ge=0, description="Classifier-free guidance scale.")
    generation_batch_size: int = fit_neutral_field(1, ge=1, le=1024, description="Images generated per call.")


class DeviceOptions(VocabularyOptions):
    """Where the model runs: ``auto`` is cuda > mps > cpu (``None`` is read as ``auto``)."""

    device: str = fit_neutral_field("auto", pattern=DEVICE_PATTERN,
                                    description="Torch device: 'auto' (cuda > mps > cpu), 'cpu', 'cuda', 'cuda:N' "
                                                "or 'mps'.")

    @field_validator("device", mode="before")
    @classmethod
    def _none_is_auto(cls, value: Any) -> Any:
        return "auto" if value is None else value

"""Training one concept's adapter on a Stable Diffusion pipeline (:class:`Trainer`).

:class:`Trainer` is the engine's :class:`~synthaug.diffusion._loop.TrainingLoop` with its parts
built from a loaded pipeline and the plugin's :class:`TrainingHooks` (its generator): the
denoiser (``hooks.denoiser(pipe)``: the transformer or UNet), the target rule
(``hooks.target_rule(pipe)``: epsilon, v-prediction or flow matching), prompt conditioning
(``hooks.training_conditioning``/``image_conditioning``, 1-3 text encoders) and the VAE
latents of the concept's images. The loop itself (optimizer, schedule, accumulation, mixed
precision, checkpoints and exact resume, data-parallel ranks) lives in :mod:`~synthaug.diffusion._loop`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from .._progress import NULL_PROGRESS, Progress
from ._checkpoints import CHECKPOINT_DIR, latest_checkpoint
from ._loop import TrainingLoop, TrainResult, data_parallel_context
from ._optim import resolve_optimizer
from ._parts import CaptionConditioning, PromptConditioning, TrainingParts, denoiser_for

__all__ = ["CHECKPOINT_DIR", "TrainResult", "Trainer", "TrainingHooks", "TrainingLoop", "data_parallel_context",
           "latest_checkpoint", "resolve_optimizer"]


class TrainingHooks(Protocol):
    """What an SD plugin tells :class:`Trainer` (implemented by :class:`DiffusionGeneratorBase` subclasses)."""

    def add_trainable(self, pipe: Any, concept: Any) -> Mapping[str, Any]:
        """Add the adapter to ``pipe`` and return its trainable parameters by unique name."""

    def trainable_modules(self, pipe: Any) -> list[Any]:
        """Modules to put in train mode (and checkpoint gradients of) while training."""

    def denoiser(self, pipe: Any) -> Any:
        """The :class:`~synthaug.diffusion._parts.Denoiser` (optional: the pipeline's transformer, else its UNet)."""

    def target_rule(self, pipe: Any) -> Any:
        """The :class:`~synthaug.diffusion._targets.TargetRule` (optional: the one the scheduler implies)."""

    def conditions_need_grad(self) -> bool:
        """True when prompt encoding has trainable parts (so it cannot be cached)."""

    def training_conditioning(self, pipe: Any, prompts: list[str]) -> dict[str, Any]:
        """Denoiser keyword arguments (``encoder_hidden_states``, ``added_cond_kwargs``…) for ``prompts``."""

    def after_optimizer_step(self, pipe: Any) -> None:
        """Called after every optimizer step (e.g. to re-impose constraints on weights)."""

    def before_training(self, pipe: Any, trainer: Trainer) -> None:
        """Called once the trainer is prepared (latents encoded), before the first loss (e.g. to offload)."""

    def image_conditioning(self, pipe: Any, conditioning: dict[str, Any], images: list[Any]) -> dict[str, Any]:
        """The batch's conditioning given each image's geometry (e.g. SDXL time ids); unchanged by default."""


class Trainer(TrainingLoop):
    """Trains one concept's adapter on a loaded Stable Diffusion pipeline.

    The parts come from the pipeline and the plugin's hooks: the denoiser from
    ``hooks.denoiser(pipe)`` (default: the pipeline's transformer or UNet), the target rule
    from ``hooks.target_rule(pipe)`` (default: the scheduler's), prompt conditioning through
    ``hooks.training_conditioning`` / ``image_conditioning``, VAE latents of the concept's images.
    """

    def __init__(
        self,
        hooks: TrainingHooks,
        pipe: Any,
        concept: Any,
        *,
        prompt: str,
        captions: list[str] | None = None,
        folder: Path,
        options: Any,
        progress: Progress = NULL_PROGRESS,
        validate: Callable[[int], None] | None = None,
    ) -> None:
        fit_options = getattr(hooks, "fit_options", None)
        super().__init__(None, key=concept.name, folder=folder, options=options, progress=progress,
                         validate=validate, after_step=lambda: hooks.after_optimizer_step(pipe),
                         identity=fit_options() if callable(fit_options) else None)
        self.hooks, self.pipe, self.concept, self.prompt = hooks, pipe, concept, prompt
        #: Each training image's own caption (attribute prompts), or None: ``prompt`` for every image.
        self.captions = captions

    def build_parts(self) -> TrainingParts:
        import torch

        from ._data import LatentSource, load_training_images
        from ._targets import target_rule_for

        o, pipe, hooks = self.options, self.pipe, self.hooks
        denoiser = hooks.denoiser(pipe) if hasattr(hooks, "denoiser") else denoiser_for(pipe)  # before the adapter
        params = dict(hooks.add_trainable(pipe, self.concept))
        rule = (hooks.target_rule(pipe) if hasattr(hooks, "target_rule")
                else target_rule_for(pipe.scheduler, snr_gamma=o.snr_gamma))
        pixels, self.images = load_training_images(self.concept.images, o.resolution, flip=o.flip, crop=o.crop)
        vae_dtype = torch.float32 if getattr(pipe.vae.config, "force_upcast", False) else pipe.vae.dtype
        source = LatentSource(pipe.vae, pixels, o.cache_latents, denoiser.device, vae_dtype)
        common = {"needs_grad": hooks.conditions_need_grad(), "context": self._amp,
                  "per_image": lambda cond, idx: hooks.image_conditioning(pipe, cond, [self.images[int(i)] for i in idx])}
        encode = partial(hooks.training_conditioning, pipe)
        if self.captions:  # rows of flipped copies follow the originals (load_training_images)
            captions = self.captions * (len(self.images) // len(self.captions))
            conditioning: Any = CaptionConditioning(encode, captions, **common)
        else:
            conditioning = PromptConditioning(encode, self.prompt, **common)
        return TrainingParts(denoiser=denoiser, rule=rule, conditioning=conditioning, source=source,
                             params=params, modules=list(hooks.trainable_modules(pipe)))

    def prepare(self) -> None:
        """Add the adapter, encode the latents, build optimizer, schedule and random stream; then
        call the plugin's ``before_training`` hook."""
        super().prepare()
        self.hooks.before_training(self.pipe, self)

    def conditioning(self, batch: int) -> dict[str, Any]:
        """Denoiser conditioning for ``batch`` copies of the concept prompt (cached when possible)."""
        return self.parts.conditioning.prompt_batch(batch)

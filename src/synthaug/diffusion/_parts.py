"""The parts of the diffusion engine: denoiser, target rule, conditioning and data source.

The training loop (:class:`~synthaug.diffusion._training.TrainingLoop`) assumes no model: it
trains whatever :class:`TrainingParts` it is given (the diffusers way: parts, not assumptions).

- :class:`Denoiser` — the network whose prediction is trained: :class:`UNetDenoiser` (SD1.x,
  SDXL ``UNet2DConditionModel``; the pixel-space ``UNet2DModel`` of ``ddpm``) or
  :class:`TransformerDenoiser` (SD3-style ``SD3Transformer2DModel``; a FLUX part subclasses it
  to pack latents and add ids/guidance). :func:`denoiser_for` picks one for a pipeline.
- :class:`~synthaug.diffusion._targets.TargetRule` — epsilon, v-prediction or flow matching.
- :class:`Conditioning` — a batch's denoiser keyword arguments: :class:`PromptConditioning`
  (any number of text encoders, through one ``encode(prompts)`` callable, cached when frozen),
  :class:`ClassConditioning` (class labels with classifier-free-guidance dropout) or
  :class:`NoConditioning`.
- a data source — :class:`~synthaug.diffusion._data.LatentSource` (VAE latents) or
  :class:`~synthaug.diffusion._data.PixelSource` (pixels in [-1, 1]).

Importing this module does not import torch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ._targets import TargetRule

__all__ = ["ClassConditioning", "Conditioning", "DataSource", "Denoiser", "NoConditioning", "PromptConditioning",
           "TrainingParts", "TransformerDenoiser", "UNetDenoiser", "denoiser_for", "expand_batch", "text_encoders"]

#: Pipeline attributes holding text encoders, in order (SD1.x: one, SDXL: two, SD3: three).
TEXT_ENCODER_ATTRIBUTES = ("text_encoder", "text_encoder_2", "text_encoder_3")


def text_encoders(pipe: Any) -> list[Any]:
    """The pipeline's text encoders that are present (none for an unconditional pipeline)."""
    return [m for m in (getattr(pipe, a, None) for a in TEXT_ENCODER_ATTRIBUTES) if m is not None]


def expand_batch(value: Any, n: int) -> Any:
    """Repeat every batch-1 tensor in a (nested) conditioning structure along dim 0 to batch ``n``."""
    if isinstance(value, dict):
        return {k: expand_batch(v, n) for k, v in value.items()}
    if hasattr(value, "repeat") and hasattr(value, "shape"):
        return value.repeat(n, *([1] * (value.dim() - 1))) if value.shape[0] == 1 else value
    return value


class Denoiser:
    """The network trained (or adapted): ``denoiser(noisy, timesteps, conditioning) -> prediction``.

    ``module`` is the ``torch.nn.Module``; its device is the training device. ``dtype`` is the
    module's weight dtype when the part is made (before float32 adapter parameters are added):
    inputs are cast to it. Subclasses implement :meth:`__call__`.
    """

    def __init__(self, module: Any) -> None:
        self.module = module
        self.dtype = getattr(module, "dtype", None)

    @property
    def device(self) -> Any:
        return self.module.device

    def __call__(self, noisy: Any, timesteps: Any, conditioning: Mapping[str, Any]) -> Any:
        raise NotImplementedError


class UNetDenoiser(Denoiser):
    """A diffusers UNet: ``unet(noisy, timesteps, **conditioning).sample``."""

    def __call__(self, noisy: Any, timesteps: Any, conditioning: Mapping[str, Any]) -> Any:
        return self.module(noisy.to(self.dtype), timesteps, **conditioning).sample


class TransformerDenoiser(Denoiser):
    """A diffusers transformer (SD3): ``transformer(hidden_states=noisy, timestep=t, **conditioning)``.

    ``conditioning`` holds ``encoder_hidden_states`` and ``pooled_projections`` for SD3.
    """

    def __call__(self, noisy: Any, timesteps: Any, conditioning: Mapping[str, Any]) -> Any:
        return self.module(hidden_states=noisy.to(self.dtype), timestep=timesteps, **conditioning,
                           return_dict=False)[0]


def denoiser_for(pipe: Any) -> Denoiser:
    """The pipeline's denoiser part: its ``transformer`` when it has one, else its ``unet``."""
    transformer = getattr(pipe, "transformer", None)
    if transformer is not None:
        return TransformerDenoiser(transformer)
    return UNetDenoiser(pipe.unet)


class Conditioning(Protocol):
    """The denoiser keyword arguments of a training batch (contract of every conditioning part)."""

    def batch(self, indices: Any, generator: Any | None) -> dict[str, Any]:
        """Conditioning of the source rows ``indices``. ``generator`` draws any randomness (e.g.
        label dropout); ``None`` means a fixed, non-random batch (the probe loss)."""


class NoConditioning:
    """An unconditional denoiser: no keyword arguments."""

    def batch(self, indices: Any, generator: Any | None) -> dict[str, Any]:
        return {}


@dataclass
class ClassConditioning:
    """Class labels as ``class_labels`` (``ddpm``): label ``labels[i]`` for source row ``i``;
    with probability ``dropout`` (random batches only) a label becomes ``null_index``, which
    teaches the unconditional model classifier-free guidance needs."""

    labels: Any  # long tensor (N,) on the CPU
    null_index: int
    dropout: float = 0.0
    device: Any = "cpu"

    def batch(self, indices: Any, generator: Any | None) -> dict[str, Any]:
        import torch

        classes = self.labels[indices].clone()
        if generator is not None and self.dropout:
            classes[torch.rand(len(classes), generator=generator) < self.dropout] = self.null_index
        return {"class_labels": classes.to(self.device)}


class PromptConditioning:
    """One prompt for every image, encoded by ``encode(prompts) -> denoiser kwargs``.

    ``encode`` hides how many text encoders there are (SD1.x: ``encoder_hidden_states``; SDXL:
    plus ``added_cond_kwargs``; SD3: ``encoder_hidden_states`` and ``pooled_projections``).
    Unless ``needs_grad`` (trainable text-encoder parts), the encoding runs once, without
    gradients, and is repeated to each batch. ``per_image(conditioning, indices)`` adds what
    depends on the images (SDXL's time ids); ``context`` wraps encoding (autocast).
    """

    def __init__(
        self,
        encode: Callable[[list[str]], dict[str, Any]],
        prompt: str,
        *,
        needs_grad: bool = False,
        per_image: Callable[[dict[str, Any], Any], dict[str, Any]] | None = None,
        context: Callable[[], Any] = contextlib.nullcontext,
    ) -> None:
        self.encode, self.prompt, self.needs_grad = encode, prompt, needs_grad
        self.per_image, self.context = per_image, context
        self.cached: dict[str, Any] | None = None

    def prompt_batch(self, n: int) -> dict[str, Any]:
        """The prompt's conditioning for ``n`` images (cached when the encoders are frozen)."""
        import torch

        if self.needs_grad:
            return self.encode([self.prompt] * n)
        if self.cached is None:
            with torch.no_grad(), self.context():
                self.cached = self.encode([self.prompt])
        return expand_batch(self.cached, n)

    def batch(self, indices: Any, generator: Any | None) -> dict[str, Any]:
        conditioning = self.prompt_batch(len(indices))
        return self.per_image(conditioning, indices) if self.per_image else conditioning


def _concat_batches(values: list[Any]) -> Any:
    """Batch-1 conditioning structures stacked along dim 0 (tensors without a batch dim, FLUX's
    text ids, are taken from the first)."""
    first = values[0]
    if isinstance(first, dict):
        return {k: _concat_batches([v[k] for v in values]) for k in first}
    if hasattr(first, "shape") and hasattr(first, "dim") and first.dim() > 0 and first.shape[0] == 1:
        import torch

        return torch.cat(values)
    return first


class CaptionConditioning(PromptConditioning):
    """Each training image its own caption (attribute prompts): ``captions[i]`` conditions image ``i``.

    Each distinct caption is encoded once, alone, and cached while the encoders are frozen; a
    batch stacks its images' encodings. :meth:`prompt_batch` encodes every caption (the hook that
    caches before moving the text encoders off the GPU) and returns the first ``n`` captions'.
    """

    def __init__(self, encode: Callable[[list[str]], dict[str, Any]], captions: list[str], **kwargs: Any) -> None:
        super().__init__(encode, captions[0], **kwargs)
        self.captions = list(captions)
        self._encoded: dict[str, dict[str, Any]] = {}

    def _conditioning(self, prompts: list[str]) -> dict[str, Any]:
        import torch

        if self.needs_grad:
            return _concat_batches([self.encode([p]) for p in prompts])
        for p in dict.fromkeys(prompts):
            if p not in self._encoded:
                with torch.no_grad(), self.context():
                    self._encoded[p] = self.encode([p])
        return _concat_batches([self._encoded[p] for p in prompts])

    def prompt_batch(self, n: int) -> dict[str, Any]:
        if not self.needs_grad:
            self._conditioning(self.captions)
        return self._conditioning([self.captions[i % len(self.captions)] for i in range(n)])

    def batch(self, indices: Any, generator: Any | None) -> dict[str, Any]:
        conditioning = self._conditioning([self.captions[int(i)] for i in indices])
        return self.per_image(conditioning, indices) if self.per_image else conditioning


class DataSource(Protocol):
    """Clean training data: ``len`` rows, each of ``latent_shape``; see :mod:`synthaug.diffusion._data`."""

    latent_shape: tuple[int, ...]

    def __len__(self) -> int: ...

    def draw_indices(self, batch: int, generator: Any) -> Any:
        """``batch`` row indices drawn with ``generator`` (uniform, or weighted by the source)."""

    def sample(self, indices: Any, noise: Any) -> Any:
        """Clean data of rows ``indices``; ``noise`` (of ``latent_shape``) draws from a VAE posterior."""


@dataclass
class TrainingParts:
    """What one training run is made of; :class:`~synthaug.diffusion._training.TrainingLoop` needs
    nothing else about the model. ``params`` are the trainable parameters by unique name (saved in
    checkpoints); ``modules`` go to train mode (and gradient checkpointing) while training."""

    denoiser: Denoiser
    rule: TargetRule
    conditioning: Conditioning
    source: DataSource
    params: dict[str, Any]
    modules: list[Any]

"""The diffusion training loop, written once for every model (:class:`TrainingLoop`).

It trains the :class:`~synthaug.diffusion._parts.TrainingParts` it is given (denoiser, target
rule, conditioning, data source) with AdamW or 8-bit AdamW, warmup and schedule, gradient
accumulation and checkpointing, clipping, mixed precision, noise offset, optional EMA weights
(``ema_decay``), an optional time budget (``time_budget_s``) and resumable checkpoints. The SD
plugins use it through :class:`~synthaug.diffusion._training.Trainer`; ``ddpm`` directly.

All randomness comes from one CPU ``torch.Generator`` saved in every checkpoint, so a run
resumed from a checkpoint reproduces the uninterrupted run exactly. A checkpoint records the
run's ``identity`` (e.g. the training options); one made with another identity is not resumed.

Data-parallel training (option ``parallel="data"`` in a multi-process launch): every rank runs
this loop with its own random stream (seeded by seed, key and rank: its own images, noise and
timesteps); gradients are averaged across ranks before clipping and the optimizer step, so the
parameters stay identical on every rank. Only the main rank writes checkpoints (with every
rank's random stream) and validation grids.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .._errors import GenerationError
from .._generator import derive_seed
from .._progress import NULL_PROGRESS, Progress
from ._checkpoints import (
    CHECKPOINT_DIR,
    latest_checkpoint,
    read_checkpoint,
    weights_from_tensors,
    weights_to_tensors,
    write_checkpoint,
)
from ._loading import autocast_dtype
from ._optim import make_lr_scheduler, make_optimizer
from ._parts import TrainingParts
from ._train_result import TrainResult, budget_message

__all__ = ["TrainResult", "TrainingLoop", "budget_message", "data_parallel_context"]

_PROBE_SIZE = 4


def data_parallel_context(options: Any) -> Any:
    """The :class:`~synthaug._distributed.DistContext` that trains together under ``options``: the
    launch's context with ``parallel="data"``, a single-process one otherwise (or without a launch)."""
    from .._distributed import DistContext, current_context

    return current_context() if getattr(options, "parallel", "concepts") == "data" else DistContext()


def _jsonable(value: Mapping[str, Any] | None) -> Any:
    return json.loads(json.dumps(dict(value), default=str)) if value is not None else None


class TrainingLoop:
    """Trains the parts returned by ``build_parts()`` (called once, after seeding the initialisation).

    ``options`` supplies the training vocabulary (:class:`~synthaug._options.TrainingOptions`
    fields, plus ``mixed_precision``, ``optimizer``, ``weight_decay``, ``max_grad_norm``,
    ``lr_scheduler``, ``noise_offset``, ``gradient_accumulation_steps``, ``keep_checkpoints``;
    ``ema_decay``, ``time_budget_s`` and ``parallel`` when present). ``key`` names the run in
    seeds and messages. ``validate(step)`` (optional) runs at each checkpoint and at the end;
    ``after_step()`` after each optimizer step. ``keep_final_checkpoint`` also checkpoints the
    last step (so more steps can extend a finished run).
    """

    def __init__(
        self,
        build_parts: Callable[[], TrainingParts] | None,
        *,
        key: str,
        folder: Path,
        options: Any,
        progress: Progress = NULL_PROGRESS,
        validate: Callable[[int], None] | None = None,
        after_step: Callable[[], None] | None = None,
        identity: Mapping[str, Any] | None = None,
        keep_final_checkpoint: bool = False,
    ) -> None:
        self._build_parts = build_parts
        self.key, self.folder, self.options = key, Path(folder), options
        self.progress, self.validate, self.after_step = progress, validate, after_step
        self.identity, self.keep_final_checkpoint = _jsonable(identity), keep_final_checkpoint
        self.dist = data_parallel_context(options)
        self.ema: Any = None
        self.loss_history: list[float] = []
        self.training_seconds = 0.0
        self._prepared = False

    def build_parts(self) -> TrainingParts:
        """The parts to train (subclasses may override instead of passing ``build_parts``)."""
        assert self._build_parts is not None, "pass build_parts or override TrainingLoop.build_parts"
        return self._build_parts()

    # -- set-up ----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Build the parts, the optimizer, the schedule, the EMA copy and the random stream."""
        import torch

        o = self.options
        torch.manual_seed(derive_seed(o.seed, "init", self.key, 0))  # initialisation of new weights
        self.parts = self.build_parts()
        self.params = dict(self.parts.params)
        for p in self.params.values():
            p.data = p.data.float()
            p.requires_grad_(True)
        self.modules = list(self.parts.modules)
        self.denoiser, self.rule, self.source = self.parts.denoiser, self.parts.rule, self.parts.source
        self.device, self.weight_dtype = self.denoiser.device, self.denoiser.dtype
        self.autocast = autocast_dtype(o.mixed_precision, self.weight_dtype, self.device)
        self.optimizer = make_optimizer(list(self.params.values()), o, self.device)
        self.lr_scheduler = make_lr_scheduler(self.optimizer, o)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.autocast == torch.float16
                                           and self.device.type == "cuda")
        if getattr(o, "ema_decay", None):
            from diffusers.training_utils import EMAModel

            self.ema = EMAModel(list(self.params.values()), decay=o.ema_decay)
        self.rng = torch.Generator("cpu").manual_seed(derive_seed(o.seed, "train", self.key, self.dist.rank))
        self._prepared = True

    @property
    def latents(self) -> Any:
        """The data source (VAE latents or pixels)."""
        return self.source

    # -- the loss ----------------------------------------------------------------------------
    def _amp(self) -> Any:
        import torch

        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    def loss(self, indices: Any, latent_noise: Any, noise: Any, timesteps: Any, offset: Any | None = None,
             generator: Any | None = None) -> Any:
        """Mean (rule-weighted) loss of one batch, from explicit random draws (``generator``: the
        conditioning's own draws, e.g. label dropout; ``None`` for a fixed batch)."""
        import torch
        import torch.nn.functional as F

        x0 = self.source.sample(indices, latent_noise).to(self.device, torch.float32)
        noise = noise.to(self.device)
        if offset is not None:
            noise = noise + self.options.noise_offset * offset.to(self.device)
        t = timesteps.to(self.device)
        noisy, target = self.rule.noisy(x0, noise, t), self.rule.target(x0, noise, t)
        with self._amp():
            conditioning = self.parts.conditioning.batch(indices, generator)
            pred = self.denoiser(noisy, self.rule.model_timesteps(t), conditioning)
        per_item = F.mse_loss(pred.float(), target.float(), reduction="none").flatten(1).mean(dim=1)
        weight = self.rule.loss_weight(t)
        if weight is not None:
            per_item = per_item * weight.to(per_item.device, per_item.dtype)
        return per_item.mean()

    def _draw(self, batch: int) -> tuple[Any, ...]:
        import torch

        g, shape = self.rng, self.source.latent_shape
        indices = self.source.draw_indices(batch, g)
        latent_noise = torch.randn((batch, *shape), generator=g)
        noise = torch.randn((batch, *shape), generator=g)
        offset = torch.randn((batch, shape[0], *([1] * (len(shape) - 1))), generator=g) \
            if self.options.noise_offset else None
        timesteps = self.rule.sample_timesteps(batch, g)
        return indices, latent_noise, noise, timesteps, offset

    def probe_loss(self) -> float:
        """Loss on a fixed batch (fixed rows, noise and timesteps): comparable across steps."""
        import torch

        g = torch.Generator("cpu").manual_seed(derive_seed(self.options.seed, "probe", self.key, 0))
        n = min(_PROBE_SIZE, len(self.source))
        shape = self.source.latent_shape
        latent_noise, noise = torch.randn((n, *shape), generator=g), torch.randn((n, *shape), generator=g)
        with torch.no_grad():
            return float(self.loss(torch.arange(n), latent_noise, noise, self.rule.probe_timesteps(n)))

    # -- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self, step: int, extra: Mapping[str, Any]) -> Path:
        """Write ``checkpoints/step-NNNNNN`` atomically and prune old ones.

        Data-parallel: every rank calls it (each sends its random stream); the main rank writes.
        """
        rng_states = self.dist.gather(self.rng.get_state())
        if not self.dist.is_main:
            return self.folder / CHECKPOINT_DIR / f"step-{step:06d}"
        tensors, optim_info = weights_to_tensors(self.params, self.optimizer, self.ema)
        tensors["rng"] = rng_states[0]
        tensors.update({f"rng/{rank}": state for rank, state in enumerate(rng_states) if rank})
        info: dict[str, Any] = {"step": step, **optim_info, "lr_scheduler": self.lr_scheduler.state_dict(),
                                "grad_scaler": self.scaler.state_dict(), "identity": self.identity,
                                "losses": self.loss_history, "training_seconds": self.training_seconds,
                                **dict(extra)}
        if self.dist.distributed:
            info["processes"] = self.dist.world_size
        return write_checkpoint(self.folder, step, tensors, info, keep=self.options.keep_checkpoints)

    def load_checkpoint(self, path: Path) -> dict[str, Any]:
        """Restore parameters, optimizer, schedule, EMA and random stream from ``path``."""
        tensors, info = read_checkpoint(path)
        weights_from_tensors(tensors, info, self.params, self.optimizer, self.ema)
        self.lr_scheduler.load_state_dict(info["lr_scheduler"])
        self.scaler.load_state_dict(info["grad_scaler"])
        self.loss_history = [float(x) for x in info.get("losses", [])]
        self.training_seconds = float(info.get("training_seconds", 0.0))
        stream = "rng" if self.dist.rank == 0 else f"rng/{self.dist.rank}"
        if stream in tensors:
            self.rng.set_state(tensors[stream])
        else:  # saved by fewer data-parallel ranks: this rank starts a fresh stream, still seeded
            self.rng.manual_seed(derive_seed(self.options.seed, f"train-resumed-{info['step']}", self.key,
                                             self.dist.rank))
        return info

    def _resumable_checkpoint(self) -> Path | None:
        """The latest checkpoint, if it was made by a run with the same identity."""
        checkpoint = latest_checkpoint(self.folder)
        if checkpoint is None:
            return None
        saved = json.loads((checkpoint / "state.json").read_text()).get("identity")
        if saved is not None and self.identity is not None and saved != self.identity:
            self.progress.log(f"{self.key}: the checkpoint in {checkpoint} was made with other settings or data; "
                              "starting afresh")
            return None
        return checkpoint

    # -- the loop ----------------------------------------------------------------------------
    def train_step(self, batch: int) -> float:
        """One optimizer step over ``gradient_accumulation_steps`` micro-batches; returns the mean loss.

        :meth:`run` calls it in a loop (after :meth:`prepare`, inside train mode); benchmarks may too.
        """
        import torch

        o = self.options
        total = 0.0
        for _ in range(o.gradient_accumulation_steps):
            loss = self.loss(*self._draw(batch), generator=self.rng)
            self.scaler.scale(loss / o.gradient_accumulation_steps).backward()
            total += float(loss.detach()) / o.gradient_accumulation_steps
        if self.dist.distributed:
            total = self._average_gradients(total)
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(list(self.params.values()), o.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.step(list(self.params.values()))
        if self.after_step is not None:
            self.after_step()
        return total

    def _average_gradients(self, loss: float) -> float:
        """Average the (still scaled) gradients and the loss over the data-parallel ranks; return the loss.

        Averaging before unscaling makes an overflow on any rank an overflow on every rank, so
        the grad scaler skips or takes the same step everywhere.
        """
        import torch

        params = list(self.params.values())
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        mean_loss = torch.tensor([loss], dtype=torch.float32, device=params[0].grad.device)
        self.dist.average([*(p.grad for p in params), mean_loss])
        return float(mean_loss)

    @contextlib.contextmanager
    def _training_mode(self) -> Iterator[None]:
        checkpointing = self.options.gradient_checkpointing
        for m in self.modules:
            m.train()
            if checkpointing:
                (getattr(m, "enable_gradient_checkpointing", None) or m.gradient_checkpointing_enable)()
        try:
            yield
        finally:
            for m in self.modules:
                m.eval()
                if checkpointing:
                    (getattr(m, "disable_gradient_checkpointing", None) or m.gradient_checkpointing_disable)()

    def _check_finite(self, loss: float, step: int) -> None:
        """A NaN/inf loss without a grad scaler (which would skip the step) stops training clearly."""
        if not math.isfinite(loss) and not self.scaler.is_enabled():
            raise GenerationError(f"{self.key}: the training loss became {loss} at step {step}; lower "
                                  f"learning_rate (now {self.options.learning_rate})")

    def _out_of_time(self) -> bool:
        budget = getattr(self.options, "time_budget_s", None)
        return budget is not None and self.training_seconds >= budget

    def run(self) -> TrainResult:
        """Train to ``max_train_steps`` (or the time budget), resuming from the latest checkpoint."""
        if not self._prepared:
            self.prepare()
        o = self.options
        started = time.perf_counter()
        step, probe_start = 0, None
        checkpoint = self._resumable_checkpoint()
        if checkpoint is not None:
            info = self.load_checkpoint(checkpoint)
            step, probe_start = int(info["step"]), info.get("probe_loss_start")
            self.progress.log(f"{self.key}: resuming training from step {step} ({checkpoint})")
        else:
            probe_start = self.probe_loss()
        resumed_from, stopped_by = step, "max_train_steps"
        task = self.progress.task(f"training {self.key}", o.max_train_steps, completed=min(step, o.max_train_steps))
        loop_started = time.perf_counter()
        base_seconds = self.training_seconds
        try:
            with self._training_mode():
                while step < o.max_train_steps:
                    if self._out_of_time():
                        stopped_by = "time_budget_s"
                        break
                    loss = self.train_step(o.train_batch_size)
                    self._check_finite(loss, step)
                    self.loss_history.append(loss)
                    step += 1
                    self.training_seconds = base_seconds + time.perf_counter() - loop_started
                    task.advance(1, metrics={"loss": loss, "lr": self.lr_scheduler.get_last_lr()[0]})
                    if o.checkpoint_every and step % o.checkpoint_every == 0 and step < o.max_train_steps:
                        self.save_checkpoint(step, {"probe_loss_start": probe_start})
                        self._validate(step)
        finally:
            task.close()
        loop_seconds = time.perf_counter() - loop_started
        if stopped_by == "time_budget_s" and self.dist.is_main:
            self.progress.log(budget_message(self.key, step, o.max_train_steps, self.training_seconds))
        if self.keep_final_checkpoint and step > resumed_from:
            self.save_checkpoint(step, {"probe_loss_start": probe_start})
        self._validate(step)
        return TrainResult(
            steps=step,
            resumed_from_step=resumed_from,
            final_loss=self.loss_history[-1] if self.loss_history else None,
            probe_loss_start=probe_start,
            probe_loss_end=self.probe_loss(),
            seconds=round(time.perf_counter() - started, 3),
            steps_per_second=round((step - resumed_from) / loop_seconds, 4) if loop_seconds > 0 else 0.0,
            n_training_images=len(self.source),
            losses=list(self.loss_history),
            processes=self.dist.world_size,
            stopped_by=stopped_by,
            training_seconds=round(self.training_seconds, 3),
            target=getattr(self.rule, "name", type(self.rule).__name__),
        )

    def _validate(self, step: int) -> None:
        if self.validate is None or not getattr(self.options, "validation_images", 0) or not self.dist.is_main:
            return
        modes = [m.training for m in self.modules]
        for m in self.modules:
            m.eval()
        try:
            self.validate(step)
        finally:
            for m, mode in zip(self.modules, modes):
                m.train(mode)

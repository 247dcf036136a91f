"""The training loop every Stable Diffusion plugin uses.

Noise-prediction loss (epsilon or v-prediction, from the model's scheduler config) on a DDPM
schedule; AdamW or 8-bit AdamW; learning-rate warmup and schedule; gradient accumulation,
gradient checkpointing, clipping, mixed precision; Min-SNR weighting and noise offset;
cached VAE latents; resumable checkpoints (safetensors + JSON, no pickle) every N steps.

What is trained, and how prompts become UNet conditioning, comes from a
:class:`TrainingHooks` object (the plugin's generator): the loop is written once.
All randomness comes from one CPU ``torch.Generator`` saved in every checkpoint, so a run
resumed from a checkpoint reproduces the uninterrupted run exactly.

Data-parallel training (option ``parallel="data"`` in a multi-process launch): every rank runs
this loop on the same concept with its own random stream (seeded by seed, concept and rank:
its own images, noise and timesteps), the gradients of the trainable parameters are averaged
across ranks before clipping and the optimizer step, so the parameters stay identical on every
rank. Only the main rank writes checkpoints (with every rank's random stream) and validation grids.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..generator import derive_seed
from ..progress import NULL_PROGRESS, Progress
from .data import LatentSource, TrainingImage, load_training_images
from .loading import autocast_dtype
from .options import DiffusionOptions

__all__ = ["CHECKPOINT_DIR", "TrainResult", "Trainer", "TrainingHooks", "data_parallel_context", "latest_checkpoint",
           "resolve_optimizer"]

CHECKPOINT_DIR = "checkpoints"
_STATE_TENSORS = "state.safetensors"
_STATE_JSON = "state.json"
_PROBE_SIZE = 4


class TrainingHooks(Protocol):
    """What a plugin tells the shared loop (implemented by :class:`DiffusionGeneratorBase` subclasses)."""

    def add_trainable(self, pipe: Any, concept: Any) -> Mapping[str, Any]:
        """Add the adapter to ``pipe`` and return its trainable parameters by unique name."""

    def trainable_modules(self, pipe: Any) -> list[Any]:
        """Modules to put in train mode (and checkpoint gradients of) while training."""

    def conditions_need_grad(self) -> bool:
        """True when prompt encoding has trainable parts (so it cannot be cached)."""

    def training_conditioning(self, pipe: Any, prompts: list[str]) -> dict[str, Any]:
        """UNet keyword arguments (``encoder_hidden_states``, ``added_cond_kwargs``…) for ``prompts``."""

    def after_optimizer_step(self, pipe: Any) -> None:
        """Called after every optimizer step (e.g. to re-impose constraints on weights)."""

    def before_training(self, pipe: Any, trainer: Trainer) -> None:
        """Called once the trainer is prepared (latents encoded), before the first loss (e.g. to offload)."""

    def image_conditioning(
        self, pipe: Any, conditioning: dict[str, Any], images: list[TrainingImage]
    ) -> dict[str, Any]:
        """The batch's conditioning given each image's geometry (e.g. SDXL time ids); unchanged by default."""


@dataclass
class TrainResult:
    """What a finished training run reports (stored in the artifact JSON)."""

    steps: int
    resumed_from_step: int
    final_loss: float | None
    probe_loss_start: float | None
    probe_loss_end: float
    seconds: float
    steps_per_second: float
    n_training_images: int
    losses: list[float] = field(default_factory=list)
    processes: int = 1  # ranks that trained together (data-parallel); 1 otherwise

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("losses")
        return data


def _expand(value: Any, n: int) -> Any:
    """Repeat every tensor in a (nested) conditioning structure along dim 0 to batch ``n``."""
    if isinstance(value, dict):
        return {k: _expand(v, n) for k, v in value.items()}
    if hasattr(value, "repeat") and hasattr(value, "shape"):
        return value.repeat(n, *([1] * (value.dim() - 1))) if value.shape[0] == 1 else value
    return value


def _checkpoint_step(path: Path) -> int | None:
    name = path.name
    if not name.startswith("step-") or not (path / _STATE_JSON).is_file():
        return None
    try:
        return int(name[5:])
    except ValueError:
        return None


def resolve_optimizer(optimizer: str, device: Any) -> str:
    """The optimizer an ``optimizer`` option means on ``device``: ``auto`` is adamw8bit on CUDA, else adamw."""
    if optimizer == "auto":
        return "adamw8bit" if getattr(device, "type", str(device)) == "cuda" else "adamw"
    return optimizer


def data_parallel_context(options: Any) -> Any:
    """The :class:`~synthaug.distributed.DistContext` that trains together under ``options``: the
    launch's context with ``parallel="data"``, a single-process one otherwise (or without a launch)."""
    from ..distributed import DistContext, current_context

    return current_context() if getattr(options, "parallel", "concepts") == "data" else DistContext()


def latest_checkpoint(folder: Path) -> Path | None:
    """The complete checkpoint with the highest step under ``folder/checkpoints``, if any."""
    root = Path(folder) / CHECKPOINT_DIR
    if not root.is_dir():
        return None
    found = [(step, p) for p in root.iterdir() if (step := _checkpoint_step(p)) is not None]
    return max(found)[1] if found else None


class Trainer:
    """Trains one concept's adapter on a loaded pipeline.

    ``validate(step)`` (optional) is called at each checkpoint and at the end, with the
    adapter active, e.g. to save a grid of validation images.
    """

    def __init__(
        self,
        hooks: TrainingHooks,
        pipe: Any,
        concept: Any,
        *,
        prompt: str,
        folder: Path,
        options: DiffusionOptions,
        progress: Progress = NULL_PROGRESS,
        validate: Callable[[int], None] | None = None,
    ) -> None:
        self.hooks, self.pipe, self.concept = hooks, pipe, concept
        self.prompt, self.folder, self.options = prompt, Path(folder), options
        self.progress, self.validate = progress, validate
        self.device = pipe.unet.device
        self.weight_dtype = pipe.unet.dtype
        self.autocast = autocast_dtype(options.mixed_precision, self.weight_dtype, self.device)
        self.dist = data_parallel_context(options)
        self._prepared = False

    # -- set-up ----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Add the adapter, encode the latents, build optimizer, schedule and random stream."""
        import torch
        from diffusers import DDPMScheduler

        o = self.options
        key = self.concept.name
        torch.manual_seed(derive_seed(o.seed, "init", key, 0))  # adapter initialisation
        self.params = dict(self.hooks.add_trainable(self.pipe, self.concept))
        for p in self.params.values():
            p.data = p.data.float()
            p.requires_grad_(True)
        self.modules = list(self.hooks.trainable_modules(self.pipe))
        pixels, self.images = load_training_images(self.concept.images, o.resolution, flip=o.flip, crop=o.crop)
        vae_dtype = torch.float32 if getattr(self.pipe.vae.config, "force_upcast", False) else self.pipe.vae.dtype
        self.latents = LatentSource(self.pipe.vae, pixels, o.cache_latents, self.device, vae_dtype)
        self.noise_scheduler = DDPMScheduler.from_config(self.pipe.scheduler.config)
        self.prediction_type = self.noise_scheduler.config.prediction_type
        self.optimizer = self._make_optimizer(list(self.params.values()))
        self.lr_scheduler = self._make_lr_scheduler()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.autocast == torch.float16
                                           and self.device.type == "cuda")
        self.rng = torch.Generator("cpu").manual_seed(derive_seed(o.seed, "train", key, self.dist.rank))
        self._cached_conditioning: dict[str, Any] | None = None
        self._prepared = True
        self.hooks.before_training(self.pipe, self)

    def _make_optimizer(self, params: list[Any]) -> Any:
        import torch

        o = self.options
        if resolve_optimizer(o.optimizer, self.device) == "adamw8bit":
            import logging

            from .._optional import require

            logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
            bnb = require("bitsandbytes", purpose="optimizer=adamw8bit")
            return bnb.optim.AdamW8bit(params, lr=o.learning_rate, weight_decay=o.weight_decay)
        return torch.optim.AdamW(params, lr=o.learning_rate, weight_decay=o.weight_decay)

    def _make_lr_scheduler(self) -> Any:
        from diffusers.optimization import get_scheduler

        o = self.options
        name = "constant_with_warmup" if o.lr_scheduler == "constant" and o.lr_warmup_steps else o.lr_scheduler
        return get_scheduler(name, self.optimizer, num_warmup_steps=o.lr_warmup_steps,
                             num_training_steps=o.max_train_steps)

    # -- the loss ----------------------------------------------------------------------------
    def _amp(self) -> Any:
        import torch

        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    def conditioning(self, batch: int) -> dict[str, Any]:
        """UNet conditioning for ``batch`` copies of the concept prompt (cached when possible)."""
        import torch

        if self.hooks.conditions_need_grad():
            return self.hooks.training_conditioning(self.pipe, [self.prompt] * batch)
        if self._cached_conditioning is None:
            with torch.no_grad(), self._amp():
                self._cached_conditioning = self.hooks.training_conditioning(self.pipe, [self.prompt])
        return _expand(self._cached_conditioning, batch)

    def loss(self, indices: Any, latent_noise: Any, noise: Any, timesteps: Any, offset: Any | None = None) -> Any:
        """Mean (Min-SNR weighted) noise-prediction loss of one batch, from explicit random draws."""
        import torch
        import torch.nn.functional as F

        latents = self.latents.sample(indices, latent_noise).to(self.device, torch.float32)
        noise = noise.to(self.device)
        if offset is not None:
            noise = noise + self.options.noise_offset * offset.to(self.device)
        timesteps = timesteps.to(self.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        if self.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        elif self.prediction_type == "epsilon":
            target = noise
        else:
            raise NotImplementedError(f"prediction_type {self.prediction_type!r} is not supported for training")
        with self._amp():
            cond = self.conditioning(len(indices))
            cond = self.hooks.image_conditioning(self.pipe, cond, [self.images[int(i)] for i in indices])
            pred = self.pipe.unet(noisy.to(self.weight_dtype), timesteps, **cond).sample
        per_item = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
        if self.options.snr_gamma is not None:
            from diffusers.training_utils import compute_snr

            snr = compute_snr(self.noise_scheduler, timesteps)
            clipped = torch.clamp(snr, max=self.options.snr_gamma)
            per_item = per_item * (clipped / (snr + 1 if self.prediction_type == "v_prediction" else snr))
        return per_item.mean()

    def _draw(self, batch: int) -> tuple[Any, ...]:
        import torch

        g, shape = self.rng, self.latents.latent_shape
        indices = torch.randint(len(self.latents), (batch,), generator=g)
        latent_noise = torch.randn((batch, *shape), generator=g)
        noise = torch.randn((batch, *shape), generator=g)
        offset = torch.randn((batch, shape[0], 1, 1), generator=g) if self.options.noise_offset else None
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (batch,), generator=g)
        return indices, latent_noise, noise, timesteps, offset

    def probe_loss(self) -> float:
        """Loss on a fixed batch (fixed images, noise and timesteps): comparable across steps."""
        import torch

        g = torch.Generator("cpu").manual_seed(derive_seed(self.options.seed, "probe", self.concept.name, 0))
        n = min(_PROBE_SIZE, len(self.latents))
        shape = self.latents.latent_shape
        indices = torch.arange(n)
        latent_noise, noise = torch.randn((n, *shape), generator=g), torch.randn((n, *shape), generator=g)
        timesteps = torch.linspace(100, self.noise_scheduler.config.num_train_timesteps - 100, n).long()
        with torch.no_grad():
            return float(self.loss(indices, latent_noise, noise, timesteps))

    # -- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self, step: int, extra: Mapping[str, Any]) -> Path:
        """Write ``checkpoints/step-NNNNNN`` atomically and prune old ones.

        Data-parallel: every rank calls it (each sends its random stream); the main rank writes.
        """
        from safetensors.torch import save_file

        rng_states = self.dist.gather(self.rng.get_state())
        root = self.folder / CHECKPOINT_DIR
        final = root / f"step-{step:06d}"
        if not self.dist.is_main:
            return final

        tensors: dict[str, Any] = {f"param/{k}": v.detach().float().cpu().contiguous() for k, v in self.params.items()}
        scalars: dict[str, dict[str, Any]] = {}
        opt = self.optimizer.state_dict()
        for idx, state in opt["state"].items():
            for k, v in state.items():
                if hasattr(v, "detach"):
                    tensors[f"optim/{idx}/{k}"] = v.detach().cpu().clone().contiguous()
                else:
                    scalars.setdefault(str(idx), {})[k] = v
        tensors["rng"] = rng_states[0]
        tensors.update({f"rng/{rank}": state for rank, state in enumerate(rng_states) if rank})
        if self.dist.distributed:
            extra = {**extra, "processes": self.dist.world_size}
        info = {
            "step": step,
            "optimizer_param_groups": opt["param_groups"],
            "optimizer_scalars": scalars,
            "lr_scheduler": self.lr_scheduler.state_dict(),
            "grad_scaler": self.scaler.state_dict(),
            **dict(extra),
        }
        tmp = root / f".step-{step:06d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file(tensors, str(tmp / _STATE_TENSORS))
        (tmp / _STATE_JSON).write_text(json.dumps(info, default=float))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        kept = sorted((p for p in root.iterdir() if _checkpoint_step(p) is not None), key=_checkpoint_step)
        for old in kept[: -self.options.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def load_checkpoint(self, path: Path) -> dict[str, Any]:
        """Restore parameters, optimizer, schedule and random stream from ``path``."""
        import torch
        from safetensors.torch import load_file

        tensors = load_file(str(path / _STATE_TENSORS))
        info = json.loads((path / _STATE_JSON).read_text())
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(tensors[f"param/{name}"].to(p.device, p.dtype))
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optim/"):
                _, idx, name = key.split("/", 2)
                state.setdefault(int(idx), {})[name] = value
        for idx, values in info["optimizer_scalars"].items():
            state.setdefault(int(idx), {}).update(values)
        self.optimizer.load_state_dict({"state": state, "param_groups": info["optimizer_param_groups"]})
        self.lr_scheduler.load_state_dict(info["lr_scheduler"])
        self.scaler.load_state_dict(info["grad_scaler"])
        stream = "rng" if self.dist.rank == 0 else f"rng/{self.dist.rank}"
        if stream in tensors:
            self.rng.set_state(tensors[stream])
        else:  # saved by fewer data-parallel ranks: this rank starts a fresh stream, still seeded
            self.rng.manual_seed(derive_seed(self.options.seed, f"train-resumed-{info['step']}", self.concept.name,
                                             self.dist.rank))
        return info

    # -- the loop ----------------------------------------------------------------------------
    def train_step(self, batch: int) -> float:
        """One optimizer step over ``gradient_accumulation_steps`` micro-batches; returns the mean loss.

        :meth:`run` calls it in a loop (after :meth:`prepare`, inside train mode); benchmarks may too.
        """
        import torch

        o = self.options
        total = 0.0
        for _ in range(o.gradient_accumulation_steps):
            loss = self.loss(*self._draw(batch))
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
        self.hooks.after_optimizer_step(self.pipe)
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
    def _training_mode(self):
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

    def run(self) -> TrainResult:
        """Train to ``max_train_steps``, resuming from the latest checkpoint in the folder."""
        if not self._prepared:
            self.prepare()
        o = self.options
        started = time.perf_counter()
        step, probe_start = 0, None
        checkpoint = latest_checkpoint(self.folder)
        if checkpoint is not None:
            info = self.load_checkpoint(checkpoint)
            step, probe_start = int(info["step"]), info.get("probe_loss_start")
            self.progress.log(f"{self.concept.name}: resuming training from step {step} ({checkpoint})")
        else:
            probe_start = self.probe_loss()
        resumed_from = step
        task = self.progress.task(f"training {self.concept.name}", o.max_train_steps, completed=step)
        losses: list[float] = []
        loop_started = time.perf_counter()
        try:
            with self._training_mode():
                while step < o.max_train_steps:
                    loss = self.train_step(o.train_batch_size)
                    losses.append(loss)
                    step += 1
                    task.advance(1, metrics={"loss": loss, "lr": self.lr_scheduler.get_last_lr()[0]})
                    if o.checkpoint_every and step % o.checkpoint_every == 0 and step < o.max_train_steps:
                        self.save_checkpoint(step, {"probe_loss_start": probe_start})
                        self._validate(step)
        finally:
            task.close()
        loop_seconds = time.perf_counter() - loop_started
        self._validate(step)
        return TrainResult(
            steps=step,
            resumed_from_step=resumed_from,
            final_loss=losses[-1] if losses else None,
            probe_loss_start=probe_start,
            probe_loss_end=self.probe_loss(),
            seconds=round(time.perf_counter() - started, 3),
            steps_per_second=round((step - resumed_from) / loop_seconds, 4) if loop_seconds > 0 else 0.0,
            n_training_images=len(self.concept.images),
            losses=losses,
            processes=self.dist.world_size,
        )

    def _validate(self, step: int) -> None:
        if self.validate is None or not self.options.validation_images or not self.dist.is_main:
            return
        modes = [m.training for m in self.modules]
        for m in self.modules:
            m.eval()
        try:
            self.validate(step)
        finally:
            for m, mode in zip(self.modules, modes):
                m.train(mode)

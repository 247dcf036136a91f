"""Training the class-conditional UNet: data, model, loop, EMA and resumable checkpoints.

All training randomness (initial weights, batch draws, flips, dropped labels, noise,
timesteps) comes from one CPU ``torch.Generator`` seeded by ``options.seed`` whose state is
saved in each checkpoint, so a resumed run draws the same numbers an uninterrupted one would.
Checkpoints hold only safetensors and JSON (no pickle).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from synthaug import require
from synthaug.errors import GenerationError, InvalidOptionsError
from synthaug.generator import Concept
from synthaug.progress import NULL_PROGRESS, Progress

from .generator import CHECKPOINT_DIR, MODEL_DIR, DdpmOptions

NUM_TRAIN_TIMESTEPS = 1000
BETA_SCHEDULE = "squaredcos_cap_v2"
PREDICTION_TYPE = "v_prediction"
STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
#: Losses are averaged over windows of this many steps in the saved history.
LOSS_WINDOW = 10


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the weights (recorded in artifact.json)."""
    import diffusers
    import torch

    return {"torch": torch.__version__, "diffusers": diffusers.__version__}


def resolve_device(spec: str) -> Any:
    """A ``torch.device`` for ``'auto'``/``'cpu'``/``'cuda[:N]'``/``'mps'``; error if unavailable."""
    torch = require("torch", purpose="the ddpm generator")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidOptionsError(
            f"generator 'ddpm': option device={spec!r} but no CUDA GPU is available to torch; use device='cpu' or 'auto'"
        )
    if spec == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InvalidOptionsError(f"generator 'ddpm': option device={spec!r} but MPS is not available; use 'cpu' or 'auto'")
    return torch.device(spec)


def build_unet(options: DdpmOptions, n_classes: int) -> Any:
    """A fresh pixel-space ``UNet2DModel`` with ``n_classes + 1`` class embeddings (the last = null)."""
    diffusers = require("diffusers", purpose="the ddpm generator")
    channels = tuple(options.width * m for m in options.channel_multipliers)
    levels = len(channels)
    last_down = "AttnDownBlock2D" if options.attention else "DownBlock2D"
    first_up = "AttnUpBlock2D" if options.attention else "UpBlock2D"
    return diffusers.UNet2DModel(
        sample_size=options.resolution,
        in_channels=3,
        out_channels=3,
        layers_per_block=options.layers_per_block,
        block_out_channels=channels,
        down_block_types=("DownBlock2D",) * (levels - 1) + (last_down,),
        up_block_types=(first_up,) + ("UpBlock2D",) * (levels - 1),
        norm_num_groups=math.gcd(options.width, 32),
        attention_head_dim=min(32, channels[-1]),
        num_class_embeds=n_classes + 1,
    )


def make_noise_scheduler() -> Any:
    """The training noise schedule: cosine betas, 1000 steps, v-prediction.

    The model predicts ``v = sqrt(a) * noise - sqrt(1 - a) * image`` rather than the noise:
    with the noise target, the image estimated at the noisiest steps (``a`` near 0) is the
    prediction error amplified ~70x, which sends few-step samplers off towards the wrong colours.
    """
    diffusers = require("diffusers", purpose="the ddpm generator")
    return diffusers.DDPMScheduler(
        num_train_timesteps=NUM_TRAIN_TIMESTEPS, beta_schedule=BETA_SCHEDULE, prediction_type=PREDICTION_TYPE
    )


def load_images(concepts: Sequence[Concept], resolution: int) -> tuple[Any, Any]:
    """All training images as a uint8 tensor (N, 3, R, R) and their class indices (N,).

    Images are read like everywhere in synthaug (EXIF, modes -> RGB), centre-cropped to a
    square and resized with a bicubic filter. Concept ``i`` of ``concepts`` is class ``i``.
    """
    import numpy as np
    import torch
    from PIL import Image, ImageOps

    from synthaug import load_image

    pixels, labels = [], []
    for index, concept in enumerate(concepts):
        for path in sorted(concept.images):
            try:
                image = load_image(path)
            except Exception as exc:  # noqa: BLE001 - name the file
                raise GenerationError(f"ddpm: cannot read training image {path} of {concept.name!r}: {exc}") from exc
            square = ImageOps.fit(image, (resolution, resolution), Image.Resampling.BICUBIC)
            pixels.append(np.asarray(square, dtype=np.uint8))
            labels.append(index)
    data = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous()
    return data, torch.tensor(labels, dtype=torch.long)


def sampling_weights(labels: Any, power: float) -> Any:
    """Per-image draw weights ``n_class ** -power`` (0: uniform over images, 1: over classes)."""
    import torch

    counts = torch.bincount(labels).double()
    return counts[labels] ** (-power)


# -- optimizer and RNG state as safetensors ----------------------------------------------------
def save_optimizer(path: Path, optimizer: Any, rng: Any) -> None:
    """Write the optimizer state and the RNG state to ``path`` (safetensors, no pickle)."""
    import torch
    from safetensors.torch import save_file

    state = optimizer.state_dict()
    tensors: dict[str, Any] = {"rng_state": rng.get_state()}
    for pid, entry in state["state"].items():
        for key, value in entry.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"state.{pid}.{key}"] = tensor.detach().cpu().contiguous()
    save_file(tensors, str(path), metadata={"param_groups": json.dumps(state["param_groups"])})


def load_optimizer(path: Path, optimizer: Any, rng: Any) -> None:
    """Restore what :func:`save_optimizer` wrote into ``optimizer`` and ``rng``."""
    from safetensors import safe_open

    state: dict[int, dict[str, Any]] = {}
    with safe_open(str(path), framework="pt") as fh:
        groups = json.loads(fh.metadata()["param_groups"])
        for name in fh.keys():
            if name == "rng_state":
                rng.set_state(fh.get_tensor(name))
                continue
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = fh.get_tensor(name)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# -- checkpoints ----------------------------------------------------------------------------------
def read_checkpoint_state(folder: Path) -> dict[str, Any] | None:
    """``state.json`` of a complete checkpoint in ``folder``, or ``None``."""
    try:
        return json.loads((folder / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


def write_checkpoint(work_dir: Path, unet: Any, ema: Any, optimizer: Any, rng: Any, state: Mapping[str, Any]) -> None:
    """Replace ``work_dir/checkpoint`` atomically enough: write aside, then swap folders."""
    final = work_dir / CHECKPOINT_DIR
    tmp = work_dir / (CHECKPOINT_DIR + ".tmp")
    old = work_dir / (CHECKPOINT_DIR + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    unet.save_pretrained(tmp / "unet", safe_serialization=True)
    ema.save_pretrained(tmp / "ema", safe_serialization=True)
    save_optimizer(tmp / OPTIMIZER_FILE, optimizer, rng)
    (tmp / STATE_FILE).write_text(json.dumps(dict(state), indent=1))  # last: marks it complete
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def _recover_checkpoint_folder(work_dir: Path) -> None:
    """After a crash between the two renames of :func:`write_checkpoint`, keep the complete one."""
    final, old = work_dir / CHECKPOINT_DIR, work_dir / (CHECKPOINT_DIR + ".old")
    if not final.exists() and read_checkpoint_state(old) is not None:
        os.replace(old, final)


def export_model(work_dir: Path, ema: Any) -> None:
    """Write the EMA weights and the scheduler config to ``work_dir/model`` (safetensors)."""
    tmp = work_dir / (MODEL_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    ema.save_pretrained(tmp, safe_serialization=True)
    make_noise_scheduler().save_pretrained(tmp)
    shutil.rmtree(work_dir / MODEL_DIR, ignore_errors=True)
    os.replace(tmp, work_dir / MODEL_DIR)


# -- the loop --------------------------------------------------------------------------------------
class _Run:
    """Model, EMA copy, optimizer and RNG of one training run (fresh or resumed)."""

    def __init__(self, options: DdpmOptions, n_classes: int, work_dir: Path, identity: Mapping[str, Any],
                 device: Any, progress: Progress) -> None:
        import torch

        self.options = options
        self.device = device
        self.rng = torch.Generator().manual_seed(options.seed)
        self.step, self.elapsed, self.losses = 0, 0.0, []
        self.resumed_from: int | None = None
        folder = work_dir / CHECKPOINT_DIR
        _recover_checkpoint_folder(work_dir)
        state = read_checkpoint_state(folder)
        if state is not None and state.get("identity") == json.loads(json.dumps(dict(identity))):
            self._resume(folder, state, progress)
        else:
            if state is not None:
                progress.log(f"ddpm: the checkpoint in {folder} was made with other settings or data; starting afresh")
            torch.manual_seed(options.seed)  # initial weights
            self.unet = build_unet(options, n_classes)
            self.ema = build_unet(options, n_classes)
            self.ema.load_state_dict(self.unet.state_dict())
            self.unet.to(device)
            self.ema.to(device)
            self.optimizer = self._make_optimizer()
        self.ema.requires_grad_(False)

    def _make_optimizer(self) -> Any:
        import torch

        return torch.optim.AdamW(self.unet.parameters(), lr=self.options.learning_rate, weight_decay=0.0)

    def _resume(self, folder: Path, state: Mapping[str, Any], progress: Progress) -> None:
        diffusers = require("diffusers", purpose="the ddpm generator")
        self.unet = diffusers.UNet2DModel.from_pretrained(folder / "unet").to(self.device)
        self.ema = diffusers.UNet2DModel.from_pretrained(folder / "ema").to(self.device)
        self.optimizer = self._make_optimizer()
        load_optimizer(folder / OPTIMIZER_FILE, self.optimizer, self.rng)
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed_s"])
        self.losses = list(state.get("loss_history", []))
        self.resumed_from = self.step
        progress.log(f"ddpm: resuming training from the checkpoint at step {self.step}")

    def learning_rate(self) -> float:
        warmup = self.options.warmup_steps
        return self.options.learning_rate * min(1.0, (self.step + 1) / warmup) if warmup else self.options.learning_rate

    def update_ema(self) -> None:
        import torch

        decay = min(self.options.ema_decay, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for ema_p, p in zip(self.ema.parameters(), self.unet.parameters()):
                ema_p.lerp_(p, 1.0 - decay)

    def save(self, work_dir: Path, identity: Mapping[str, Any]) -> None:
        state = {"step": self.step, "elapsed_s": round(self.elapsed, 3), "identity": dict(identity),
                 "loss_history": self.losses}
        write_checkpoint(work_dir, self.unet, self.ema, self.optimizer, self.rng, state)


def _batch(data: Any, labels: Any, weights: Any, options: DdpmOptions, null_index: int, rng: Any) -> tuple[Any, Any]:
    """Draw a training batch: images in [-1, 1] (flipped at random) and class labels (some nulled)."""
    import torch

    n = options.batch_size
    idx = torch.multinomial(weights, n, replacement=True, generator=rng)
    images = data[idx].float() / 127.5 - 1.0
    flips = torch.rand(n, 2, generator=rng)
    if options.hflip:
        images = torch.where((flips[:, 0] < 0.5)[:, None, None, None], images.flip(-1), images)
    if options.vflip:
        images = torch.where((flips[:, 1] < 0.5)[:, None, None, None], images.flip(-2), images)
    classes = labels[idx].clone()
    classes[torch.rand(n, generator=rng) < options.class_dropout] = null_index
    return images, classes


def train(options: DdpmOptions, concepts: Sequence[Concept], work_dir: Path, *, identity: Mapping[str, Any],
          progress: Progress = NULL_PROGRESS) -> dict[str, Any]:
    """Train (or resume) the model on ``concepts`` (class ``i`` = ``concepts[i]``); export it.

    Stops at ``options.train_steps`` or when the summed training time passes
    ``options.time_budget_s``. Returns the training summary stored in artifact.json.
    """
    torch = require("torch", purpose="the ddpm generator")
    require("diffusers", purpose="the ddpm generator")
    device = resolve_device(options.device)
    data, labels = load_images(concepts, options.resolution)
    weights = sampling_weights(labels, options.class_sampling_power)
    null_index = len(concepts)
    run = _Run(options, len(concepts), work_dir, identity, device, progress)
    scheduler = make_noise_scheduler()
    alphas = scheduler.alphas_cumprod.to(device)
    target = options.train_steps
    task = progress.task("fitting ddpm", target, completed=min(run.step, target))
    window: list[float] = []
    run.unet.train()
    started, stop_reason = time.monotonic(), "train_steps"
    base_elapsed = run.elapsed
    try:
        while run.step < target:
            if options.time_budget_s is not None and run.elapsed >= options.time_budget_s:
                stop_reason = "time_budget_s"
                break
            images, classes = _batch(data, labels, weights, options, null_index, run.rng)
            noise = torch.randn(images.shape, generator=run.rng)
            timesteps = torch.randint(0, NUM_TRAIN_TIMESTEPS, (images.shape[0],), generator=run.rng)
            images, classes, noise, timesteps = (x.to(device) for x in (images, classes, noise, timesteps))
            a = alphas[timesteps].float()[:, None, None, None]
            noisy = a.sqrt() * images + (1 - a).sqrt() * noise
            velocity = a.sqrt() * noise - (1 - a).sqrt() * images
            prediction = run.unet(noisy, timesteps, class_labels=classes).sample
            loss = torch.nn.functional.mse_loss(prediction.float(), velocity)
            if not torch.isfinite(loss):
                raise GenerationError(
                    f"ddpm: the training loss became {loss.item()} at step {run.step}; lower learning_rate "
                    f"(now {options.learning_rate})"
                )
            for group in run.optimizer.param_groups:
                group["lr"] = run.learning_rate()
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(run.unet.parameters(), 1.0)
            run.optimizer.step()
            run.step += 1
            run.update_ema()
            run.elapsed = base_elapsed + time.monotonic() - started
            window.append(float(loss.item()))
            if len(window) == LOSS_WINDOW:
                run.losses.append([run.step, sum(window) / len(window)])
                window = []
            task.advance(1, metrics={"loss": window[-1] if window else run.losses[-1][1]})
            if run.step % options.checkpoint_every == 0 and run.step < target:
                run.save(work_dir, identity)
    finally:
        task.close()
    if window:
        run.losses.append([run.step, sum(window) / len(window)])
    run.save(work_dir, identity)
    export_model(work_dir, run.ema)
    return {
        "steps": run.step,
        "resumed_from_step": run.resumed_from,
        "stopped_by": stop_reason if run.step < target else "train_steps",
        "training_seconds": round(run.elapsed, 2),
        "device": str(device),
        "n_images": int(data.shape[0]),
        "loss_window": LOSS_WINDOW,
        "loss_history": run.losses,
    }

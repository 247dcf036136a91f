"""The ``ddpm`` generator: options, fit (one model for all concepts) and generate.

Layout of ``work_dir`` after :meth:`DdpmGenerator.fit`::

    work_dir/
      model/            EMA weights of the UNet (diffusers ``save_pretrained``, safetensors)
                        + the noise scheduler's config
      checkpoint/       latest training state: raw and EMA UNet, optimizer and RNG state
                        (safetensors) and state.json (step, elapsed time, losses)
      artifact.json     written last: generator, versions, options, concepts, training summary

``fit`` skips training when ``artifact.json`` exists for the same training options and the
same concepts (names, labels and image files); otherwise it resumes from ``checkpoint/`` when
that was made with the same model/data settings (the step count continues, so raising
``train_steps`` extends a finished model), or starts afresh.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from synthaug.errors import DatasetError, GenerationError, InvalidOptionsError, InvalidParameterError
from synthaug.generator import (
    Concept,
    GeneratedImage,
    Generator,
    GeneratorOptions,
    file_digest,
    read_artifact,
    write_artifact,
)
from synthaug.progress import NULL_PROGRESS, Progress

__all__ = ["DdpmGenerator", "DdpmOptions"]

MODEL_DIR = "model"
CHECKPOINT_DIR = "checkpoint"
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"

#: Options that only say how long to train or how often to save: a checkpoint made with other
#: values of these can be resumed (the step count continues).
SCHEDULE_OPTIONS = frozenset({"train_steps", "time_budget_s", "checkpoint_every"})
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class DdpmOptions(GeneratorOptions):
    """Options of the ``ddpm`` generator (model, training, and sampling settings)."""

    # -- model ----------------------------------------------------------------------------
    resolution: int = Field(64, ge=8, le=512, description="Side of the square images the model learns and generates, in pixels (training images are centre-cropped to a square and resized).")
    width: int = Field(64, ge=4, le=512, description="Channels of the UNet's first level; deeper levels multiply it by channel_multipliers.")
    channel_multipliers: tuple[int, ...] = Field((1, 2, 2, 4), min_length=1, max_length=6, description="Channel multiplier of each UNet level (its length is the number of levels; the resolution must be divisible by 2**(levels-1)).")
    layers_per_block: int = Field(1, ge=1, le=4, description="ResNet layers in each UNet level.")
    attention: bool = Field(True, description="Self-attention at the lowest-resolution level of the UNet.")
    # -- training -------------------------------------------------------------------------
    train_steps: int = Field(4000, ge=1, description="Optimizer steps to train for (a stop sooner is possible with time_budget_s). Raising it later resumes a finished model.")
    time_budget_s: float | None = Field(None, gt=0, description="Stop training after this many seconds of training time (summed over resumed runs), even before train_steps; None = no limit.")
    batch_size: int = Field(16, ge=1, le=4096, description="Training images per optimizer step.")
    learning_rate: float = Field(5e-4, gt=0, le=1, description="AdamW learning rate (after warm-up; constant afterwards so that resuming with more steps continues smoothly).")
    warmup_steps: int = Field(100, ge=0, description="Linear learning-rate warm-up, in steps.")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="Decay of the exponential moving average of the weights used for generation (warmed up as min(decay, (1+step)/(10+step))).")
    class_dropout: float = Field(0.1, ge=0, lt=1, description="Probability of replacing a training image's class by the 'null' class, which teaches the unconditional model used by classifier-free guidance.")
    class_sampling_power: float = Field(0.5, ge=0, le=1, description="Training images are drawn with weight n_class**(-power): 0 = every image equally often, 1 = every class equally often.")
    hflip: bool = Field(True, description="Random horizontal flips of training images.")
    vflip: bool = Field(False, description="Random vertical flips of training images (sensible for dermoscopy or microscopy, not for digits).")
    checkpoint_every: int = Field(500, ge=1, description="Save a resumable checkpoint every this many steps (and at the end).")
    seed: int = Field(0, ge=0, description="Seed of all training randomness (initial weights, batches, noise).")
    device: str = Field("auto", description="'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'.")
    # -- sampling ---------------------------------------------------------------------------
    sampler: Literal["ddim", "dpm-solver"] = Field("ddim", description="Sampler used to generate: deterministic DDIM or DPM-Solver++ (multistep).")
    sampling_steps: int = Field(25, ge=1, le=1000, description="Denoising steps per generated image.")
    guidance_scale: float = Field(2.0, ge=0, le=20, description="Classifier-free guidance scale: 1 = plain conditional model, higher = more typical of the class, less varied.")
    generate_batch_size: int = Field(16, ge=1, le=1024, description="Images denoised together when generating (does not change the images).")


class DdpmGenerator(Generator):
    """Class-conditional DDPM trained from scratch on the training split; one model for all concepts."""

    name = "ddpm"
    version = "1"
    description = "Small class-conditional diffusion model trained from scratch on your images (offline; CPU or GPU)."
    fits_all_classes = True
    fit_scope = "all"  # one model for every concept: a multi-process run fits it once
    Options = DdpmOptions
    generation_only_options = frozenset({"sampler", "sampling_steps", "guidance_scale", "generate_batch_size", "device"})

    def __init__(self, options: Any = None, /, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        self._check_options()
        self.work_dir: Path | None = None
        self._model: Any = None
        self._info: dict[str, Any] | None = None

    # -- options ------------------------------------------------------------------------------
    def _check_options(self) -> None:
        o = self.options
        levels = len(o.channel_multipliers)
        if any(m < 1 for m in o.channel_multipliers):
            raise InvalidOptionsError(
                f"generator 'ddpm': option channel_multipliers={o.channel_multipliers!r}: every multiplier must be >= 1"
            )
        if o.resolution % 2 ** (levels - 1):
            raise InvalidOptionsError(
                f"generator 'ddpm': option resolution={o.resolution!r} must be divisible by 2**(levels-1) = "
                f"{2 ** (levels - 1)} for {levels} UNet levels (channel_multipliers={o.channel_multipliers!r}); "
                "change the resolution or use fewer levels"
            )
        if not _DEVICE_RE.match(o.device):
            raise InvalidOptionsError(
                f"generator 'ddpm': option device={o.device!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
            )

    def training_identity(self) -> dict[str, Any]:
        """Fit options that a resumable checkpoint must share (all but how long to train)."""
        return {k: v for k, v in self.fit_options().items() if k not in SCHEDULE_OPTIONS}

    # -- fit --------------------------------------------------------------------------------------
    @staticmethod
    def concept_table(concepts: Sequence[Concept]) -> list[dict[str, Any]]:
        """The concepts as fitted: class index (sorted by name), name, label, images digest."""
        table = []
        for index, concept in enumerate(sorted(concepts, key=lambda c: c.name)):
            listing = "\n".join(sorted(str(p) for p in concept.images)).encode()
            table.append({
                "index": index,
                "name": concept.name,
                "label": concept.label,
                "text": concept.text,
                "n_images": len(concept.images),
                "images_sha256": hashlib.sha256(listing).hexdigest(),
            })
        return table

    def is_fitted(self, work_dir: Path, concepts: Sequence[Concept]) -> bool:
        """True when ``work_dir`` holds a complete model for the same options and concepts."""
        info = read_artifact(work_dir)
        return (
            info is not None
            and info.get("generator") == self.name
            and info.get("fit_options") == self.fit_options()
            and info.get("concepts") == self.concept_table(concepts)
            and (Path(work_dir) / MODEL_DIR / WEIGHTS_FILE).is_file()
        )

    def fit(self, concepts: Sequence[Concept], work_dir: Path, *, progress: Progress = NULL_PROGRESS) -> None:
        """Train one class-conditional model on every concept's images (or reuse/resume it)."""
        work_dir = Path(work_dir)
        self._release_model()
        self.work_dir = work_dir
        if not concepts:
            raise InvalidParameterError("concepts", [], "at least one concept with training images")
        empty = [c.name for c in concepts if not c.images]
        if empty:
            raise DatasetError(f"ddpm: concept(s) {', '.join(map(repr, empty))} have no training images to learn from")
        names = [c.name for c in concepts]
        if len(set(names)) != len(names):
            raise InvalidParameterError("concepts", names, "concepts with unique names")
        if self.is_fitted(work_dir, concepts):
            progress.log(f"ddpm: reusing the fitted model in {work_dir}")
            self._info = read_artifact(work_dir)
            return
        from . import training

        work_dir.mkdir(parents=True, exist_ok=True)
        table = self.concept_table(concepts)
        by_name = {c.name: c for c in concepts}
        ordered = [by_name[row["name"]] for row in table]
        summary = training.train(
            self.options,
            ordered,
            work_dir,
            identity={"training": self.training_identity(), "concepts": table},
            progress=progress,
        )
        info = {
            **self.artifact_header(),
            "versions": training.library_versions(),
            "concepts": table,
            "null_class_index": len(table),
            "model_sha256": file_digest(work_dir / MODEL_DIR / WEIGHTS_FILE),
            "training": summary,
        }
        write_artifact(work_dir, info)
        self._info = info

    # -- generate -----------------------------------------------------------------------------------
    def _artifact(self) -> dict[str, Any]:
        if self._info is None:
            if self.work_dir is None or read_artifact(self.work_dir) is None:
                raise GenerationError("ddpm: call fit(concepts, work_dir) before generate() (no fitted model)")
            self._info = read_artifact(self.work_dir)
        return self._info

    def class_index(self, concept: Concept) -> int:
        """The model's class index of ``concept`` (an error if it was not fitted)."""
        for row in self._artifact()["concepts"]:
            if row["name"] == concept.name:
                return int(row["index"])
        fitted = ", ".join(row["name"] for row in self._artifact()["concepts"])
        raise InvalidParameterError(
            "concept", concept.name, f"one of the concepts the ddpm model was fitted on ({fitted})",
            "fit again with this concept included",
        )

    def _loaded_model(self) -> Any:
        if self._model is None:
            from . import sampling

            assert self.work_dir is not None
            self._model = sampling.load_model(self.work_dir / MODEL_DIR, self.options.device)
        return self._model

    def generate(self, concept: Concept, seeds: Sequence[int]) -> Iterator[GeneratedImage]:
        """One image per seed of ``concept``; a seed gives the same image in any batch or order."""
        index = self.class_index(concept)
        null_index = int(self._artifact()["null_class_index"])
        seeds = [int(s) for s in seeds]
        if not seeds:
            return
        from . import sampling

        model = self._loaded_model()
        o = self.options
        for start in range(0, len(seeds), o.generate_batch_size):
            chunk = seeds[start : start + o.generate_batch_size]
            images = sampling.sample(
                model,
                seeds=chunk,
                class_index=index,
                null_index=null_index,
                resolution=o.resolution,
                sampler=o.sampler,
                steps=o.sampling_steps,
                guidance_scale=o.guidance_scale,
                batch_shape=o.generate_batch_size,
            )
            for seed, image in zip(chunk, images):
                yield GeneratedImage(image, seed, {"class_index": index})

    def record(self, concept: Concept) -> dict[str, Any]:
        """Manifest fields shared by a concept's images: model hash, steps trained, class index."""
        info = self._artifact()
        return {
            "model_sha256": info.get("model_sha256"),
            "model_steps": info.get("training", {}).get("steps"),
            "class_index": self.class_index(concept),
        }

    def _release_model(self) -> None:
        self._model = None
        self._info = None

    def close(self) -> None:
        """Drop the loaded model."""
        self._release_model()


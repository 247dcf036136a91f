"""The ``ddpm`` generator: fit (one model for all concepts) and generate; options in :mod:`.options`.

Layout of ``work_dir`` after :meth:`DdpmGenerator.fit`::

    work_dir/
      model/            EMA weights of the UNet (diffusers ``save_pretrained``, safetensors)
                        + the noise scheduler's config
      checkpoints/step-NNNNNN/
                        latest training state (the diffusion engine's checkpoint): weights, EMA
                        weights, optimizer and RNG state (safetensors) and state.json
      artifact.json     written last: generator, versions, options, concepts, training summary

``fit`` skips training when ``artifact.json`` exists for the same training options and the
same concepts (names, labels and image files); otherwise it resumes from ``checkpoints/`` when
that was made with the same model/data settings (the step count continues, so raising
``max_train_steps`` extends a finished model), or starts afresh. Training is the diffusion
engine's loop (:class:`synthaug.diffusion.TrainingLoop`); see :mod:`synthaug_ddpm.training`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from synthaug import (
    NULL_PROGRESS,
    Concept,
    DatasetError,
    GeneratedImage,
    GenerationError,
    Generator,
    InvalidOptionsError,
    InvalidParameterError,
    Progress,
)
from synthaug.diffusion import file_digest, read_artifact, write_artifact

from .options import MODEL_DIR, RESUMABLE_CHANGES, WEIGHTS_FILE, DdpmOptions

__all__ = ["DdpmGenerator", "DdpmOptions"]


class DdpmGenerator(Generator):
    """Class-conditional DDPM trained from scratch on the training split; one model for all concepts."""

    name = "ddpm"
    version = "2"  # 2: trained by the diffusion engine's loop (checkpoints/, flipped copies, engine seeds)
    description = "Small class-conditional diffusion model trained from scratch on your images (offline; CPU or GPU)."
    fits_all_classes = True
    fit_scope = "all"  # one model for every concept: a multi-process run fits it once
    Options = DdpmOptions

    def __init__(self, options: Any = None, /, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        self._model: Any = None
        self._info: dict[str, Any] | None = None

    # -- options ------------------------------------------------------------------------------
    def check_options(self) -> None:
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

    def training_identity(self) -> dict[str, Any]:
        """Fit options that a resumable checkpoint must share (all but how long to train)."""
        return {k: v for k, v in self.fit_options().items() if k not in RESUMABLE_CHANGES}

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
                # identity by content (paths, sizes, SHA-256): other images under the same names refit
                **({"training_set": concept.fingerprint} if concept.fingerprint else {}),
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
        from synthaug.diffusion import library_versions

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
            "versions": library_versions(),
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
        for start in range(0, len(seeds), o.generation_batch_size):
            chunk = seeds[start : start + o.generation_batch_size]
            images = sampling.sample(
                model,
                seeds=chunk,
                class_index=index,
                null_index=null_index,
                resolution=o.resolution,
                sampler=o.sampler,
                steps=o.num_inference_steps,
                guidance_scale=o.guidance_scale,
                batch_shape=o.generation_batch_size,
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


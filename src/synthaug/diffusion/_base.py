"""``DiffusionGeneratorBase``: a per-concept diffusion fine-tuning generator, minus the adapter.

A plugin subclasses it, sets ``name``/``Options``/``pipeline_class``, and implements the adapter hooks:

- :meth:`~DiffusionGeneratorBase.add_trainable` / :meth:`~DiffusionGeneratorBase.trainable_modules`
  (what is trained), :meth:`~DiffusionGeneratorBase.save_adapter` (write safetensors files),
  :meth:`~DiffusionGeneratorBase.finish_training` (leave the pipeline clean) and
  :meth:`~DiffusionGeneratorBase.activate_adapter` (load a saved adapter for generation);
- optionally the engine parts: :meth:`~DiffusionGeneratorBase.denoiser` (the pipeline's
  transformer or UNet), :meth:`~DiffusionGeneratorBase.target_rule` (epsilon, v-prediction or
  flow matching, from the scheduler), :meth:`~DiffusionGeneratorBase.training_conditioning`
  (prompt -> denoiser kwargs, for 1, 2 or 3 text encoders; SDXL's pooled embeddings),
  :meth:`~DiffusionGeneratorBase.image_conditioning` (SDXL time ids);
- optionally :meth:`~DiffusionGeneratorBase.conditions_need_grad`,
  :meth:`~DiffusionGeneratorBase.concept_phrase`, :meth:`~DiffusionGeneratorBase.load_kwargs`.

Everything else — loading the base model once per instance, the training loop, checkpoints
and resume, validation grids, prompts, seeded generation with defect retries, the artifact
JSON and manifest fields — is shared. Importing this module does not import torch.
"""

from __future__ import annotations

import gc
import shutil
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from .._errors import DatasetError, GenerationError, InvalidOptionsError
from .._generator import Concept, GeneratedImage, GeneratorOptions, PerConceptGenerator
from .._progress import NULL_PROGRESS, Progress
from ._options import DiffusionOptions, FlowMatchingOptions

__all__ = ["DiffusionGeneratorBase", "adapter_digest", "library_versions"]

VALIDATION_DIR = "validation"


def library_versions() -> dict[str, str]:
    """Versions of the libraries that determine an artifact (recorded in artifact JSON)."""
    from importlib import metadata

    out = {}
    for dist in ("torch", "diffusers", "transformers", "peft", "safetensors", "bitsandbytes"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def adapter_digest(*paths: Path) -> str:
    """SHA-256 of the *content* of adapter files, independent of how they were serialised.

    A safetensors file is hashed by its metadata (sorted) and its tensors in name order
    (name, dtype, shape, raw bytes): the writer stores the header in an arbitrary order,
    so equal weights can give different file bytes. Other files are hashed byte for byte.
    """
    import hashlib
    import json

    h = hashlib.sha256()
    for path in paths:
        data = Path(path).read_bytes()
        if Path(path).suffix != ".safetensors":
            h.update(hashlib.sha256(data).digest())
            continue
        size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + size])
        body = memoryview(data)[8 + size :]
        h.update(json.dumps(header.pop("__metadata__", {}), sort_keys=True).encode())
        for name in sorted(header):
            info = header[name]
            start, end = info["data_offsets"]
            h.update(json.dumps([name, info["dtype"], info["shape"]]).encode())
            h.update(body[start:end])
    return h.hexdigest()


def image_grid(images: Sequence[Any]) -> Any:
    """Tile PIL images of one size into a near-square grid."""
    import math

    from PIL import Image

    cols = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    w, h = images[0].size
    grid = Image.new("RGB", (cols * w, rows * h))
    for i, image in enumerate(images):
        grid.paste(image, ((i % cols) * w, (i // cols) * h))
    return grid


class DiffusionGeneratorBase(PerConceptGenerator):
    """One fine-tuned adapter per concept on a shared, once-loaded Stable Diffusion pipeline."""

    Options: ClassVar[type[GeneratorOptions]] = DiffusionOptions
    #: The diffusers pipeline class loaded from ``base_model``.
    pipeline_class: ClassVar[str] = "StableDiffusionPipeline"

    def __init__(self, options: GeneratorOptions | Mapping[str, Any] | None = None, /, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        self._pipe: Any = None
        self._img2img: Any = None  # diffusers' img2img pipeline sharing the base pipeline's modules
        self._active: str | None = None
        # parallel=data: every rank trains every concept together; else one concept per rank
        self.fit_scope = "data" if getattr(self.options, "parallel", "concepts") == "data" else "concept"

    def check_options(self) -> None:
        o = self.options
        if o.resolution % 8:
            raise InvalidOptionsError(f"generator {self.name!r}: option resolution={o.resolution}: use a multiple of 8")

    # -- the base model ------------------------------------------------------------------
    @property
    def pipeline(self) -> Any:
        """The base pipeline, loaded on first use and reused for every concept."""
        if self._pipe is None:
            from ._casting import store_base_weights
            from ._loading import load_pipeline, resolve_device, resolve_dtype

            device = resolve_device(self.options.device)
            dtype = resolve_dtype(self.options.dtype, device)
            self._pipe = load_pipeline(
                self.pipeline_class,
                self.options.base_model,
                device=device,
                dtype=dtype,
                variant=self.options.variant,
                scheduler=self.options.scheduler,
                extra=self.load_kwargs(),
            )
            store_base_weights(self.denoiser(self._pipe).module, self.options.base_weights, dtype)
            for module in (self.denoiser(self._pipe).module, self._pipe.vae, *self.text_encoders(self._pipe)):
                module.requires_grad_(False)
                module.eval()
        return self._pipe

    def load_kwargs(self) -> dict[str, Any]:
        """Extra ``from_pretrained`` arguments: the safety checker (SD1.x) is off unless asked for."""
        import diffusers

        components = getattr(getattr(diffusers, self.pipeline_class), "_optional_components", [])
        if self.options.safety_checker or "safety_checker" not in components:
            return {}
        return {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}

    @staticmethod
    def text_encoders(pipe: Any) -> list[Any]:
        """The pipeline's text encoders (one for SD1.x, two for SDXL, three for SD3)."""
        from ._parts import text_encoders

        return text_encoders(pipe)

    # -- the engine's parts (see synthaug.diffusion._parts) -------------------------------------
    def denoiser(self, pipe: Any) -> Any:
        """The :class:`~synthaug.diffusion._parts.Denoiser` trained or adapted: by default the
        pipeline's ``transformer`` (SD3, FLUX) when it has one, else its ``unet``."""
        from ._parts import denoiser_for

        return denoiser_for(pipe)

    def target_rule(self, pipe: Any) -> Any:
        """The :class:`~synthaug.diffusion._targets.TargetRule` of training: by default the one the
        pipeline's scheduler implies (flow matching for ``FlowMatch*`` schedulers, else epsilon or
        v-prediction from ``prediction_type``, Min-SNR weighted with ``snr_gamma``). Options that
        mix in :class:`~synthaug.diffusion._options.FlowMatchingOptions` set the flow-matching rule."""
        from ._targets import target_rule_for

        o = self.options
        flow = o.flow_rule_overrides() if isinstance(o, FlowMatchingOptions) else None
        return target_rule_for(pipe.scheduler, snr_gamma=o.snr_gamma, flow=flow)

    # -- prompts ---------------------------------------------------------------------------
    def concept_phrase(self, concept: Concept) -> str:
        """What ``{concept}`` becomes in the prompt template (the concept's text by default)."""
        return concept.text

    def template_for(self, concept: Concept) -> str:
        """The prompt template of ``concept`` (per-concept or default)."""
        return self.options.prompts.get(concept.name, self.options.prompt_template)

    def prompt_for(self, concept: Concept, attributes: Mapping[str, str] | None = None) -> str:
        """The prompt of ``concept``: its template filled in (``{concept}``: with ``fine_tune=false``
        the concept's own text, as there is no learned token; metadata columns from ``attributes``)."""
        from .._metadata import fill_template

        phrase = self.concept_phrase(concept) if self.options.fine_tune else concept.text
        return fill_template(self.template_for(concept).replace("{concept}", phrase), attributes or {})

    # -- hooks for the training loop (see synthaug.diffusion._training.TrainingHooks) ----
    def add_trainable(self, pipe: Any, concept: Concept) -> Mapping[str, Any]:
        """Add the concept's adapter to ``pipe``; return its trainable parameters by name."""
        raise NotImplementedError

    def trainable_modules(self, pipe: Any) -> list[Any]:
        """Modules switched to train mode (and gradient checkpointing) while training (the denoiser)."""
        return [self.denoiser(pipe).module]

    def conditions_need_grad(self) -> bool:
        """True when the text encoder has trainable parts (prompt embeddings cannot be cached)."""
        return False

    def training_conditioning(self, pipe: Any, prompts: list[str]) -> dict[str, Any]:
        """Denoiser keyword arguments for ``prompts`` (SD1.x: ``encoder_hidden_states``).

        The conditioning-encoder part: override it for other pipelines (SDXL adds the pooled
        embedding; SD3 gives ``encoder_hidden_states`` and ``pooled_projections`` from its three
        text encoders)."""
        embeds, _ = pipe.encode_prompt(prompts, self.denoiser(pipe).device, 1, False)
        return {"encoder_hidden_states": embeds}

    def after_optimizer_step(self, pipe: Any) -> None:
        """Called after each optimizer step; nothing by default."""

    def before_training(self, pipe: Any, trainer: Any) -> None:
        """Called when the trainer is prepared (adapter added, latents encoded), before the first loss.

        A plugin may fill caches here (``trainer.conditioning(1)``) and move modules it no longer
        needs off the GPU; :meth:`finish_training` must undo such moves. Nothing by default.
        """

    def image_conditioning(self, pipe: Any, conditioning: dict[str, Any], images: list[Any]) -> dict[str, Any]:
        """Denoiser conditioning of a batch, given each image's :class:`~synthaug.diffusion._data.TrainingImage`
        (original size, crop corner, target size: SDXL's time ids). ``conditioning`` unchanged by default."""
        return conditioning

    def save_adapter(self, pipe: Any, concept: Concept, folder: Path) -> list[Path]:
        """Write the trained adapter of ``concept`` into ``folder`` (safetensors); return the files."""
        raise NotImplementedError

    def finish_training(self, pipe: Any, concept: Concept) -> None:
        """Remove training-only state so ``pipe`` is ready for the next concept."""

    def activate_adapter(self, pipe: Any, concept: Concept, folder: Path) -> None:
        """Make ``pipe`` generate ``concept`` using the adapter saved in ``folder``."""
        raise NotImplementedError

    def generation_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of every pipeline call when generating."""
        o = self.options
        return {"num_inference_steps": o.num_inference_steps, "guidance_scale": o.guidance_scale,
                "height": o.resolution, "width": o.resolution}

    # -- fit -----------------------------------------------------------------------------------
    def fit(self, concepts: Sequence[Concept], work_dir: Path, *, progress: Progress = NULL_PROGRESS) -> None:
        """Fit every concept (see :meth:`PerConceptGenerator.fit`); a missing bitsandbytes for
        8-bit AdamW fails here, before any model is loaded."""
        from ._loading import resolve_device
        from ._training import resolve_optimizer

        o = self.options
        if o.fine_tune and resolve_optimizer(o.optimizer, resolve_device(o.device)) == "adamw8bit":
            from .._optional import require

            require("bitsandbytes", purpose=f"generator {self.name!r} option optimizer={o.optimizer!r} (8-bit AdamW; "
                                            "or set optimizer=adamw)")
        super().fit(concepts, work_dir, progress=progress)

    def fit_concept(self, concept: Concept, folder: Path, *, progress: Progress = NULL_PROGRESS) -> Mapping[str, Any]:
        """Train ``concept``'s adapter (resuming from checkpoints in ``folder``) and save it.

        Data-parallel (``parallel=data`` in a multi-process launch): every rank trains, the main
        rank saves the adapter and removes the checkpoints; an error there stops every rank.
        """
        from ._checkpoints import CHECKPOINT_DIR
        from ._prompts import captions_digest, training_captions
        from ._training import Trainer

        captions = training_captions(self, concept)
        digest = {"captions_sha256": captions_digest(captions)} if captions else {}
        if not self.options.fine_tune:  # real-guidance: the base model as is, nothing to train
            return {"base_model": self.options.base_model, "prompt": self.prompt_for(concept), "adapter_files": [],
                    "adapter_sha256": None, "versions": library_versions(), "training": None, **digest}
        if not concept.images:
            raise DatasetError(f"concept {concept.name!r} has no training images; {self.name} needs at least one")
        pipe = self.pipeline
        self._active = None
        prompt = self.prompt_for(concept)
        trainer = Trainer(self, pipe, concept, prompt=prompt, captions=captions, folder=folder, options=self.options,
                          progress=progress, validate=partial(self.save_validation_grid, concept, folder))
        dist = trainer.dist
        try:
            result = trainer.run()
            files = dist.phase(f"saving {concept.name}", lambda: self.save_adapter(pipe, concept, folder)
                               if dist.is_main else [])
        finally:
            self.finish_training(pipe, concept)
        if not dist.is_main:
            return {}
        shutil.rmtree(folder / CHECKPOINT_DIR, ignore_errors=True)
        return {
            "base_model": self.options.base_model,
            "prompt": prompt,
            **digest,
            "adapter_files": [f.name for f in files],
            "adapter_sha256": adapter_digest(*files),
            "versions": library_versions(),
            "training": result.to_dict(),
        }

    def _write_artifact(self, concept: Concept, folder: Path, extra: Mapping[str, Any]) -> None:
        """Write ``artifact.json`` (data-parallel: on the main rank only; every rank waits for it)."""
        from ._training import data_parallel_context

        dist = data_parallel_context(self.options)
        write = partial(super()._write_artifact, concept, folder, extra)
        dist.phase(f"writing the artifact of {concept.name}", write if dist.is_main else lambda: None)

    def save_validation_grid(self, concept: Concept, folder: Path, step: int) -> Path:
        """Generate the validation images (seeds 0..n-1) with the current weights; save a PNG grid."""
        from ._generation import generate_images

        o = self.options
        seeds = list(range(o.validation_images))
        images = [g.image for g in generate_images(
            self.pipeline, seeds, prompt=self.prompts_for(concept, seeds)[0],
            negative_prompt=o.negative_prompt, batch_size=o.validation_images, max_retries=0,
            call_kwargs=self.generation_kwargs(),
        )]
        path = folder / VALIDATION_DIR / f"step-{step:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image_grid(images).save(path)
        return path

    # -- generate ------------------------------------------------------------------------------
    def generate(self, concept: Concept, seeds: Sequence[int]) -> Iterator[GeneratedImage]:
        """One image per seed from ``concept``'s adapter (see :func:`~synthaug.diffusion._generation.generate_images`)."""
        from ._generation import generate_images

        if not self.is_fitted(concept):
            raise GenerationError(f"{self.name}: concept {concept.name!r} is not fitted in {self.concept_dir(concept)}; "
                                  "call fit() first")
        pipe = self.pipeline
        o = self.options
        if o.fine_tune and self._active != concept.name:
            from ._loading import quiet_libraries

            with quiet_libraries():
                self.activate_adapter(pipe, concept, self.concept_dir(concept))
            self._active = concept.name
        prompt, attributes = self.prompts_for(concept, seeds)
        common = {"prompt": prompt, "negative_prompt": o.negative_prompt,
                  "batch_size": o.generation_batch_size, "max_retries": o.max_retries}
        if o.strength >= 1:  # text-to-image
            items = generate_images(pipe, seeds, call_kwargs=self.generation_kwargs(), **common)
        else:
            from ._img2img import guided_images, img2img_pipeline

            if self._img2img is None:
                self._img2img = img2img_pipeline(pipe, self.pipeline_class)
            items = guided_images(self._img2img, concept, seeds, o, call_kwargs=self.generation_kwargs(), **common)
        for item in items:
            if attributes is not None:  # attribute prompts: each image's sampled attributes and prompt
                item.metadata.update(attributes=attributes[item.seed], prompt=prompt(item.seed))
            yield item

    def prompts_for(self, concept: Concept, seeds: Sequence[int]) -> tuple[Any, dict[int, dict[str, str]] | None]:
        """``(prompt, None)``, or with attribute prompts ``(seed -> prompt, {seed: attributes})`` (``_prompts``)."""
        from ._prompts import attribute_fields, sampled_attributes

        template = self.template_for(concept)
        if not attribute_fields(template, concept):
            return self.prompt_for(concept), None
        attributes = {int(s): sampled_attributes(template, concept, s) for s in seeds}
        return (lambda seed: self.prompt_for(concept, attributes[int(seed)])), attributes

    def is_fitted(self, concept: Concept) -> bool:
        """Fitted with the same options and, with attribute prompts, the same training captions."""
        if not super().is_fitted(concept):
            return False
        from ._prompts import captions_digest, training_captions

        return self.artifact(concept).get("captions_sha256") == captions_digest(training_captions(self, concept))

    def record(self, concept: Concept) -> dict[str, Any]:
        """Manifest fields of ``concept``'s images: base model, adapter hash and files, prompts."""
        artifact = self.artifact(concept)
        return {
            "base_model": self.options.base_model,
            "adapter_sha256": artifact["adapter_sha256"],
            "adapter_files": [str(self.concept_dir(concept) / f) for f in artifact["adapter_files"]],  # [] unfitted
            "prompt": self.prompt_for(concept),
            "negative_prompt": self.options.negative_prompt,
        }

    def close(self) -> None:
        """Drop the pipeline and free (GPU) memory."""
        self._pipe, self._img2img, self._active = None, None, None
        gc.collect()
        try:
            import torch
        except ImportError:
            return
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

"""Generation guided by real images: img2img (SDEdit) from training images, and Diff-Mix soft labels.

- :func:`img2img_pipeline` builds diffusers' own img2img pipeline of a loaded text-to-image
  pipeline (``StableDiffusionImg2ImgPipeline``, ``StableDiffusionXLImg2ImgPipeline``,
  ``StableDiffusion3Img2ImgPipeline``, ``FluxImg2ImgPipeline``) with ``from_pipe``: it shares the
  modules, so a LoRA or a textual-inversion token loaded into the base pipeline is used as is.
- :func:`source_pool` / :func:`choose_source`: the images a concept's images start from
  (``init_from=own-class``: its own training images; ``other-classes``: the other classes'
  training images, ``Concept.other_images``), and the one of a seed: a pure function of the
  seed, so the same seed gives the same source (and the same pixels) on every run and resume.
- :func:`source_image`: a source as a ``resolution`` square, cropped as training images are.
- :func:`soft_label`: Diff-Mix's label of a translated image, target weight ``strength**gamma``.

Importing this module does not import torch.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import DatasetError, GenerationError
from .._generator import Concept, GeneratedImage, derive_seed

__all__ = ["IMG2IMG_PIPELINES", "InitSource", "choose_source", "guided_images", "img2img_pipeline", "img2img_kwargs",
           "soft_label", "source_image", "source_pool"]

#: The diffusers img2img pipeline of each text-to-image pipeline class.
IMG2IMG_PIPELINES: dict[str, str] = {
    "StableDiffusionPipeline": "StableDiffusionImg2ImgPipeline",
    "StableDiffusionXLPipeline": "StableDiffusionXLImg2ImgPipeline",
    "StableDiffusion3Pipeline": "StableDiffusion3Img2ImgPipeline",
    "FluxPipeline": "FluxImg2ImgPipeline",
}


@dataclass(frozen=True)
class InitSource:
    """A source image: its path and the class it belongs to."""

    path: Path
    label: str

    def recorded_path(self, root: Path | None) -> str:
        """The path the manifest records: relative to the data ``root`` when under it, else as given."""
        if root is not None:
            try:
                return Path(os.path.relpath(self.path, root)).as_posix() if Path(
                    os.path.abspath(self.path)).is_relative_to(os.path.abspath(root)) else str(self.path)
            except ValueError:  # another drive (Windows)
                return str(self.path)
        return str(self.path)


def img2img_pipeline(pipe: Any, pipeline_class: str) -> Any:
    """diffusers' img2img pipeline sharing ``pipe``'s modules (``from_pipe``), progress bar off."""
    import diffusers

    name = IMG2IMG_PIPELINES.get(pipeline_class) or IMG2IMG_PIPELINES.get(type(pipe).__name__)
    if name is None:
        raise GenerationError(f"{pipeline_class} has no img2img pipeline in synthaug (known: "
                              f"{', '.join(IMG2IMG_PIPELINES)}); use strength=1.0")
    img2img = getattr(diffusers, name).from_pipe(pipe)
    if hasattr(pipe, "watermark") and hasattr(img2img, "watermark"):
        img2img.watermark = pipe.watermark  # SDXL: keep the base pipeline's choice (None: no watermark)
    img2img.set_progress_bar_config(disable=True)
    return img2img


def img2img_kwargs(img2img: Any, call_kwargs: Mapping[str, Any], strength: float) -> dict[str, Any]:
    """``call_kwargs`` that the img2img pipeline takes (SD1.x/SDXL take no height/width: the
    source's size is the output's), plus ``strength``."""
    accepted = inspect.signature(type(img2img).__call__).parameters
    return {**{k: v for k, v in call_kwargs.items() if k in accepted}, "strength": float(strength)}


def source_pool(concept: Concept, init_from: str) -> list[InitSource]:
    """The candidate sources of ``concept``'s images, in a fixed (sorted) order.

    ``own-class``: the concept's training images; ``other-classes``: every training image of
    the other classes (``concept.other_images``). An empty pool is a :class:`DatasetError`.
    """
    if init_from == "own-class":
        pool = [InitSource(p, concept.label) for p in sorted(concept.images)]
    else:
        pool = [InitSource(p, label) for label, paths in sorted(concept.other_images) if label != concept.label
                for p in sorted(paths)]
    if not pool:
        where = "training images" if init_from == "own-class" else "training images of other classes"
        raise DatasetError(f"concept {concept.name!r} has no {where} to start img2img from (init_from={init_from}); "
                           "use strength=1.0 for text-to-image")
    return pool


def choose_source(pool: list[InitSource], seed: int) -> InitSource:
    """The source of the image of ``seed``: uniform over ``pool``, a pure function of the seed."""
    return pool[derive_seed(int(seed), "init-image", "", 0) % len(pool)]


def source_image(path: Path, resolution: int, crop: str = "center") -> Any:
    """The RGB source image as a ``resolution`` square, cropped as training images are (``crop``)."""
    from PIL import Image

    from ._data import _square

    with Image.open(path) as image:
        return _square(image.convert("RGB"), resolution, crop)


def soft_label(target: str, source: str, strength: float, gamma: float) -> dict[str, float]:
    """Diff-Mix's label of an image of class ``source`` translated into ``target`` at ``strength``:
    ``{target: strength**gamma, source: 1 - strength**gamma}`` (``{target: 1.0}`` when they are equal)."""
    if target == source:
        return {target: 1.0}
    weight = float(strength) ** float(gamma)
    return {target: weight, source: 1.0 - weight}


def guided_images(img2img: Any, concept: Concept, seeds: Sequence[int], options: Any, *,
                  call_kwargs: Mapping[str, Any], **generate_kwargs: Any) -> Iterator[GeneratedImage]:
    """One img2img image per seed (see :func:`~synthaug.diffusion._generation.generate_images`), each from
    the source its seed chooses, at ``options.strength``.

    Each image's metadata records ``init_image`` (the source's path, relative to ``concept.root``),
    ``init_class`` and ``strength``; with ``soft_labels`` and ``init_from=other-classes`` also
    ``soft_label`` (:func:`soft_label`).
    """
    from ._generation import generate_images

    o = options
    pool = source_pool(concept, o.init_from)
    sources = {int(s): choose_source(pool, s) for s in seeds}

    def init_image(seed: int) -> Any:
        return source_image(sources[int(seed)].path, o.resolution, o.crop)

    kwargs = img2img_kwargs(img2img, call_kwargs, o.strength)
    for item in generate_images(img2img, seeds, call_kwargs=kwargs, init_image=init_image, **generate_kwargs):
        source = sources[item.seed]
        item.metadata.update(init_image=source.recorded_path(concept.root), init_class=source.label,
                             strength=float(o.strength))
        if o.soft_labels and o.init_from == "other-classes":
            item.metadata["soft_label"] = soft_label(concept.label, source.label, o.strength, o.soft_label_gamma)
        yield item

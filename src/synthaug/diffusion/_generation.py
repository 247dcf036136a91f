"""Seeded, batched image generation with defect detection and bounded regeneration.

Every image gets its own CPU ``torch.Generator`` seeded with its seed, so its starting noise
(and every sampler noise draw) is the same whatever batch it is generated in. Images that
come out black, NaN or flat are regenerated with a seed derived from the original one, at
most ``max_retries`` times; the :class:`~synthaug._generator.GeneratedImage` metadata says so.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from .._generator import GeneratedImage, derive_seed, iter_batches

__all__ = ["generate_images", "image_defect", "retry_seed", "to_pil"]

#: Images whose pixel standard deviation (in [0, 1] units) is below this are "flat".
FLAT_STD = 0.01
#: Images whose brightest value (in [0, 1] units) is below this are "black".
BLACK_MAX = 0.02


def image_defect(pixels: Any) -> str | None:
    """``"nan"``, ``"black"`` or ``"flat"`` for a defective float image in [0, 1], else None."""
    import numpy as np

    pixels = np.asarray(pixels)
    if not np.isfinite(pixels).all():
        return "nan"
    if float(pixels.max()) < BLACK_MAX:
        return "black"
    if float(pixels.std()) < FLAT_STD:
        return "flat"
    return None


def retry_seed(seed: int, attempt: int) -> int:
    """Seed of regeneration ``attempt`` (1, 2, …) of the image of ``seed``: a pure function."""
    return derive_seed(int(seed), "retry", "", int(attempt))


def to_pil(pixels: Any) -> Any:
    """A float HxWx3 image in [0, 1] as an RGB PIL image (rounded as diffusers does)."""
    import numpy as np
    from PIL import Image

    array = np.nan_to_num(np.asarray(pixels, dtype=np.float32), nan=0.0)
    return Image.fromarray((np.clip(array, 0.0, 1.0) * 255).round().astype("uint8"))


def cpu_generators(seeds: Sequence[int]) -> list[Any]:
    """One CPU ``torch.Generator`` per seed."""
    import torch

    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


def generate_images(
    pipe: Callable[..., Any],
    seeds: Sequence[int],
    *,
    prompt: str | Callable[[int], str],
    negative_prompt: str = "",
    batch_size: int = 1,
    max_retries: int = 3,
    call_kwargs: Mapping[str, Any] | None = None,
    init_image: Callable[[int], Any] | None = None,
) -> Iterator[GeneratedImage]:
    """Yield one :class:`GeneratedImage` per seed, in order, from a diffusers pipeline.

    ``call_kwargs`` go to every pipeline call (``num_inference_steps``, ``guidance_scale``,
    ``height``, ``width``…). A defective image is regenerated alone with
    :func:`retry_seed`; its metadata records ``retries``, ``generation_seed`` and, if it
    is still defective after ``max_retries``, ``defect``.

    ``init_image(seed)`` (img2img) gives the source image of the image of ``seed``; a
    regeneration keeps the source of the original seed and draws new noise. ``prompt`` may be
    a function of the seed (attribute prompts); a regeneration keeps the original seed's prompt.
    """
    import torch

    kwargs = dict(call_kwargs or {})

    def run(batch: Sequence[int], originals: Sequence[int]) -> Any:
        images = {"image": [init_image(s) for s in originals]} if init_image is not None else {}
        with torch.inference_mode():
            out = pipe(
                prompt=[prompt(s) for s in originals] if callable(prompt) else [prompt] * len(batch),
                negative_prompt=[negative_prompt] * len(batch) if negative_prompt else None,
                generator=cpu_generators(batch),
                output_type="np",
                **images,
                **kwargs,
            )
        return out.images

    for batch in iter_batches(list(seeds), batch_size):
        for seed, pixels in zip(batch, run(batch, batch)):
            used, attempt, defect = int(seed), 0, image_defect(pixels)
            while defect and attempt < max_retries:
                attempt += 1
                used = retry_seed(seed, attempt)
                pixels = run([used], [seed])[0]
                defect = image_defect(pixels)
            metadata: dict[str, Any] = {}
            if attempt:
                metadata.update(retries=attempt, generation_seed=used)
            if defect:
                metadata["defect"] = defect
                warnings.warn(f"image of seed {seed} is still {defect} after {attempt} regenerations", stacklevel=2)
            yield GeneratedImage(to_pil(pixels), int(seed), metadata)

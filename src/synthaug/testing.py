"""Test helpers for synthaug and its plugins.

- :func:`check_generator`: the conformance suite every generator plugin runs (like
  imbalanced-learn's ``check_estimator``). It fits and generates on small concepts and
  checks the contract of :mod:`synthaug.generator`.
- :func:`make_concepts`: small concepts of real-looking random images for tests.
- :func:`check_resume`: an interrupted and resumed fit equals an uninterrupted one
  (:class:`InterruptAfter` interrupts a fit).
- Tiny Stable Diffusion pipelines (SD1.5, SDXL, SD3.5, FLUX.1) written to disk (no download) live in
  :mod:`synthaug.diffusion.testing` and are re-exported here when diffusers is installed.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import InvalidOptionsError
from .generator import Concept, GeneratedImage, Generator, GeneratorOptions

__all__ = ["InterruptAfter", "check_generator", "check_resume", "make_concepts", "make_image_folder", "tiny_flux",
           "tiny_sd3", "tiny_sd15", "tiny_sdxl"]


def make_image_folder(root: str | Path, counts: Mapping[str, int], *, size: int = 32, seed: int = 0) -> Path:
    """Write ``root/<class>/<i>.png`` with ``counts[class]`` images of a class-specific colour pattern."""
    import numpy as np
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    for k, (label, n) in enumerate(sorted(counts.items())):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        base = np.array([(70 * (k + 1)) % 256, (150 + 40 * k) % 256, (40 * k + 90) % 256], dtype=float)
        for i in range(n):
            noise = rng.normal(0, 25, (size, size, 3))
            yy, xx = np.mgrid[0:size, 0:size]
            blob = (((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size / (3 + k % 3)) ** 2)[..., None] * 60.0
            pixels = np.clip(base + noise - blob, 0, 255).astype("uint8")
            Image.fromarray(pixels).save(folder / f"{label}_{i:03d}.png")
    return root


def make_concepts(root: str | Path, *, n_concepts: int = 2, n_images: int = 4, size: int = 32) -> list[Concept]:
    """Concepts ``class0``, ``class1`` … each with ``n_images`` images written under ``root``."""
    counts = {f"class{i}": n_images for i in range(n_concepts)}
    make_image_folder(root, counts, size=size)
    return [
        Concept(label, label, tuple(sorted((Path(root) / label).glob("*.png"))))
        for label in sorted(counts)
    ]


def tiny_sd15(path: str | Path, **kwargs: Any) -> Path:
    """Write a tiny random SD1.5 pipeline folder (no download); see :func:`synthaug.diffusion.testing.tiny_sd15`."""
    from .diffusion.testing import tiny_sd15 as build

    return build(path, **kwargs)


def tiny_sdxl(path: str | Path, **kwargs: Any) -> Path:
    """Write a tiny random SDXL pipeline folder (no download); see :func:`synthaug.diffusion.testing.tiny_sdxl`."""
    from .diffusion.testing import tiny_sdxl as build

    return build(path, **kwargs)


def tiny_sd3(path: str | Path, **kwargs: Any) -> Path:
    """Write a tiny random SD3.5 pipeline folder (no download); see :func:`synthaug.diffusion.testing.tiny_sd3`."""
    from .diffusion.testing import tiny_sd3 as build

    return build(path, **kwargs)


def tiny_flux(path: str | Path, **kwargs: Any) -> Path:
    """Write a tiny random FLUX.1 pipeline folder (no download); see :func:`synthaug.diffusion.testing.tiny_flux`."""
    from .diffusion.testing import tiny_flux as build

    return build(path, **kwargs)


def _as_image(item: Any):
    return item.image if isinstance(item, GeneratedImage) else item


def _pixels(item: Any) -> bytes:
    image = _as_image(item)
    return image.convert("RGB").tobytes() + repr(image.size).encode()


def check_generator(
    generator_cls: type[Generator],
    options: Mapping[str, Any] | None = None,
    *,
    concepts: Sequence[Concept] | None = None,
    work_dir: str | Path | None = None,
    seeds: Sequence[int] = (11, 22, 33),
) -> None:
    """Check that ``generator_cls`` honours the generator contract; raise AssertionError if not.

    ``options`` should make fitting quick (e.g. a tiny base model and a few steps).
    Checks: a kebab-case name; an ``Options`` model that forbids unknown keys and describes
    every field; fit then generate yields one RGB PIL image per seed; the same seed gives the
    same image alone, in a batch, and in another order; a second ``fit`` on the same
    ``work_dir`` by a fresh instance reuses the artifacts and reproduces the images; and
    :meth:`~Generator.describe` is JSON-serialisable.
    """
    import re

    options = dict(options or {})
    name = generator_cls.name
    assert isinstance(name, str) and re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name), f"name {name!r} is not kebab-case"
    assert issubclass(generator_cls.Options, GeneratorOptions), "Options must subclass synthaug.GeneratorOptions"
    undocumented = [k for k, f in generator_cls.Options.model_fields.items() if not f.description]
    assert not undocumented, f"{name}: options without a description: {undocumented}"
    try:
        generator_cls({**options, "definitely_not_an_option": 1})
    except InvalidOptionsError as exc:
        assert "definitely_not_an_option" in str(exc), f"{name}: unknown-option error does not name the key: {exc}"
    else:
        raise AssertionError(f"{name}: an unknown option key was accepted")

    with tempfile.TemporaryDirectory(prefix="synthaug-check-") as tmp:
        tmp_path = Path(tmp)
        if concepts is None:
            concepts = make_concepts(tmp_path / "data")
        work = Path(work_dir) if work_dir is not None else tmp_path / "work"
        work.mkdir(parents=True, exist_ok=True)

        gen = generator_cls(options)
        json.dumps(gen.describe())
        gen.fit(list(concepts), work)
        first = concepts[0]
        batch = list(gen.generate(first, list(seeds)))
        assert len(batch) == len(seeds), f"{name}: {len(batch)} images for {len(seeds)} seeds"
        for item in batch:
            image = _as_image(item)
            assert hasattr(image, "save") and image.mode in ("RGB", "RGBA", "L"), f"{name}: not a PIL image: {item!r}"
            assert image.width > 0 and image.height > 0
        alone = list(gen.generate(first, [seeds[1]]))
        assert _pixels(alone[0]) == _pixels(batch[1]), f"{name}: seed {seeds[1]} differs alone vs in a batch"
        reordered = list(gen.generate(first, list(reversed(seeds))))
        assert [_pixels(x) for x in reordered] == [_pixels(x) for x in reversed(batch)], (
            f"{name}: images depend on the order of seeds"
        )
        if len(seeds) > 1:
            assert _pixels(batch[0]) != _pixels(batch[1]), f"{name}: different seeds gave identical images"
        for concept in concepts[1:]:
            others = list(gen.generate(concept, [seeds[0]]))
            assert len(others) == 1
        gen.close()

        fresh = generator_cls(options)
        fresh.fit(list(concepts), work)  # must reuse the artifacts in work
        again = list(fresh.generate(first, [seeds[0]]))
        assert _pixels(again[0]) == _pixels(batch[0]), f"{name}: a fresh instance reusing work_dir gives other images"
        fresh.close()


class InterruptAfter:
    """A progress that raises ``KeyboardInterrupt`` once a task reaches ``steps`` (simulates a killed run)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def task(self, description: str, total: int | None = None, *, completed: int = 0) -> Any:
        stop, state = self.steps, {"done": completed}

        class _Task:
            def advance(self, n: int = 1, *, metrics: Mapping[str, float] | None = None) -> None:
                state["done"] += n
                if state["done"] >= stop:
                    raise KeyboardInterrupt(f"interrupted after {stop} steps")

            def close(self) -> None:
                pass

        return _Task()

    def log(self, message: str) -> None:
        return None


def check_resume(
    generator_cls: type[Generator],
    options: Mapping[str, Any],
    concept: Concept,
    work_dir: str | Path,
    *,
    interrupt_at: int,
    checkpoint_step: int,
) -> None:
    """Check that a fit interrupted after ``interrupt_at`` steps and resumed from its checkpoint at
    ``checkpoint_step`` gives the same adapter (``adapter_sha256``) as an uninterrupted fit.

    ``options`` must save checkpoints (``checkpoint_every``) and train past ``interrupt_at``
    (``max_train_steps``). Raises AssertionError if not.
    """
    work = Path(work_dir)
    straight = generator_cls(options)
    straight.fit([concept], work / "straight")
    try:
        generator_cls(options).fit([concept], work / "resumed", progress=InterruptAfter(interrupt_at))
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError(f"{generator_cls.name}: training was not interrupted at step {interrupt_at}")
    resumed = generator_cls(options)
    resumed.fit([concept], work / "resumed")
    training = resumed.artifact(concept)["training"]
    assert training["resumed_from_step"] == checkpoint_step, training
    assert training["steps"] == straight.artifact(concept)["training"]["steps"], training
    assert resumed.artifact(concept)["adapter_sha256"] == straight.artifact(concept)["adapter_sha256"], (
        f"{generator_cls.name}: the resumed fit differs from the uninterrupted one"
    )

"""Test helpers for synthaug and its plugins.

- :func:`check_generator`: the conformance suite every generator plugin runs (like
  imbalanced-learn's ``check_estimator``). It fits and generates on small concepts, runs
  every named check of the contract of :mod:`synthaug._generator` and reports every failure;
  ``skip=`` and ``expected_failures=`` opt out of named checks.
- :func:`parametrize_with_checks`: one pytest test per generator and named check (like
  imbalanced-learn's ``parametrize_with_checks``); the checks themselves are importable by
  name (``check_batch_invariance`` …) and listed in :data:`CHECKS`.
- :func:`make_concepts`: small concepts of real-looking random images for tests.
- :func:`check_resume`: an interrupted and resumed fit equals an uninterrupted one
  (:class:`InterruptAfter` interrupts a fit).
- Tiny Stable Diffusion pipelines (SD1.5, SDXL, SD3.5, FLUX.1) written to disk (no download) live in
  :mod:`synthaug.diffusion._testing` and are re-exported here when diffusers is installed.
- :func:`diffusion_plugin_fixtures`: the session fixtures a diffusion plugin's tests share (a
  tiny model, quick options, small concepts, a fitted generator), for its ``conftest.py``.
- :func:`check_img2img_matches_diffusers`: a diffusion generator's img2img image (``strength`` < 1)
  equals, pixel for pixel, a direct call of diffusers' img2img pipeline with the same adapter.
- :func:`check_balance_cli`: ``synthaug balance`` with a generator, end to end, in this process,
  checked against its plan; returns the manifest records for the plugin's own checks.

This module is a test-support facade over the whole package (it may use the command line);
nothing in synthaug imports it.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ._conformance import *  # noqa: F403 - the checks and the test data builders, re-exported
from ._conformance import __all__ as _conformance_names
from ._conformance import make_concepts
from ._generator import Concept, Generator
from ._lazy import lazy_attributes

#: Tiny random diffusion models and tokenizers written by :mod:`synthaug.diffusion._testing`
#: (diffusers and transformers load only when one is used).
_TINY_MODELS = ("tiny_clip_tokenizer", "tiny_flux", "tiny_sd3", "tiny_sd15", "tiny_sdxl", "tiny_t5_tokenizer", "tiny_vae")

__all__ = [*_conformance_names, "InterruptAfter", "check_balance_cli", "check_img2img_matches_diffusers",
           "check_resume", "diffusion_plugin_fixtures", *_TINY_MODELS]


__getattr__, _ = lazy_attributes(__name__, dict.fromkeys(_TINY_MODELS, ".diffusion._testing"), anchor=__package__)


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


#: Options of :func:`diffusion_plugin_fixtures`'s ``quick``: a fast CPU run on a tiny model.
QUICK_OPTIONS: dict[str, Any] = {"resolution": 32, "max_train_steps": 4, "learning_rate": 3e-2, "num_inference_steps": 3,
                                 "validation_images": 0, "checkpoint_every": 0}


def diffusion_plugin_fixtures(generator: str, tiny_model: Callable[[Path], Path], *,
                              fitted_options: Mapping[str, Any] | None = None, **quick_options: Any) -> tuple[Any, ...]:
    """The session fixtures shared by a diffusion generator plugin's tests, for its ``conftest.py``::

        tiny_model, quick, concepts, fitted = diffusion_plugin_fixtures(
            "synthaug_lora_sd3:LoraSD3Generator", tiny_sd3, dtype="float32", max_sequence_length=16)

    - ``tiny_model``: the folder ``tiny_model(path)`` writes, once (the tests skip without diffusers);
    - ``quick``: ``quick(**extra)``, generator options for a fast CPU run on it:
      :data:`QUICK_OPTIONS`, then ``quick_options``, then ``extra``;
    - ``concepts``: two concepts of three 40 px images (:func:`make_concepts`);
    - ``fitted``: the generator (``"module:Class"``) fitted on the first concept for 30 steps
      with ``fitted_options``, closed at the end of the session.
    """
    import pytest

    @pytest.fixture(scope="session", name="tiny_model")
    def tiny_model_fixture(tmp_path_factory: Any) -> Path:
        pytest.importorskip("diffusers")
        import torch

        torch.set_num_threads(1)
        return tiny_model(tmp_path_factory.mktemp("models") / "model")

    @pytest.fixture(scope="session", name="quick")
    def quick_fixture(tiny_model: Path) -> Callable[..., dict[str, Any]]:
        def options(**extra: Any) -> dict[str, Any]:
            return {"base_model": str(tiny_model), **QUICK_OPTIONS, **quick_options, **extra}

        return options

    @pytest.fixture(scope="session", name="concepts")
    def concepts_fixture(tmp_path_factory: Any) -> list[Concept]:
        return make_concepts(tmp_path_factory.mktemp("data"), n_concepts=2, n_images=3, size=40)

    @pytest.fixture(scope="session", name="fitted")
    def fitted_fixture(quick: Callable[..., dict[str, Any]], concepts: list[Concept],
                       tmp_path_factory: Any) -> Iterator[Generator]:
        module, _, name = generator.partition(":")
        cls = getattr(importlib.import_module(module), name)
        gen = cls(quick(max_train_steps=30, **(fitted_options or {})))
        gen.fit(concepts[:1], tmp_path_factory.mktemp("work"))
        yield gen
        gen.close()

    return tiny_model_fixture, quick_fixture, concepts_fixture, fitted_fixture


def check_balance_cli(data: str | Path, out: str | Path, generator: str, options: Mapping[str, Any],
                      targets: Mapping[str, int]) -> list[dict[str, Any]]:
    """Run ``synthaug balance DATA --out OUT --generator NAME -o KEY=VALUE… --target CLASS=N…``
    in this process and check it against its own plan: exit code 0, exactly the planned number
    of images for each class ``targets`` raises (and none for any other), and every manifest
    record names the generator, an integer seed, an existing image and the ``base_model`` of
    ``options`` (when given). Returns the manifest records for the plugin's own checks.
    """
    from ._cli import main

    argv = ["balance", str(data), "--out", str(out), "--generator", generator]
    for key, value in options.items():
        argv += ["-o", f"{key}={value}"]
    for label, count in targets.items():
        argv += ["--target", f"{label}={count}"]
    code = main(argv)
    assert code == 0, f"synthaug {' '.join(argv)} exited {code}"
    out = Path(out)
    plan = json.loads((out / "plan.json").read_text())
    planned = {label: c["synthetic"] for label, c in plan["classes"].items() if c["synthetic"]}
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(planned) == sorted(targets), (planned, targets)
    written = {label: sum(r["class"] == label for r in records) for label in planned}
    assert planned == written and sum(planned.values()) == len(records) > 0, (planned, written)
    for record in records:
        assert record["generator"] == generator and isinstance(record["seed"], int), record
        assert (out / record["file"]).is_file(), record["file"]
        if "base_model" in options:
            assert record["base_model"] == str(options["base_model"]), record
    return records


def check_img2img_matches_diffusers(fitted: Generator, concept: Concept, *, img2img_class: str,
                                    load_adapter: Callable[[Any, Path], None], strength: float = 0.6,
                                    seeds: tuple[int, ...] = (3, 11), load_kwargs: Mapping[str, Any] | None = None,
                                    call_kwargs: Mapping[str, Any] | None = None) -> list[Any]:
    """Check that ``fitted``'s images at ``strength`` equal diffusers' own img2img pipeline's, pixel for pixel.

    ``fitted`` is a diffusion generator fitted on ``concept`` (at any strength: strength is
    fit-neutral). A second instance with ``strength`` generates from the same artifacts; then
    ``diffusers.<img2img_class>.from_pretrained(base_model, **load_kwargs)``, with the adapter
    loaded by ``load_adapter(pipe, concept_folder)``, is called for each seed with the source the
    record names (squared as training images are), the recorded prompt, ``strength`` and a CPU
    generator seeded with the seed (``call_kwargs`` added). Also checks that the source is a
    training image of ``concept`` and that the same seed gives the same image again.
    Returns synthaug's :class:`~synthaug.GeneratedImage` items.
    """
    import diffusers
    import numpy as np
    import torch
    from PIL import Image

    o = fitted.options
    gen = type(fitted)(fitted.options.model_dump(exclude_unset=True), strength=strength)
    gen.work_dir = fitted.work_dir
    items = list(gen.generate(concept, list(seeds)))
    again = list(gen.generate(concept, [seeds[0]]))
    record = gen.record(concept)
    gen.close()
    assert np.array_equal(np.asarray(again[0].image), np.asarray(items[0].image)), "same seed, different image"
    pipe = getattr(diffusers, img2img_class).from_pretrained(o.base_model, dtype=torch.float32,
                                                             **dict(load_kwargs or {}))
    pipe.set_progress_bar_config(disable=True)
    load_adapter(pipe, fitted.concept_dir(concept))
    for item in items:
        meta = item.metadata
        assert meta["strength"] == strength and Path(meta["init_image"]) in set(concept.images), meta
        with Image.open(meta["init_image"]) as image:
            source = image.convert("RGB").resize((o.resolution, o.resolution), Image.Resampling.BICUBIC)
        expected = pipe(prompt=record["prompt"], negative_prompt=o.negative_prompt or None, image=source,
                        strength=strength, num_inference_steps=o.num_inference_steps,
                        guidance_scale=o.guidance_scale, generator=torch.Generator("cpu").manual_seed(item.seed),
                        **dict(call_kwargs or {})).images[0]
        assert np.array_equal(np.asarray(expected), np.asarray(item.image)), (
            f"{fitted.name}: img2img image of seed {item.seed} differs from diffusers' {img2img_class}")
    return items

"""Test helpers for synthaug and its plugins.

- :func:`check_generator`: the conformance suite every generator plugin runs (like
  imbalanced-learn's ``check_estimator``). It fits and generates on small concepts, runs
  every named check of the contract of :mod:`synthaug.generator` and reports every failure;
  ``skip=`` and ``expected_failures=`` opt out of named checks.
- :func:`parametrize_with_checks`: one pytest test per generator and named check (like
  imbalanced-learn's ``parametrize_with_checks``); the checks themselves are importable by
  name (``check_batch_invariance`` …) and listed in :data:`CHECKS`.
- :func:`make_concepts`: small concepts of real-looking random images for tests.
- :func:`check_resume`: an interrupted and resumed fit equals an uninterrupted one
  (:class:`InterruptAfter` interrupts a fit).
- Tiny Stable Diffusion pipelines (SD1.5, SDXL, SD3.5, FLUX.1) written to disk (no download) live in
  :mod:`synthaug.diffusion.testing` and are re-exported here when diffusers is installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .conformance import *  # noqa: F403 - the checks and the test data builders, re-exported
from .conformance import __all__ as _conformance_names

from .generator import Concept, Generator

__all__ = [*_conformance_names, "InterruptAfter", "check_resume", "tiny_flux", "tiny_sd3", "tiny_sd15", "tiny_sdxl"]


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

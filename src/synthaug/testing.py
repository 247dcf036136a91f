"""Test helpers for synthaug and its plugins.

- :func:`check_generator`: the conformance suite every generator plugin runs (like
  imbalanced-learn's ``check_estimator``). It fits and generates on small concepts, runs
  every named check of the contract of :mod:`synthaug.generator` and reports every failure;
  ``skip=`` and ``expected_failures=`` opt out of named checks.
- :func:`parametrize_with_checks`: one pytest test per generator and named check (like
  imbalanced-learn's ``parametrize_with_checks``); the checks themselves are importable by
  name (``check_batch_invariance`` …) and listed in :data:`CHECKS`.
- :func:`make_concepts`: small concepts of real-looking random images for tests.
- Tiny Stable Diffusion pipelines written to disk (no download) live in
  :mod:`synthaug.diffusion.testing` and are re-exported here when diffusers is installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .conformance import *  # noqa: F403 - the checks and the test data builders, re-exported
from .conformance import __all__ as _conformance_names

__all__ = [*_conformance_names, "tiny_sd15", "tiny_sdxl"]


def tiny_sd15(path: str | Path, **kwargs: Any) -> Path:
    """Write a tiny random SD1.5 pipeline folder (no download); see :func:`synthaug.diffusion.testing.tiny_sd15`."""
    from .diffusion.testing import tiny_sd15 as build

    return build(path, **kwargs)


def tiny_sdxl(path: str | Path, **kwargs: Any) -> Path:
    """Write a tiny random SDXL pipeline folder (no download); see :func:`synthaug.diffusion.testing.tiny_sdxl`."""
    from .diffusion.testing import tiny_sdxl as build

    return build(path, **kwargs)

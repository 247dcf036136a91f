"""Fixtures shared by every test of the repository: ``tests/`` and each ``plugins/*/tests``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parent
SKIN_LESIONS = Path(os.environ.get("SYNTHAUG_SKIN_LESIONS", REPO_ROOT.parent / "shared" / "data" / "skin-lesions"))


@pytest.fixture(scope="session")
def skin_lesions() -> Path:
    """Path of ``../shared/data/skin-lesions`` (read-only); skips the test when it is absent."""
    if not (SKIN_LESIONS / "labels.csv").is_file():
        pytest.skip(f"real skin-lesion images not found at {SKIN_LESIONS} (set SYNTHAUG_SKIN_LESIONS)")
    return SKIN_LESIONS


@pytest.fixture(scope="session")
def tiny_sd15_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random SD1.5 pipeline saved on disk once per test session (no download)."""
    pytest.importorskip("diffusers")
    from synthaug.testing import tiny_sd15

    return tiny_sd15(tmp_path_factory.mktemp("models") / "sd15")

"""Shared fixtures: the real skin-lesion development set, tiny image folders, thread limits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SKIN_LESIONS = Path(os.environ.get("SYNTHAUG_SKIN_LESIONS", REPO_ROOT.parent / "shared" / "data" / "skin-lesions"))


@pytest.fixture(scope="session")
def skin_lesions() -> Path:
    """Path of ``../shared/data/skin-lesions`` (read-only); skips the test when it is absent."""
    if not (SKIN_LESIONS / "labels.csv").is_file():
        pytest.skip(f"real skin-lesion images not found at {SKIN_LESIONS} (set SYNTHAUG_SKIN_LESIONS)")
    return SKIN_LESIONS


@pytest.fixture()
def tiny_folder(tmp_path: Path) -> Path:
    """A small imbalanced class-folder dataset: a=12, b=6, c=3 images of 32x32 px."""
    from synthaug.testing import make_image_folder

    return make_image_folder(tmp_path / "data", {"a": 12, "b": 6, "c": 3})

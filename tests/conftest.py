"""Fixtures of the core tests (the repository-wide ones are in ../conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe caches (synthaug._probe) go to a per-test folder, not the user's ~/.cache."""
    monkeypatch.setenv("SYNTHAUG_CACHE_DIR", str(tmp_path_factory.mktemp("synthaug-cache")))


@pytest.fixture()
def tiny_folder(tmp_path: Path) -> Path:
    """A small imbalanced class-folder dataset: a=12, b=6, c=3 images of 32x32 px."""
    from synthaug.testing import make_image_folder

    return make_image_folder(tmp_path / "data", {"a": 12, "b": 6, "c": 3})

"""Fitted artifacts on disk: ``artifact.json`` written crash-safely and read back, and file
digests (what a generator records to say which adapter made an image)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._atomic import atomic_write_json

__all__ = ["ARTIFACT_FILE", "file_digest", "read_artifact", "write_artifact"]

#: The record a generator writes beside each fitted artifact (options, versions, training set).
ARTIFACT_FILE = "artifact.json"


def file_digest(*paths: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of the bytes of ``paths`` in order: the content hash of an artifact."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def write_artifact(folder: str | os.PathLike[str], info: Mapping[str, Any]) -> Path:
    """Write ``folder/artifact.json`` atomically (a complete file or none, flushed to disk); return its path.

    Generators write it last, after every weight file, so its presence means "fitted".
    """
    path = Path(folder) / ARTIFACT_FILE
    atomic_write_json(path, dict(info))  # flushed to disk and renamed into place
    return path


def read_artifact(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``artifact.json`` of ``folder``, or ``None`` when it is missing or unreadable."""
    try:
        info = json.loads((Path(folder) / ARTIFACT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None

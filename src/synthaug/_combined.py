"""One class tree of real and synthetic images, for folder readers that number classes by folder.

``torchvision.datasets.ImageFolder`` and ``keras.utils.image_dataset_from_directory`` give
class ``i`` to the ``i``-th folder name in sorted order. Reading the real folder and the
synthetic folder separately and concatenating the two therefore mislabels images whenever
one side lacks a class folder. :func:`write_combined` writes ``DIR/<class>/`` for every class,
with the real images and the synthetic ones as links (or copies), so any reader sees one
consistent numbering with no extra arguments.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._atomic import atomic_write_bytes
from ._errors import CorruptRecordError, OutputConflictError
from ._outdir import LOCK_FILE, LOCK_INFO_FILE, check_output_location
from ._store import _TMP_RE, Confiner

__all__ = ["COMBINED_MARKER", "write_combined"]

#: Hidden file listing what :func:`write_combined` wrote (so a rerun can replace it).
COMBINED_MARKER = ".synthaug-combined.json"


def _entry_name(sample: Any, root: Path | None, used: set[str]) -> str:
    kind = "synthetic" if sample.is_synthetic else "real"
    stem = sample.path.name
    if root is not None and not sample.is_synthetic:
        try:
            stem = "__".join(sample.path.relative_to(root / sample.label).parts)
        except ValueError:
            pass
    name = f"{kind}__{stem}"
    if name.casefold() in used:
        digest = hashlib.sha256(str(sample.path).encode()).hexdigest()[:8]
        name = f"{kind}__{Path(stem).stem}__{digest}{Path(stem).suffix}"
    used.add(name.casefold())
    return name


def _clear_previous(out: Path) -> None:
    """Remove what an earlier (possibly interrupted) call listed in the marker; refuse a folder
    holding anything else. Every listed path is confined to ``out`` before anything is removed."""
    marker = out / COMBINED_MARKER
    if not out.is_dir():
        return
    if marker.is_file():
        try:
            listed = json.loads(marker.read_text()).get("files", [])
        except (ValueError, AttributeError) as exc:
            raise CorruptRecordError(f"{marker} is not a synthaug marker ({exc}); nothing was deleted, "
                                     "choose a new --combined folder") from exc
        confiner = Confiner(out, links_are_entries=True)
        for path in confiner.resolve_all([{"file": f} for f in listed], listed_in=marker):
            if path.is_symlink() or path.is_file():
                path.unlink()
        marker.unlink()
        for folder in out.iterdir():
            if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
                folder.rmdir()
    left = [p.name for p in out.iterdir() if p.name not in (LOCK_FILE, LOCK_INFO_FILE) and not _TMP_RE.match(p.name)]
    if left:
        raise OutputConflictError(
            f"combined folder {str(out)!r} is not empty and was not written by synthaug "
            f"({', '.join(sorted(left)[:5])}); choose a new folder"
        )


def write_combined(
    augmented: Any, out_dir: str | os.PathLike[str], *, inputs: Sequence[Any] = (), copy: bool = False
) -> Path:
    """Write ``out_dir/<class>/`` for every class of ``augmented`` (an AugmentedDataset): its
    real training images as ``real__<file>`` and its synthetic ones as ``synthetic__<id>.png``,
    as symbolic links (copies with ``copy``). Returns ``out_dir``.

    ``out_dir`` must lie outside ``inputs`` (the data and the synthetic folder); a folder a
    previous call wrote is replaced, any other non-empty folder is refused. The marker listing
    every entry is written before the first one, so a call killed part-way is replaced by the
    next call like a finished one.
    """
    out = Path(out_dir)
    check_output_location(out, inputs, option="--combined")
    _clear_previous(out)
    used: dict[str, set[str]] = {}
    entries = []
    for sample in augmented.samples:
        name = _entry_name(sample, augmented.real.root, used.setdefault(sample.label, set()))
        entries.append((sample, f"{sample.label}/{name}"))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / COMBINED_MARKER, json.dumps({"files": [rel for _, rel in entries]}).encode())
    for label in augmented.classes:
        (out / label).mkdir(parents=True, exist_ok=True)
    for sample, rel in entries:
        target = out / rel
        source = os.path.abspath(sample.path)
        if copy:
            shutil.copy2(source, target)
        else:
            try:
                os.symlink(source, target)
            except OSError:
                shutil.copy2(source, target)
    return out

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

from ._errors import OutputConflictError
from ._outdir import LOCK_FILE, LOCK_INFO_FILE, check_output_location

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
    marker = out / COMBINED_MARKER
    if not out.is_dir():
        return
    if marker.is_file():
        for rel in json.loads(marker.read_text()).get("files", []):
            (out / rel).unlink(missing_ok=True)
        marker.unlink()
        for folder in out.iterdir():
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    left = [p.name for p in out.iterdir() if p.name not in (LOCK_FILE, LOCK_INFO_FILE)]
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
    previous call wrote is replaced, any other non-empty folder is refused.
    """
    out = Path(out_dir)
    check_output_location(out, inputs, option="--combined")
    _clear_previous(out)
    written: list[str] = []
    used: dict[str, set[str]] = {}
    for label in augmented.classes:
        (out / label).mkdir(parents=True, exist_ok=True)
    for sample in augmented.samples:
        name = _entry_name(sample, augmented.real.root, used.setdefault(sample.label, set()))
        target = out / sample.label / name
        source = os.path.abspath(sample.path)
        if copy:
            shutil.copy2(source, target)
        else:
            try:
                os.symlink(source, target)
            except OSError:
                shutil.copy2(source, target)
        written.append(f"{sample.label}/{name}")
    (out / COMBINED_MARKER).write_text(json.dumps({"files": written}))
    return out

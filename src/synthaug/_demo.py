"""The embedded demo: balance an imbalanced copy of scikit-learn's handwritten digits.

scikit-learn ships the UCI digits (1,797 real 8x8 scans of handwriting) inside its wheel,
so the demo needs no download and no GPU. It keeps every image of digits 0-6, a few of
7, 8 and 9 (so those become rare classes), writes them as 32x32 PNGs, and fills the rare
classes up with the ``classic`` generator. Digits must not be flipped or turned upside
down (a flipped 6 is not a 6), so the demo narrows the generator's options.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._optional import require

__all__ = ["DEMO_KEEP", "DEMO_MARKER", "DEMO_OPTIONS", "check_demo_folder", "make_digits_folder",
           "real_vs_synthetic_grid", "run_demo"]

#: Hidden file that marks a folder as the demo's own (a rerun may write there again).
DEMO_MARKER = ".synthaug-demo"
_DEMO_ENTRIES = frozenset({"data", "synthetic", "synthetic.synthaug", "grid.png", DEMO_MARKER,
                           ".synthaug.lock", ".synthaug.lock.json"})

#: Images kept per rare digit; the other digits keep all of theirs (~180 each).
DEMO_KEEP = {"7": 36, "8": 18, "9": 9}
#: classic-generator options that keep digits readable.
DEMO_OPTIONS: dict[str, Any] = {"hflip": False, "vflip": False, "rotate90": False, "max_rotation": 12.0,
                                "crop_scale": (0.8, 1.0), "hue": 0.0, "saturation": 0.0}


def make_digits_folder(root: str | os.PathLike[str], *, size: int = 32) -> Path:
    """Write the imbalanced digits as ``root/<digit>/<index>.png`` (skips work already done)."""
    from PIL import Image

    datasets = require("sklearn.datasets", purpose="the demo's digits data").load_digits()
    root = Path(root)
    kept: dict[str, int] = {}
    for index, (pixels, target) in enumerate(zip(datasets.images, datasets.target)):
        label = str(int(target))
        if kept.get(label, 0) >= DEMO_KEEP.get(label, 10**9):
            continue
        kept[label] = kept.get(label, 0) + 1
        path = root / label / f"digit-{index:04d}.png"
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        grey = Image.fromarray((255 - pixels * 255 / 16).astype("uint8"), mode="L")
        tmp = path.with_name(f".{path.name}.tmp")
        grey.resize((size, size), Image.Resampling.BICUBIC).save(tmp, format="PNG")
        os.replace(tmp, path)
    return root


def real_vs_synthetic_grid(result, path: str | os.PathLike[str], *, per_class: int = 8, cell: int = 48) -> Path:
    """Save a PNG grid: per class, ``per_class`` real images then ``per_class`` synthetic ones."""
    from PIL import Image, ImageDraw

    classes = result.classes
    real = {c: [s for s in result.real if s.label == c][:per_class] for c in classes}
    synth = {c: [s for s in result.synthetic if s.label == c][:per_class] for c in classes}
    label_w = 40
    grid = Image.new("RGB", (label_w + cell * per_class * 2 + 8, cell * len(classes)), "white")
    draw = ImageDraw.Draw(grid)
    for row, c in enumerate(classes):
        draw.text((4, row * cell + cell // 3), c, fill="black")
        for col, s in enumerate(real[c]):
            grid.paste(s.load().resize((cell, cell)), (label_w + col * cell, row * cell))
        for col, s in enumerate(synth[c]):
            grid.paste(s.load().resize((cell, cell)), (label_w + 8 + (per_class + col) * cell, row * cell))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return path


def _looks_like_demo(out: Path) -> bool:
    """An older demo folder (before the marker): only demo entries, digit classes of demo files."""
    if not {p.name for p in out.iterdir()} <= _DEMO_ENTRIES:
        return False
    data = out / "data"
    if not data.is_dir():
        return True
    for folder in data.iterdir():
        if folder.name not in DEMO_KEEP and folder.name not in "0123456":
            return False
        if not folder.is_dir() or any(not p.name.startswith(("digit-", ".digit-")) for p in folder.iterdir()):
            return False
    return True


def check_demo_folder(out_dir: str | os.PathLike[str]) -> None:
    """Raise :class:`~synthaug._errors.OutputConflictError` unless ``out_dir`` is new, empty, or
    a demo folder: the demo writes ``data/``, ``synthetic/`` and ``grid.png`` there and must never
    add digit classes to a project's ``data/`` or replace its ``grid.png``."""
    from ._errors import OutputConflictError

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputConflictError(f"demo --out {str(out)!r} is an existing file; give a new folder")
    if not out.is_dir() or not any(out.iterdir()) or (out / DEMO_MARKER).is_file() or _looks_like_demo(out):
        return
    shown = ", ".join(sorted(p.name for p in out.iterdir())[:5])
    raise OutputConflictError(
        f"demo --out {str(out)!r} is an existing folder that the demo did not write ({shown}); the demo would add "
        "digit classes to its data/ and replace grid.png, so give a new or empty folder"
    )


def run_demo(out_dir: str | os.PathLike[str] = "demo-output", *, progress=None, seed: int = 0,
             on_plan: Callable[[Any], None] | None = None):
    """Build the digits data under ``out_dir/data``, balance it into ``out_dir/synthetic``,
    and save ``out_dir/grid.png``. ``on_plan(plan)`` is called before any image is generated.
    Returns ``(plan, AugmentedDataset, grid_path)``."""
    from ._augmenter import SyntheticAugmenter
    from ._policy import MinorityUpsampling

    out = Path(out_dir)
    check_demo_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARKER).write_text("written by `synthaug demo`; the demo may write here again\n")
    data = make_digits_folder(out / "data")
    augmenter = SyntheticAugmenter(
        "classic",
        MinorityUpsampling("not majority"),
        generator_options=DEMO_OPTIONS,
        out_dir=out / "synthetic",
        random_state=seed,
        progress=progress,
    )
    plan = augmenter.plan(data)
    if on_plan is not None:
        on_plan(plan)
    result = augmenter.fit_resample(data)
    grid = real_vs_synthetic_grid(result, out / "grid.png")
    return plan, result, grid

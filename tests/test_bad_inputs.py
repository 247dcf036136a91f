"""A catalogue of bad inputs, each run the way a user would run it.

Every case asserts four things: the exit code (CLI, run in-process through ``synthaug._cli.main``)
or the exception type (Python API); a substring of the message; that the input tree's hash
is unchanged; and that every file OUT held before is still there, byte for byte (unless the
case overwrites on purpose: ``keeps_out=False``, with its own check). Signals (SIGINT,
SIGKILL) and the warning filter need a real process and run as subprocesses at the end.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import types
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from synthaug.testing import make_image_folder

from . import slow_cli

# -- trees and snapshots ------------------------------------------------------------------


def tree_hash(root: Path) -> str:
    """Hash of names, file bytes and link targets under ``root`` (links are not followed)."""
    h = hashlib.sha256()
    if not os.path.lexists(root):
        return "absent"
    if root.is_file():
        return hashlib.sha256(root.read_bytes()).hexdigest()
    for dirpath, dirnames, _ in os.walk(root):
        dirnames.sort()
        for name in sorted(os.listdir(dirpath)):
            path = os.path.join(dirpath, name)
            h.update(os.path.relpath(path, root).encode())
            if os.path.islink(path):
                h.update(b"L" + os.readlink(path).encode())
            elif os.path.isfile(path):
                h.update(b"F" + Path(path).read_bytes())
    return h.hexdigest()


def snapshot(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every regular file under ``root`` (but the lock's own files)."""
    if not root.is_dir():
        return {}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink() and not p.name.startswith(".synthaug.lock")}


# -- input builders --------------------------------------------------------------------------


def png_bytes(image: Image.Image, fmt: str = "PNG", **kwargs: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def bomb_png(side: int = 20_000) -> bytes:
    """A valid PNG header announcing ``side`` x ``side`` pixels (400 megapixels), no real data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def exif_rotated_jpeg() -> bytes:
    image = Image.new("RGB", (40, 20), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    return png_bytes(image, "JPEG", exif=exif.tobytes())


GOOD = png_bytes(Image.new("RGB", (32, 32), (10, 120, 200)))
EXTRA: dict[str, Callable[[], bytes]] = {
    "corrupt": lambda: b"\x89PNG\r\n\x1a\n" + os.urandom(200),
    "zero": lambda: b"",
    "truncated": lambda: png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)))[:300],
    "cmyk": lambda: png_bytes(Image.new("CMYK", (32, 32), (10, 20, 30, 40)), "JPEG"),
    "16bit": lambda: png_bytes(Image.fromarray(np.full((32, 32), 60_000, np.uint16))),
    "exif": exif_rotated_jpeg,
    "bomb": bomb_png,
}


def std(tmp: Path, counts: dict[str, int] | None = None) -> Path:
    """The standard input: a=6, b=3, c=2 images of 32x32 px."""
    return make_image_folder(tmp / "data", counts or {"a": 6, "b": 3, "c": 2})


def data_with(files: dict[str, bytes | Callable[[], bytes]], counts: dict[str, int] | None = None):
    """A builder: the standard input plus ``files`` (relative path -> bytes)."""
    def build(tmp: Path) -> Path:
        root = std(tmp, counts)
        for rel, content in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content() if callable(content) else content)
        return root
    return build


def data_linked(link: str, target: Callable[[Path], Path]):
    def build(tmp: Path) -> Path:
        root = std(tmp)
        os.symlink(target(root), root / link)
        return root
    return build


def csv_data(rows: list[str], header: str = "path,label"):
    """The standard images plus ``data/labels.csv`` with ``rows``."""
    def build(tmp: Path) -> Path:
        root = std(tmp)
        (root / "labels.csv").write_text("\n".join([header, *rows]) + "\n")
        return root
    return build


# -- the case runner -------------------------------------------------------------------------


@dataclass
class Ctx:
    tmp: Path
    data: Path
    out: Path
    monkeypatch: pytest.MonkeyPatch
    procs: list[subprocess.Popen] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def cli(self, *args: str) -> int:
        from synthaug._cli import main

        return main([a.format(data=self.data, out=self.out, tmp=self.tmp) for a in args])


@dataclass
class Case:
    name: str
    args: tuple[str, ...] = ()
    code: int | type[BaseException] = 2
    needle: str = ""
    data: Callable[[Path], Path] = std
    before: Callable[[Ctx], None] | None = None
    call: Callable[[Ctx], Any] | None = None
    check: Callable[[Ctx, str], None] | None = None
    keeps_out: bool = True
    alarm: int = 0  # seconds before a hang fails the case (a FIFO once blocked `plan` forever)


BAL = ("balance", "{data}", "--out", "{out}", "-q")


def ran_before(*args: str) -> Callable[[Ctx], None]:
    """Run ``synthaug ARGS`` once before the case (its output is what the case must keep)."""
    def before(ctx: Ctx) -> None:
        assert ctx.cli(*args) == 0
    return before


def counts_of(ctx: Ctx) -> dict[str, int]:
    return {d.name: len(list(d.glob("*.png"))) for d in ctx.out.iterdir() if d.is_dir()}


def plan_counts(text: str) -> dict[str, int]:
    plan, _ = json.JSONDecoder().raw_decode(text[text.index("{"):])
    return {k: v["real"] for k, v in plan["classes"].items()}


def expect_counts(real: dict[str, int]) -> Callable[[Ctx, str], None]:
    def check(ctx: Ctx, message: str) -> None:
        assert plan_counts(message) == real
    return check


# A test plugin (the built-in classic generator under another name, or misbehaving).
def _plugin_module(cls: type) -> types.ModuleType:
    from synthaug._hookspecs import hookimpl

    module = types.ModuleType(f"plugin_{cls.name}")
    module.register_generators = hookimpl(lambda register: register(cls))
    return module


def _entry_point(name: str, load: Callable[[], Any]) -> Any:
    dist = types.SimpleNamespace(name=f"{name}-dist", version="9.9")
    return types.SimpleNamespace(name=name, value=f"{name}:plugin", dist=dist, load=load)


def with_entry_points(*eps: Any) -> Callable[[Ctx], None]:
    def before(ctx: Ctx) -> None:
        from synthaug import _plugins as plugins

        ctx.monkeypatch.setattr(plugins, "_entry_points", lambda: list(eps))
        plugins.reset_plugins()
    return before


def _broken() -> Any:
    raise ImportError("no module named 'torch_missing_xyz'")


def _shadowing_classic() -> Any:
    from synthaug._default_plugins.classic import ClassicGenerator

    class Impostor(ClassicGenerator):
        name = "classic"
        description = "an impostor"

        def generate(self, concept, seeds):  # noqa: ANN001, ANN201
            raise RuntimeError("the impostor must never run")

    return _plugin_module(Impostor)


def run_generator(ctx: Ctx, generate: Callable[..., Any]) -> Any:
    """Balance the standard data with a generator whose ``generate`` is ``generate``."""
    from synthaug import SyntheticAugmenter
    from synthaug._default_plugins.classic import ClassicGenerator

    class Odd(ClassicGenerator):
        name = "odd"

        def generate(self, concept, seeds):  # noqa: ANN001, ANN201
            return generate(self, concept, seeds)

    return SyntheticAugmenter(Odd(), out_dir=ctx.out).fit_resample(ctx.data)


def extra_images(self, concept, seeds):  # noqa: ANN001, ANN201
    yield from (Image.new("RGB", (8, 8)) for _ in range(len(seeds) + 1))


def sixteen_bit(self, concept, seeds):  # noqa: ANN001, ANN201
    yield from (Image.fromarray(np.full((8, 8), 32_896, np.uint16)) for _ in seeds)  # 32896 / 257 = 128


def not_images(self, concept, seeds):  # noqa: ANN001, ANN201
    yield from (np.zeros((8, 8, 3)) for _ in seeds)


def check_sixteen_bit(ctx: Ctx, message: str) -> None:
    files = sorted(ctx.out.rglob("*.png"))
    assert files
    with Image.open(files[0]) as im:
        assert im.getpixel((0, 0)) == (128, 128, 128)  # scaled by 1/257, not clipped to 255


class FakeHF(list):
    """The shape of a ``datasets.Dataset`` that Dataset.from_hf reads: rows and ``features``."""

    features = {"image": object(), "label": types.SimpleNamespace(names=["cat", "dog"])}


def hf_rows(seed: int, n: int = 4) -> FakeHF:
    rng = np.random.default_rng(seed)
    return FakeHF({"image": Image.fromarray(rng.integers(0, 255, (16, 16, 3), np.uint8)), "label": i % 2}
                  for i in range(n))


def hf_shared_cache(ctx: Ctx) -> None:
    """Issue 11, defect 4: train and test share one cache_dir; no test image may be a train image."""
    from synthaug import Dataset

    train = Dataset.from_hf(hf_rows(1), ctx.tmp / "cache")
    test = Dataset.from_hf(hf_rows(2), ctx.tmp / "cache")
    shuffled = Dataset.from_hf(FakeHF(reversed(hf_rows(1))), ctx.tmp / "cache")
    train_bytes = {s.path.read_bytes() for s in train}
    assert not train_bytes & {s.path.read_bytes() for s in test}
    assert {s.path.read_bytes() for s in shuffled} == train_bytes
    rows = hf_rows(2)
    for sample, row in zip(test, rows):
        assert np.array_equal(np.asarray(Image.open(sample.path)), np.asarray(row["image"]))


def junk_one_image(strip_checksums: bool) -> Callable[[Ctx], None]:
    def before(ctx: Ctx) -> None:
        assert ctx.cli(*BAL) == 0
        manifest = ctx.out / "manifest.jsonl"
        records = [json.loads(line) for line in manifest.read_text().splitlines()]
        victim = ctx.out / records[0]["file"]
        ctx.extra["victim"], ctx.extra["original"] = victim, victim.read_bytes()
        victim.write_bytes(b"junk" * 10)
        if strip_checksums:  # a manifest of an older version: no size, no checksum
            manifest.write_text("".join(json.dumps({k: v for k, v in r.items() if k not in ("sha256", "bytes")})
                                        + "\n" for r in records))
    return before


def check_regenerated(ctx: Ctx, message: str) -> None:
    assert ctx.extra["victim"].read_bytes() == ctx.extra["original"]  # same seed, same bytes
    assert len((ctx.out / "manifest.jsonl").read_text().splitlines()) == 3 + 4


def check_junk_kept(ctx: Ctx, message: str) -> None:
    assert ctx.extra["victim"].read_bytes() == b"junk" * 10  # the cheap check trusts old records


def fail_writes(code: int, suffix: str = "") -> Callable[[Ctx], None]:
    """Make every atomic write (of files ending in ``suffix``) fail with OSError ``code``."""
    def before(ctx: Ctx) -> None:
        from synthaug import _store as store

        real = store.atomic_write_bytes

        def failing(path: Path, data: bytes) -> None:
            if str(path).endswith(suffix):
                raise OSError(code, os.strerror(code), str(path))
            real(path, data)

        ctx.monkeypatch.setattr(store, "atomic_write_bytes", failing)
    return before


def partial_run_then(patch: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
    """A finished run with two images deleted (to be regenerated), then ``patch``."""
    def before(ctx: Ctx) -> None:
        assert ctx.cli(*BAL) == 0
        for path in sorted(ctx.out.rglob("*.png"))[:2]:
            path.unlink()
        from synthaug._store import Store

        Store(ctx.out).recover()  # the manifest drops them now, so OUT is consistent before the case
        patch(ctx)
    return before


def hold_lock(ctx: Ctx) -> None:
    code = "import sys, time\nfrom synthaug._outdir import claim_output\nwith claim_output(sys.argv[1]):\n" \
           "    print('held', flush=True)\n    time.sleep(60)\n"
    env = {k: v for k, v in os.environ.items() if k != "SYNTHAUG_CLAIMED_OUTPUTS"}
    proc = subprocess.Popen([sys.executable, "-c", code, str(ctx.out)], stdout=subprocess.PIPE, text=True, env=env)
    ctx.procs.append(proc)
    assert proc.stdout.readline().strip() == "held"
    ctx.extra["pid"] = proc.pid


def write_plan(text: str) -> Callable[[Ctx], None]:
    def before(ctx: Ctx) -> None:
        assert ctx.cli(*BAL) == 0
        (ctx.out / "plan.json").write_text(text)
    return before


def make_syn(ctx: Ctx) -> None:
    assert ctx.cli("balance", "{data}", "--out", "{tmp}/syn", "-q") == 0


def split_root_with_leak(tmp: Path) -> Path:
    root = tmp / "data"
    make_image_folder(root / "train", {"a": 4, "b": 2})
    make_image_folder(root / "test", {"a": 1, "b": 1}, seed=7)
    (root / "test" / "b" / "leak.png").write_bytes((root / "train" / "b" / "b_000.png").read_bytes())
    return root


def one_class(tmp: Path) -> Path:
    return std(tmp, {"only": 5})


def tied(tmp: Path) -> Path:
    return std(tmp, {"big": 6, "mid": 4, "r1": 2, "r2": 2})


def names(*labels: str):
    def build(tmp: Path) -> Path:
        return std(tmp, {label: 2 + i for i, label in enumerate(labels)})
    return build


def check_distinct_ids(ctx: Ctx, message: str) -> None:
    records = [json.loads(line) for line in (ctx.out / "manifest.jsonl").read_text().splitlines()]
    ids = {}
    for r in records:
        ids.setdefault(r["class"], set()).add(r["id"].rsplit("-", 1)[0])
    stems = [next(iter(v)) for v in ids.values()]
    assert all(len(v) == 1 for v in ids.values()) and len(set(stems)) == len(stems), ids
    for r in records:
        assert r["file"].startswith(r["class"] + "/")


def check_nine_at_06(ctx: Ctx, message: str) -> None:
    plan, _ = json.JSONDecoder().raw_decode(message[message.index("{"):])
    assert plan["classes"]["a"]["synthetic"] == 14  # 9 * 0.6 / 0.4 = 13.5 exactly -> 14


# -- issue 21: one identity per image, input files, class names, CSV text -------------------------


def with_fifo(rel: str):
    """The standard input plus a FIFO named like an image (``mkfifo``)."""
    def build(tmp: Path) -> Path:
        root = std(tmp)
        os.mkfifo(root / rel)
        return root
    return build


def fifo_in_csv(tmp: Path) -> Path:
    root = with_fifo("a/pipe.png")(tmp)
    (root / "labels.csv").write_text("path,label\na/a_000.png,a\na/pipe.png,a\n")
    return root


def strip_png() -> bytes:
    """A valid 60000x1 PNG: a degenerate aspect ratio that once became a gigapixel canvas."""
    return png_bytes(Image.new("RGB", (60_000, 1), (90, 90, 90)))


def csv_bytes(data: bytes):
    """The standard images plus ``data/labels.csv`` holding exactly ``data``."""
    def build(tmp: Path) -> Path:
        root = std(tmp)
        (root / "labels.csv").write_bytes(data)
        return root
    return build


CAFE_NFC, CAFE_NFD = "caf\u00e9", "cafe\u0301"
LONG_NAME = "\u00e9" * 120  # 240 bytes of UTF-8: a legal folder name, too long for synthaug's derived names


def restored_with_cp_p(ctx: Ctx) -> None:
    """A.png is damaged in place (same size, mtime kept), probed as unreadable, then restored
    from a backup with ``cp -p``: size and mtime are the damaged file's again."""
    import shutil
    import time

    victim = ctx.data / "a" / "a_000.png"
    backup = ctx.tmp / "backup.png"
    shutil.copy2(victim, backup)
    good = victim.read_bytes()
    stamp = victim.stat()
    victim.write_bytes(good[:-12] + bytes(12))  # IEND chunk zeroed: "truncated", same size
    os.utime(victim, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert ctx.cli("plan", "{data}") == 0  # probes it: unreadable, cached
    time.sleep(0.05)
    shutil.copy2(backup, victim)
    assert victim.stat().st_size == stamp.st_size and victim.stat().st_mtime_ns == stamp.st_mtime_ns


def nothing_at(rel: str) -> Callable[[Ctx, str], None]:
    def check(ctx: Ctx, message: str) -> None:
        assert not (ctx.tmp / rel).exists(), f"{rel} was written before the refusal"
    return check


# -- issue 21: loud but wrong ----------------------------------------------------------------------


def split_root_class_only_in_test(tmp: Path) -> Path:
    root = tmp / "data"
    make_image_folder(root / "train", {"a": 4, "b": 2})
    make_image_folder(root / "val", {"a": 1, "b": 1}, seed=3)
    make_image_folder(root / "test", {"a": 1, "b": 1, "z": 1}, seed=5)
    return root


def check_nothing_written(ctx: Ctx, message: str) -> None:
    assert not ctx.out.exists() and not (ctx.tmp / "out.synthaug").exists(), "written before the error"


def check_said_once(needle: str) -> Callable[[Ctx, str], None]:
    def check(ctx: Ctx, message: str) -> None:
        assert message.count(needle) == 1, message
    return check


def torn_evaluate_result(ctx: Ctx) -> None:
    """A result file torn by a kill is recomputed (``None``), never a JSONDecodeError."""
    from synthaug._evaluate.runner import _cached

    path = ctx.tmp / "result.json"
    path.write_text('{"key": "k", "val')
    assert _cached(path, "k") is None
    path.write_text('{"key": "k", "value": 1}\n')
    assert _cached(path, "k") == {"key": "k", "value": 1}


def api_lock_holder(ctx: Ctx) -> None:
    """The lock holder of a Python-API run is its real command line, not ``synthaug DATA OUT``."""
    from synthaug._outdir import LOCK_INFO_FILE, claim_output

    with claim_output(ctx.out):
        command = json.loads((ctx.out / LOCK_INFO_FILE).read_text())["command"]
    assert not command.startswith("synthaug") and "pytest" in command, command


def combined_killed_then_rerun(ctx: Ctx) -> None:
    """``balance --combined`` killed while writing links: the same command completes it."""
    real_symlink, made = os.symlink, []

    def dying(src, dst, *args, **kwargs):  # noqa: ANN001, ANN202
        if len(made) == 4:
            raise KeyboardInterrupt
        made.append(dst)
        real_symlink(src, dst, *args, **kwargs)

    args = (*BAL, "--combined", "{tmp}/combined")
    ctx.monkeypatch.setattr(os, "symlink", dying)
    assert ctx.cli(*args) == 130
    ctx.monkeypatch.setattr(os, "symlink", real_symlink)
    assert ctx.cli(*args) == 0
    combined = ctx.tmp / "combined"
    assert {d.name: len(list(d.iterdir())) for d in combined.iterdir() if d.is_dir()} == {"a": 6, "b": 6, "c": 6}


def synthetic_folder_with_shared_file_names(ctx: Ctx) -> None:
    """``evaluate --synthetic``: a clean folder whose source names recur in another class's
    held-out images is not a leak (matched by content, not bare file name)."""
    from synthaug import SyntheticAugmenter
    from synthaug._evaluate.sources import _folder_pool
    from synthaug._splitting import load_split_root

    root = ctx.tmp / "split"
    make_image_folder(root / "train", {"a": 6, "b": 3})
    make_image_folder(root / "val", {"a": 1, "b": 1}, seed=3)
    make_image_folder(root / "test", {"a": 1, "b": 1}, seed=5)
    for label in ("a", "b"):  # per-class numbering: test/b/0000.png and train/a/0000.png are other images
        for i, path in enumerate(sorted((root / "train" / label).glob("*.png"))):
            path.rename(path.with_name(f"{i:04d}.png"))
    (root / "test" / "b" / "b_000.png").rename(root / "test" / "b" / "0000.png")
    syn = ctx.tmp / "syn"
    SyntheticAugmenter("classic", out_dir=syn, workers=1).fit_resample(root / "train")
    pool = _folder_pool(syn, load_split_root(root))
    assert sum(len(v) for v in pool.values()) == 3


CASES: list[Case] = [
    # -- images and folders -------------------------------------------------------------
    Case("corrupt-png", BAL, 0, "a/x.png (", data_with({"a/x.png": EXTRA["corrupt"]})),
    Case("zero-byte", ("plan", "{data}"), 0, "skipped 1 unreadable image file(s)", data_with({"b/z.png": EXTRA["zero"]})),
    Case("truncated", ("plan", "{data}"), 0, "b/t.png (", data_with({"b/t.png": EXTRA["truncated"]})),
    Case("decompression-bomb", ("plan", "{data}"), 0, "DecompressionBombError", data_with({"a/bomb.png": EXTRA["bomb"]})),
    Case("cmyk-jpeg", BAL, 0, "", data_with({"c/cmyk.jpg": EXTRA["cmyk"]}),
         check=lambda ctx, m: counts_of(ctx) == {"a": 0, "b": 3, "c": 3} or pytest.fail(str(counts_of(ctx)))),
    Case("16-bit-png", ("plan", "{data}", "--json"), 0, '"c"', data_with({"c/deep.png": EXTRA["16bit"]}),
         check=expect_counts({"a": 6, "b": 3, "c": 3})),
    Case("exif-rotated", BAL, 0, "", data_with({"c/rot.jpg": EXTRA["exif"]})),
    Case("strict-refuses-corrupt", ("plan", "{data}", "--strict"), 2, "1 unreadable image file(s)",
         data_with({"a/x.png": EXTRA["corrupt"]})),
    Case("hidden-files-ignored", ("plan", "{data}", "--json"), 0, '"a"',
         data_with({"a/.DS_Store": b"junk", "a/._x.png": b"junk", ".hidden/x.png": GOOD}),
         check=expect_counts({"a": 6, "b": 3, "c": 2})),
    Case("underscore-folder-is-a-class", ("plan", "{data}", "--json"), 0, '"_extra"',
         data_with({"_extra/x.png": GOOD, "_extra/y.png": GOOD}),
         check=expect_counts({"_extra": 2, "a": 6, "b": 3, "c": 2})),
    Case("symlink-loop-in-class", ("plan", "{data}", "--json"), 0, '"a"', data_linked("a/loop", lambda root: root / "a"),
         check=expect_counts({"a": 6, "b": 3, "c": 2})),
    Case("class-link-to-root", ("plan", "{data}"), 2, "the data folder itself or one of its parents",
         data_linked("everything", lambda root: root)),
    Case("class-link-to-ancestor", ("plan", "{data}"), 2, "would hold every image",
         data_linked("up", lambda root: root.parent)),
    Case("empty-class", BAL, 0, "class(es) with no usable image: e", data_with({"e/readme.txt": b"no images"})),
    Case("all-unreadable-class", ("plan", "{data}"), 0, "class(es) with no usable image: z",
         data_with({"z/x.png": EXTRA["zero"]})),
    Case("non-ascii-classes", BAL, 0, "", names("水痘", "麻疹", "nevus"), check=check_distinct_ids),
    Case("slug-alike-classes", BAL, 0, "", names("a b", "a-b", "a_b", "nevus"), check=check_distinct_ids),
    Case("class-named-like-manifest", BAL, 2, "file name synthaug uses",
         data_with({"manifest.jsonl/x.png": GOOD})),
    Case("classes-differ-in-case", BAL, 2, "differ only in letter case", data_with({"A/x.png": GOOD})),
    Case("one-class", BAL, 0, "only one class with images", one_class),
    Case("not-minority-tie", ("plan", "{data}", "--strategy", "not-minority"), 0, "tie as the rarest", tied),
    Case("data-missing", ("plan", "{tmp}/nope"), 2, "does not exist"),
    Case("data-is-a-file", ("plan", "{data}/a/a_000.png"), 2, "is not a folder"),
    Case("data-without-classes", ("plan", "{data}/a"), 2, "has no class sub-folders"),
    Case("nothing-readable", ("plan", "{data}"), 2, "no readable images",
         lambda tmp: _only_bad(tmp)),
    # -- CSV inputs -------------------------------------------------------------------------
    Case("csv-duplicate-rows", ("plan", "{data}/labels.csv", "--json"), 0, "more than once",
         csv_data(["a/a_000.png,a"] * 4 + ["b/b_000.png,b"]), check=expect_counts({"a": 1, "b": 1})),
    Case("csv-one-image-two-labels", ("plan", "{data}/labels.csv"), 2, "two labels",
         csv_data(["a/a_000.png,a", "a/a_000.png,b", "b/b_000.png,b"])),
    Case("csv-category-column", ("plan", "{data}/labels.csv", "--json"), 0, '"b"',
         csv_data(["a/a_000.png,a", "b/b_000.png,b"], "path,category"), check=expect_counts({"a": 1, "b": 1})),
    Case("csv-no-label-column", ("plan", "{data}/labels.csv"), 2, "name the label column one of",
         csv_data(["a/a_000.png,a"], "path,diagnosis_code")),
    Case("csv-underscore-label", ("plan", "{data}/labels.csv", "--json"), 0, '"_x"',
         csv_data(["a/a_000.png,_x", "b/b_000.png,b"])),
    Case("csv-missing-file", ("plan", "{data}/labels.csv"), 2, "do not exist", csv_data(["a/nope.png,a"])),
    Case("csv-empty-label", ("plan", "{data}/labels.csv"), 2, "empty class label", csv_data(["a/a_000.png,"])),
    Case("csv-path-is-folder", code=__import__("synthaug").DatasetError, needle="is a folder, not a CSV file",
         call=lambda ctx: __import__("synthaug").Dataset.from_csv(ctx.data)),
    # -- issue 21: input files, class names, CSV text (refused or skipped at read time) -----------
    Case("fifo-named-like-image", ("plan", "{data}"), 0, "is a FIFO, not a regular file", with_fifo("a/pipe.png"),
         alarm=30),
    Case("fifo-listed-in-csv", ("plan", "{data}/labels.csv"), 2, "are not regular files",
         lambda tmp: fifo_in_csv(tmp), alarm=30),
    Case("aspect-ratio-60000x1", ("plan", "{data}"), 0, "c/strip.png (ValueError: 60000x1 pixels",
         data_with({"c/strip.png": strip_png}), check=lambda ctx, m: "aspect ratio of 100:1" in m or pytest.fail(m)),
    Case("probe-cache-restored-with-cp-p", ("plan", "{data}", "--json"), 0, '"a"', before=restored_with_cp_p,
         check=expect_counts({"a": 6, "b": 3, "c": 2})),
    Case("classes-nfc-nfd", ("plan", "{data}"), 2, "two Unicode normalisations", names(CAFE_NFC, CAFE_NFD)),
    Case("class-name-240-bytes", ("plan", "{data}"), 2, "the limit is 200 bytes", names(LONG_NAME, "b")),
    Case("csv-label-240-bytes", ("plan", "{data}/labels.csv"), 2, "the limit is 200 bytes",
         csv_data([f"a/a_000.png,{LONG_NAME}", "b/b_000.png,b"])),
    Case("csv-nul-in-label", ("plan", "{data}/labels.csv"), 2, "control character U+0000",
         csv_data(["a/a_000.png,a\0b", "b/b_000.png,b"])),
    Case("csv-label-column-twice", ("plan", "{data}/labels.csv"), 2, "has the column 'label' 2 times",
         csv_data(["a/a_000.png,a,b", "b/b_000.png,b,a"], "path,label,label")),
    Case("csv-path-column-twice", ("plan", "{data}/labels.csv"), 2, "has the column 'path' 2 times",
         csv_data(["a/a_000.png,b/b_000.png,a"], "path,path,label")),
    Case("csv-latin-1", ("plan", "{data}/labels.csv"), 2, "is not valid UTF-8: byte 0xe9",
         csv_bytes("path,label\na/a_000.png,caf\u00e9\nb/b_000.png,b\n".encode("latin-1")),
         check=lambda ctx, m: "labels.csv" in m or pytest.fail(m)),
    Case("csv-utf-16-with-bom", ("plan", "{data}/labels.csv", "--json"), 0, '"b"',
         csv_bytes("path,label\na/a_000.png,caf\u00e9\nb/b_000.png,b\n".encode("utf-16")),
         check=expect_counts({CAFE_NFC: 1, "b": 1})),
    Case("csv-utf-8-bom", ("plan", "{data}/labels.csv", "--json"), 0, '"b"',
         csv_bytes("path,label\na/a_000.png,caf\u00e9\nb/b_000.png,b\n".encode("utf-8-sig")),
         check=expect_counts({CAFE_NFC: 1, "b": 1})),
    Case("evaluate-lr-nan", ("evaluate", "{data}", "--out", "{tmp}/eval", "--lr", "nan", "-q"), 2,
         "invalid --lr=nan", check=nothing_at("eval")),
    Case("evaluate-lr-inf", ("evaluate", "{data}", "--out", "{tmp}/eval", "--lr", "inf", "-q"), 2,
         "invalid --lr=inf", check=nothing_at("eval")),
    Case("evaluate-epochs-inf", ("evaluate", "{data}", "--out", "{tmp}/eval", "--epochs", "inf", "-q"), 2,
         "invalid --epochs=inf", check=nothing_at("eval")),
    Case("evaluate-epochs-nan", ("evaluate", "{data}", "--out", "{tmp}/eval", "--epochs", "nan", "-q"), 2,
         "invalid --epochs=nan", check=nothing_at("eval")),
    Case("evaluate-alpha-nan", ("evaluate", "{data}", "--out", "{tmp}/eval", "--alpha", "nan", "-q"), 2,
         "invalid --alpha=nan", check=nothing_at("eval")),
    Case("evaluate-val-nan", ("evaluate", "{data}", "--out", "{tmp}/eval", "--val", "nan", "-q"), 2,
         "invalid --val=nan", check=nothing_at("eval")),
    Case("evaluate-shares-inf", ("evaluate", "{data}", "--out", "{tmp}/eval", "--experiments", "proportion",
                                 "--shares", "inf", "-q"), 2, "invalid --shares=inf", check=nothing_at("eval")),
    # -- the output folder -----------------------------------------------------------------------
    Case("out-inside-data", ("balance", "{data}", "--out", "{data}/synthetic"), 2, "inside the data folder"),
    Case("out-is-data", ("balance", "{data}", "--out", "{data}"), 2, "inside the data folder"),
    Case("out-inside-data-behind-split-links", ("balance", "{tmp}/split", "--out", "{data}/synthetic"), 2,
         "inside the data folder", before=lambda ctx: (ctx.cli("split", "{data}", "--out", "{tmp}/split") == 0
                                                      or pytest.fail("split failed"))),
    Case("out-contains-data", ("balance", "{data}", "--out", "{tmp}"), 2, "contains the data folder"),
    Case("out-is-a-data-file", ("balance", "{data}", "--out", "{data}/a/a_000.png"), 2, "is an existing file"),
    Case("out-is-an-existing-file", ("balance", "{data}", "--out", "{tmp}/file.txt"), 2, "is an existing file",
         before=lambda ctx: (ctx.tmp / "file.txt").write_text("mine")),
    Case("out-below-a-file", ("balance", "{data}", "--out", "{tmp}/file.txt/sub"), 2, "is an existing file, not a folder",
         before=lambda ctx: (ctx.tmp / "file.txt").write_text("mine")),
    Case("out-holds-different-run", (*BAL, "--seed", "1"), 2, "holds a different run", before=ran_before(*BAL)),
    Case("out-different-run-overwrite", (*BAL, "--seed", "1", "--overwrite"), 0, "", before=ran_before(*BAL),
         keeps_out=False, check=lambda ctx, m: json.loads((ctx.out / "plan.json").read_text())["run"]["seed"] == 1
         or pytest.fail("plan not replaced")),
    Case("out-foreign-files", BAL, 2, "is not empty",
         before=lambda ctx: (ctx.out.mkdir(), (ctx.out / "notes").mkdir(), (ctx.out / "notes" / "n.txt").write_text("x"))),
    Case("plan-json-corrupt", BAL, 2, "rerun with --overwrite", before=write_plan("{not json")),
    Case("plan-json-corrupt-overwrite", (*BAL, "--overwrite"), 0, "", before=write_plan("{not json"), keeps_out=False,
         check=lambda ctx, m: check_regenerated_counts(ctx)),
    Case("plan-json-list", BAL, 2, "holds a JSON list", before=write_plan("[1, 2]")),
    Case("plan-json-list-overwrite", (*BAL, "--overwrite"), 0, "", before=write_plan("[1, 2]"), keeps_out=False,
         check=lambda ctx, m: check_regenerated_counts(ctx)),
    Case("out-locked-by-another-process", BAL, 2, "another synthaug run", before=hold_lock,
         check=lambda ctx, m: f"pid {ctx.extra['pid']}" in m or pytest.fail(m)),
    Case("out-read-only", BAL, 2, "permission denied", before=fail_writes(errno.EACCES)),
    Case("disk-full", BAL, 1, "rerun the same command: it resumes",
         before=partial_run_then(fail_writes(errno.ENOSPC, ".png"))),
    Case("junk-png-regenerated", BAL, 0, "do not match the manifest", before=junk_one_image(False), keeps_out=False,
         check=check_regenerated),
    Case("verify-decodes-old-records", (*BAL, "--verify"), 0, "does not decode", before=junk_one_image(True),
         keeps_out=False, check=check_regenerated),
    Case("cheap-check-trusts-old-records", BAL, 0, "", before=junk_one_image(True), check=check_junk_kept),
    Case("split-out-inside-data", ("split", "{data}", "--out", "{data}/split"), 2, "inside the data folder"),
    Case("split-out-is-a-file", ("split", "{data}", "--out", "{tmp}/f.txt"), 2, "is an existing file",
         before=lambda ctx: (ctx.tmp / "f.txt").write_text("mine")),
    Case("report-out-inside-data", ("report", "{data}", "{tmp}/syn", "--out", "{data}/a", "-q"), 2,
         "inside the data folder", before=make_syn),
    Case("report-out-inside-synthetic", ("report", "{data}", "{tmp}/syn", "--out", "{tmp}/syn/r", "-q"), 2,
         "inside the data folder", before=make_syn),
    Case("report-out-is-a-file", ("report", "{data}", "{tmp}/syn", "--out", "{tmp}/r.txt", "-q"), 2,
         "is an existing file", before=lambda ctx: (make_syn(ctx), (ctx.tmp / "r.txt").write_text("x"))),
    Case("evaluate-out-inside-data", ("evaluate", "{data}", "--out", "{data}/eval", "-q"), 2,
         "inside the data folder"),
    Case("evaluate-out-is-a-file", ("evaluate", "{data}", "--out", "{tmp}/e.txt", "-q"), 2, "is an existing file",
         before=lambda ctx: (ctx.tmp / "e.txt").write_text("mine")),
    Case("evaluate-zero-splits", ("evaluate", "{data}", "--out", "{tmp}/eval", "--splits", "0", "-q"), 2,
         "invalid --splits=0"),
    Case("evaluate-one-fold", ("evaluate", "{data}", "--out", "{tmp}/eval", "--repeats", "1", "--folds", "1", "-q"),
         2, "invalid --folds=1"),
    Case("split-root-leak", BAL, 2, "is also in the test split", split_root_with_leak),
    # -- policy and options ----------------------------------------------------------------------
    Case("target-twice", ("plan", "{data}", "--target", "c=4", "--target", "c=5"), 2, "one value per class"),
    Case("target-below-real", ("plan", "{data}", "--target", "a=2"), 2, "use --policy proportion --replace"),
    Case("target-unknown-class", ("plan", "{data}", "--target", "zebra=9"), 2, "invalid --target zebra=9"),
    Case("share-too-big", ("plan", "{data}", "--policy", "proportion", "--share", "1.5"), 2, "share=1.5"),
    Case("share-exact-half", ("plan", "{data}", "--policy", "proportion", "--share", "0.6", "--json"), 0, '"a"',
         lambda tmp: std(tmp, {"a": 9, "b": 4}), check=check_nine_at_06),
    Case("strategy-unknown", ("plan", "{data}", "--strategy", "most"), 2, "strategy='most'"),
    Case("seed-negative", (*BAL, "--seed", "-1"), 2, "--seed=-1"),
    Case("unknown-generator-option", (*BAL, "-o", "colour=1"), 2, "unknown option 'colour'"),
    Case("bad-generator-option-value", (*BAL, "-o", "hue=lots"), 2, "option hue='lots'"),
    Case("unknown-generator", (*BAL, "-g", "nope"), 2, "unknown generator 'nope'"),
    Case("unknown-flag", (*BAL, "--bogus"), 2, "No such option"),
    # -- plugins and generators --------------------------------------------------------------------
    Case("broken-plugin-reported", ("plugins", "--json"), 0, "torch_missing_xyz",
         before=with_entry_points(_entry_point("broken", _broken))),
    Case("broken-plugin-rest-works", BAL, 0, "", before=with_entry_points(_entry_point("broken", _broken))),
    Case("plugin-shadowing-classic-named", ("plugins", "--json"), 0, "'evil' (evil-dist) must rename",
         before=with_entry_points(_entry_point("evil", _shadowing_classic))),
    Case("plugin-shadowing-classic-builtin-kept", BAL, 0, "",
         before=with_entry_points(_entry_point("evil", _shadowing_classic))),
    Case("generator-yields-extra", code=__import__("synthaug").GenerationError, needle="more than the",
         call=lambda ctx: run_generator(ctx, extra_images)),
    Case("generator-yields-non-image", code=__import__("synthaug").GenerationError, needle="expected a PIL image",
         call=lambda ctx: run_generator(ctx, not_images)),
    Case("generator-yields-16-bit", code=0, call=lambda ctx: run_generator(ctx, sixteen_bit), check=check_sixteen_bit),
    # -- issue 21: loud but wrong, now clear (exit 2 before anything is written) -----------------------
    Case("target-huge", (*BAL, "--target", "c=1000000000000"), 2, "at most 10,000,000 images per class",
         check=check_nothing_written),
    Case("classic-size-huge", (*BAL, "-o", "size=1000000000000"), 2, "less than or equal to 8192",
         check=check_nothing_written),
    Case("split-root-class-only-in-test", BAL, 2, "'z' have images in test/ but none in train/",
         split_root_class_only_in_test, check=check_nothing_written),
    Case("target-notice-once", (*BAL, "--target", "c=9"), 0, "above the majority class count 6",
         check=check_said_once("above the majority")),
    Case("demo-into-a-project-folder", ("demo", "--out", "{tmp}", "-q"), 2, "the demo did not write"),
    Case("evaluate-torn-result-recomputed", code=0, call=torn_evaluate_result),
    Case("lock-holder-of-python-api-run", code=0, call=api_lock_holder),
    Case("combined-killed-while-linking-resumes", code=0, call=combined_killed_then_rerun),
    Case("evaluate-synthetic-matched-by-content", code=0, call=synthetic_folder_with_shared_file_names),
    # -- Python API --------------------------------------------------------------------------------
    Case("upsample-hf-dataset", code=__import__("synthaug").InvalidParameterError, needle="Dataset.from_hf",
         call=lambda ctx: __import__("synthaug").upsample(hf_rows(0), ctx.out)),
    Case("from-hf-shared-cache", code=0, call=hf_shared_cache),
]


def _only_bad(tmp: Path) -> Path:
    root = tmp / "data"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        (root / label / "x.png").write_bytes(b"")
    return root


def check_regenerated_counts(ctx: Ctx) -> None:
    assert counts_of(ctx) == {"a": 0, "b": 3, "c": 4}
    assert len((ctx.out / "manifest.jsonl").read_text().splitlines()) == 7


def test_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 50 and len({c.name for c in CASES}) == len(CASES)


@pytest.fixture(autouse=True)
def _fresh_plugins():
    from synthaug._plugins import reset_plugins

    reset_plugins()
    yield
    reset_plugins()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    ctx = Ctx(tmp_path, case.data(tmp_path), tmp_path / "out", monkeypatch)
    if case.alarm:
        signal.signal(signal.SIGALRM, _hung)
        signal.alarm(case.alarm)
    try:
        if case.before:
            case.before(ctx)
        data_before, out_before = tree_hash(ctx.data), snapshot(ctx.out)
        capsys.readouterr()
        if case.call is not None:
            if isinstance(case.code, type):
                with pytest.raises(case.code) as info:
                    case.call(ctx)
                message = str(info.value)
            else:
                case.call(ctx)
                message = ""
        else:
            code = ctx.cli(*case.args)
            captured = capsys.readouterr()
            message = captured.out + captured.err
            assert code == case.code, message
            assert "Traceback" not in message
        assert case.needle in message
        assert tree_hash(ctx.data) == data_before, "the input tree changed"
        if case.keeps_out:
            after = snapshot(ctx.out)
            lost = {k for k, v in out_before.items() if after.get(k) != v}
            assert not lost, f"files of OUT lost or changed: {sorted(lost)}"
        if case.check:
            case.check(ctx, message)
    finally:
        if case.alarm:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
        for proc in ctx.procs:
            proc.kill()
            proc.wait()


def _hung(signum: int, frame: Any) -> None:
    raise TimeoutError("the case hung (blocked reading input)")


# -- signals and the warning filter: real processes ---------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["sigint", "sigterm", "sigkill"])
def test_signal_mid_run_then_rerun_resumes_exactly(sig: signal.Signals, tmp_path: Path) -> None:
    """Ctrl-C exits 130 with the resume hint (defect 12), and so does SIGTERM (issue 21);
    SIGKILL leaves what was written. Either way every image written before stays, and the same
    command completes the plan."""
    data = std(tmp_path, {"a": 12, "b": 3, "c": 2})
    before = tree_hash(data)
    out = tmp_path / "out"
    args = ("balance", str(data), "--out", str(out), "-g", "slow-classic", "-q")
    proc = slow_cli.start(*args, delay=0.1)
    assert 3 <= slow_cli.wait_for_lines(out / "manifest.jsonl", 3, proc) < 19
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if sig in (signal.SIGINT, signal.SIGTERM):
        assert proc.returncode == 130, err
        assert "interrupted: rerun the same command to resume" in err and "Traceback" not in err
    kept = {k: v for k, v in snapshot(out).items() if k.endswith(".png")}
    done = slow_cli.run(*args)
    assert done.returncode == 0, done.stderr
    after = snapshot(out)
    assert all(after.get(k) == v for k, v in kept.items())
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(records) == len({r["file"] for r in records}) == 9 + 10
    assert tree_hash(data) == before


def test_notices_print_with_warnings_ignored(tmp_path: Path) -> None:
    """Defect 9: ``PYTHONWARNINGS=ignore`` must not hide skipped files, empty classes or ties."""
    data = data_with({"a/x.png": EXTRA["corrupt"], "e/readme.txt": b"-"})(tmp_path)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-W", "ignore", "-m", "synthaug", "plan", str(data), "--strategy",
                           "minority"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "skipped 1 unreadable image file(s)" in done.stderr and "a/x.png" in done.stderr
    assert "class(es) with no usable image: e" in done.stderr


@pytest.mark.slow
def test_lora_classes_that_slugify_alike_get_their_own_model(tiny_sd15_model: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    """Defect 1, the issue's repro: ``"a b"`` and ``a-b`` once shared one fitted LoRA."""
    pytest.importorskip("synthaug_lora_sd15")
    from synthaug._cli import main

    data = std(tmp_path, {"a b": 2, "a-b": 3, "nevus": 5})
    before = tree_hash(data)
    out = tmp_path / "out"
    options = [f"base_model={tiny_sd15_model}", "max_train_steps=3", "resolution=32", "num_inference_steps=2",
               "validation_images=0", "checkpoint_every=0"]
    code = main(["balance", str(data), "--out", str(out), "-g", "lora-sd15", "-q",
                 *(x for o in options for x in ("-o", o)), "--target", "a b=3", "--target", "a-b=4"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "reusing fitted artifact" not in err
    fits = out.parent / "out.synthaug" / "fits" / "lora-sd15"
    artifacts = {json.loads(p.read_text())["concept"]["name"]: p.parent for p in fits.glob("*/artifact.json")}
    assert set(artifacts) == {"a b", "a-b"} and artifacts["a b"] != artifacts["a-b"]
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    by_class: dict[str, set[str]] = {}
    for r in records:
        by_class.setdefault(r["class"], set()).add(r["adapter_sha256"] + " " + r["adapter_files"][0])
    assert sorted((r["class"], r["id"].rsplit("-", 1)[0]) for r in records if r["index"] == 0) == \
        sorted([("a b", artifacts["a b"].name), ("a-b", "a-b")])
    assert len(by_class["a b"]) == len(by_class["a-b"]) == 1 and by_class["a b"] != by_class["a-b"]
    assert tree_hash(data) == before

"""A search, not a list: Hypothesis drives random operation sequences on one small project and
checks the identity and confinement invariants after every step (issue 21, docs/guarantees.md).

Rules: add / remove / duplicate / symlink / hard-link / rename an input image; ``split`` with a
seed; ``balance`` (classic, in this process, ``--workers`` 1 or 2, optionally ``--overwrite`` and
``--combined``); a balance interrupted after a random number of images (``InterruptAfter``);
``filter``; in the slow profile also an ``evaluate`` rerun with another ``--splits-file``.

Invariants after every step:

- nothing outside what the rule may write changed (inputs byte-identical unless the rule changed
  them, nothing outside OUT, its sidecar and the ``--combined`` folder created, changed or removed);
- class folders == manifest == plan (records exist with their size and SHA-256, every PNG is
  listed, per-class counts equal plan.json once a run completed);
- no synthetic image in OUT has its source in the val/test split of the run's input;
- one image, one identity: no split root holds an image (by content: copies included) in two of
  train/val/test, and the folder reader lists each *file* of DATA once (links included), under
  one label;
- every reader gives the same pixels (``load_image``, ``Sample.load``, the torch adapter).

An exit 2 (a synthaug UsageError) is an allowed outcome of a rule; any other error fails.
Profiles: ``ci`` (default, about two minutes) and ``slow`` (``SYNTHAUG_HYPOTHESIS_PROFILE=slow``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from synthaug._cli import main as cli_main

# ci: derandomized and database-free (every run tries the same sequences), no shrinking (a failure
# prints its whole sequence at once instead of spending minutes of `make test` on shrinking);
# slow: random sequences, shrunk to a minimal one.
settings.register_profile("ci", max_examples=500, stateful_step_count=15, deadline=None, derandomize=True,
                          database=None, print_blob=True, phases=[Phase.explicit, Phase.generate],
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("slow", max_examples=200, stateful_step_count=25, deadline=None, database=None,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
PROFILE = os.environ.get("SYNTHAUG_HYPOTHESIS_PROFILE", "ci")
SLOW = PROFILE == "slow"
CLASSES = ("a", "b", "c")
#: Inputs of a balance: DATA or the split root of one of the seeds the split rule uses.
SOURCES = st.sampled_from(["data", "0", "1", "2", "3"])


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(root: Path) -> dict[str, tuple[str, ...]]:
    """Every entry under ``root`` (not following links): link target, file hash or directory."""
    found: dict[str, tuple[str, ...]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                found[rel] = ("dir",)
            else:
                found[rel] = ("file", _sha(path))
    return found


def _image(path: Path, seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(path)


class SearchMachine(RuleBasedStateMachine):
    """One project folder: DATA, split roots, OUT (+ sidecar), a combined folder, an evaluate folder."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="synthaug-search-"))
        self.data, self.out, self.combined = self.tmp / "data", self.tmp / "out", self.tmp / "combined"
        self.sidecar = self.tmp / "out.synthaug"
        self.counter = 0
        self.shas: dict[str, str] = {}  # every input file name ever used (names are never reused) -> content
        self.trained_from: Path | None = None  # input of the last balance into OUT that wrote anything
        self.complete = False  # the last run into OUT finished: counts equal the plan
        self.consistent = True  # no interrupted run since: every PNG in OUT is listed
        self.before = _snapshot(self.tmp)

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------------
    def _new_name(self, label: str) -> str:
        self.counter += 1
        return f"{label}_{self.counter:04d}.png"

    def _images(self) -> list[Path]:
        return sorted(p for p in self.data.rglob("*.png"))

    def _pick(self, index: int) -> Path | None:
        images = self._images()
        return images[index % len(images)] if images else None

    def _changed(self, *allowed: Path) -> None:
        """Assert that only paths under ``allowed`` changed since the last step."""
        after = _snapshot(self.tmp)
        prefixes = [str(p.relative_to(self.tmp)) for p in allowed]
        changed = sorted(k for k in self.before.keys() | after.keys() if self.before.get(k) != after.get(k))
        stray = [k for k in changed if not any(k == p or k.startswith(p + os.sep) for p in prefixes)]
        self.before = after
        assert not stray, f"changed outside {prefixes}: {stray}"

    def _cli(self, *args: str) -> tuple[int, str]:
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = cli_main([str(a) for a in args])
        assert code in (0, 2), f"synthaug {' '.join(map(str, args))} exited {code}: {err.getvalue()}"
        assert code == 0 or err.getvalue().strip(), "exit 2 without a message"
        return code, err.getvalue()

    def _source(self, name: str) -> Path | None:
        """DATA or the split root of seed ``name``, split now when missing (None if the split was refused)."""
        if name == "data":
            return self.data
        path = self.tmp / f"split-{name}"
        if not path.is_dir():
            self.split(int(name))
        return path if path.is_dir() else None

    # -- rules that change DATA --------------------------------------------------------------
    @initialize(counts=st.tuples(st.integers(4, 8), st.integers(2, 6), st.integers(1, 3)))
    def make_data(self, counts: tuple[int, int, int]) -> None:
        for label, n in zip(CLASSES, counts):
            (self.data / label).mkdir(parents=True)
            for _ in range(n):
                self._add(label)
        self._changed(self.data)

    def _add(self, label: str) -> Path:
        path = self.data / label / self._new_name(label)
        _image(path, self.counter)
        self.shas[path.name] = _sha(path)
        return path

    @rule(label=st.sampled_from(CLASSES))
    def add_image(self, label: str) -> None:
        self._add(label)
        self._changed(self.data)

    @rule(index=st.integers(0, 50))
    def remove_image(self, index: int) -> None:
        path = self._pick(index)
        if path is not None:
            path.unlink()
        self._changed(self.data)

    @rule(index=st.integers(0, 50), label=st.sampled_from(CLASSES),
          how=st.sampled_from(["copy", "symlink", "hardlink"]))
    def duplicate_image(self, index: int, label: str, how: str) -> None:
        """A copy, a symlink or a hard link of an input image, in its own class or another one."""
        path = self._pick(index)
        if path is None or path.is_symlink():
            return
        target = self.data / label / self._new_name(label)
        if how == "copy":
            shutil.copyfile(path, target)
        elif how == "symlink":
            target.symlink_to(os.path.relpath(path, target.parent))
        else:
            os.link(path, target)
        self.shas[target.name] = self.shas[path.name]
        self._changed(self.data)

    @rule(index=st.integers(0, 50))
    def rename_image(self, index: int) -> None:
        path = self._pick(index)
        if path is not None:
            label = path.parent.name
            target = path.with_name(self._new_name(label))
            path.rename(target)
            self.shas[target.name] = self.shas[path.name]
        self._changed(self.data)

    # -- commands ----------------------------------------------------------------------------
    @rule(seed=st.integers(0, 3))
    def split(self, seed: int) -> None:
        """``split --seed S`` into ``split-S`` (again into the same root when DATA changed since)."""
        root = self.tmp / f"split-{seed}"
        self._cli("split", self.data, "--out", root, "--seed", seed, "--val", "0.25", "--test", "0.25")
        self._changed(root)

    @rule(source=SOURCES, workers=st.sampled_from([1, 2]), overwrite=st.booleans(), combined=st.booleans())
    def balance(self, source: str, workers: int, overwrite: bool, combined: bool) -> None:
        src = self._source(source)
        if src is None:
            return
        args = ["balance", src, "--out", self.out, "--quiet", "--workers", str(workers)]
        args += ["--overwrite"] * overwrite + ["--combined", str(self.combined)] * combined
        code, _ = self._cli(*args)
        if code == 0:
            self.trained_from, self.complete, self.consistent = src, True, True
        self._changed(self.out, self.sidecar, self.combined)

    @rule(source=SOURCES, workers=st.sampled_from([1, 2]), overwrite=st.booleans(), after=st.integers(1, 6))
    def interrupted_balance(self, source: str, workers: int, overwrite: bool, after: int) -> None:
        """A balance stopped (KeyboardInterrupt) once ``after`` progress steps are done."""
        from synthaug import SyntheticAugmenter, UsageError
        from synthaug.testing import InterruptAfter

        src = self._source(source)
        if src is None:
            return
        augmenter = SyntheticAugmenter("classic", out_dir=self.out, workers=workers, overwrite=overwrite,
                                       progress=InterruptAfter(after))
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                augmenter.fit_resample(src)
        except KeyboardInterrupt:
            self.trained_from, self.complete, self.consistent = src, False, False
        except UsageError:
            pass
        else:
            self.trained_from, self.complete, self.consistent = src, True, True
        self._changed(self.out, self.sidecar)

    @precondition(lambda self: (self.out / "manifest.jsonl").exists() and self.trained_from is not None)
    @rule()
    def filter(self) -> None:
        code, _ = self._cli("filter", self.out, "--real", self.trained_from, "--features", "colour-texture", "--quiet")
        if code == 0:
            self.complete = False  # flagged images left OUT until the next balance
        self._changed(self.out, self.sidecar)

    @precondition(lambda self: SLOW)
    @rule(seed=st.integers(0, 3))
    def evaluate(self, seed: int) -> None:
        """``evaluate`` into one folder with the splits of another split root each time (tiny settings)."""
        root = self._source(str(seed))
        if root is None or not (root / "test").is_dir():
            return
        splits = {part: sorted(str(p.relative_to(root / part)) for p in (root / part).rglob("*.png"))
                  for part in ("train", "val", "test")}
        self.evaluated = splits
        spec = self.tmp / "splits.json"
        spec.write_text(json.dumps({"splits": [splits]}))
        self._cli("evaluate", self.data, "--out", self.tmp / "eval", "--splits-file", spec, "-g", "classic",
                  "--steps", "1", "--image-size", "16", "--no-plots", "--quiet", "--threads", "1")
        self._changed(self.tmp / "eval", spec)

    # -- invariants --------------------------------------------------------------------------
    def _records(self) -> list[dict]:
        manifest = self.out / "manifest.jsonl"
        if not manifest.exists():
            return []
        return [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]

    @invariant()
    def folders_manifest_and_plan_agree(self) -> None:
        records = self._records()
        listed = set()
        for r in records:
            path = (self.out / r["file"]).resolve()
            assert path.is_relative_to(self.out.resolve()), f"manifest names a file outside OUT: {r['file']}"
            assert path.is_file(), f"listed but missing: {r['file']}"
            assert path.stat().st_size == r["bytes"] and _sha(path) == r["sha256"], f"changed: {r['file']}"
            listed.add(r["file"])
        assert len(listed) == len(records), "a file is listed twice"
        if not self.out.is_dir():
            return
        on_disk = {str(p.relative_to(self.out)) for p in self.out.glob("*/*.png")}
        if self.consistent:
            assert on_disk == listed, f"unlisted: {sorted(on_disk - listed)}"
        plan_file = self.out / "plan.json"
        if self.complete and plan_file.exists():
            planned = {k: v["synthetic"] for k, v in json.loads(plan_file.read_text())["classes"].items() if v["synthetic"]}
            per_class: dict[str, int] = {}
            for r in records:
                per_class[r["class"]] = per_class.get(r["class"], 0) + 1
            assert per_class == planned, f"manifest {per_class} != plan {planned}"

    def _held_out(self, root: Path) -> set[str]:
        held = [p for part in ("val", "test") for p in (root / part).rglob("*.png") if p.exists()]
        return {_sha(p) for p in held}

    @invariant()
    def no_synthetic_image_comes_from_held_out_images(self) -> None:
        if self.trained_from is None or self.trained_from == self.data:
            return
        held = self._held_out(self.trained_from)
        leaks = [r["file"] for r in self._records() if self.shas.get(Path(r["source"]).name) in held]
        assert not leaks, f"made from val/test images of {self.trained_from.name}: {leaks}"
        evaluated = getattr(self, "evaluated", None)
        if evaluated is not None:
            names = {Path(p).name for part in ("val", "test") for p in evaluated[part]}
            held_shas = {self.shas[n] for n in names if n in self.shas}
            for manifest in (self.tmp / "eval").rglob("manifest.jsonl"):
                for line in manifest.read_text().splitlines():
                    source = Path(json.loads(line)["source"]).name
                    assert self.shas.get(source) not in held_shas, f"evaluate trains on held-out {source}"

    @invariant()
    def one_image_has_one_identity(self) -> None:
        """No split root holds one image (by content, byte-identical copies included) in two of
        train/val/test, and the folder reader lists each file of DATA once (a link or hard link is
        the same file), under one label. Byte-identical copies that are distinct files are distinct
        samples to the readers (hashing every image at each read is too costly), but ``split``
        keeps them in one split and a balance refuses them across train and val/test."""
        from synthaug import Dataset, SynthaugError

        for root in sorted(self.tmp.glob("split-*")):
            parts = {part: {_sha(p) for p in (root / part).rglob("*.png") if p.exists()}
                     for part in ("train", "val", "test")}
            shared = (parts["train"] & (parts["val"] | parts["test"])) | (parts["val"] & parts["test"])
            assert not shared, f"{root.name} puts {len(shared)} image(s) in two splits"
        try:
            samples = list(Dataset.from_folder(self.data))
        except SynthaugError:  # refused with a message: allowed
            return
        files = {(st.st_dev, st.st_ino) for st in (Path(s.path).stat() for s in samples)}
        assert len(files) == len(samples), "the folder reader lists one file twice"

    @invariant()
    def every_reader_gives_the_same_pixels(self) -> None:
        import torch

        from synthaug import AugmentedDataset, Dataset, SynthaugError, load_image

        for root in (self.data, self.out):
            if not root.is_dir() or not any(root.glob("*/*.png")):
                continue
            try:
                dataset = Dataset.from_folder(root)
            except SynthaugError:  # e.g. one image under two labels, refused by design
                continue
            torch_items = AugmentedDataset(dataset).to_torch(image_size=None)
            for i in range(min(2, len(dataset))):
                sample = dataset[i]
                reference = np.asarray(load_image(sample.path))
                assert np.array_equal(np.asarray(sample.load()), reference), sample.path
                tensor = torch_items[i][0]
                pixels = (tensor * 255).round().to(dtype=torch.uint8).permute(1, 2, 0).numpy()
                assert np.array_equal(pixels, reference), f"torch adapter differs on {sample.path}"


@pytest.mark.slow
def test_search_operation_sequences() -> None:
    """Runs the machine with the selected profile (``ci`` by default; a failure prints the sequence)."""
    pytest.importorskip("torch")
    run_state_machine_as_test(SearchMachine, settings=settings.get_profile(PROFILE))

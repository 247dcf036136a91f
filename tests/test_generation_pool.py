"""--workers: classic generation in a process pool writes exactly what one process writes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from synthaug import SyntheticAugmenter
from synthaug._errors import InvalidParameterError
from synthaug._generation_pool import MIN_IMAGES, default_workers, use_pool
from synthaug._store import MANIFEST
from synthaug.testing import make_image_folder


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.png"))}


def _manifest(out: Path) -> list[dict]:
    """Manifest records in file order, without the wall-clock ``created`` field."""
    lines = (out / MANIFEST).read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "created"} for line in lines]


def _balance(data: Path, out: Path, workers: int) -> None:
    SyntheticAugmenter("classic", out_dir=out, random_state=3, workers=workers).fit_resample(data)


def test_two_workers_write_the_same_bytes_as_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from synthaug._generation_pool import GenerationPool

    data = make_image_folder(tmp_path / "data", {"a": 48, "b": 6, "c": 10}, size=24)
    _balance(data, tmp_path / "one", 1)
    pooled: list[str] = []
    original = GenerationPool.generate
    monkeypatch.setattr(GenerationPool, "generate", lambda self, c, *a: (pooled.append(c.name), original(self, c, *a))[1])
    _balance(data, tmp_path / "two", 2)
    assert pooled == ["b", "c"]  # the pool did the work
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert len(one) == (48 - 6) + (48 - 10) and one.keys() == two.keys()
    assert one == two
    assert _manifest(tmp_path / "one") == _manifest(tmp_path / "two")  # order included
    assert not list((tmp_path / "two").glob("manifest.part-*"))  # one writer, one manifest


def test_resume_with_workers_completes_the_same_run(tmp_path: Path) -> None:
    data = make_image_folder(tmp_path / "data", {"a": 48, "b": 4}, size=24)
    _balance(data, tmp_path / "one", 1)
    out = tmp_path / "two"
    _balance(data, out, 2)
    manifest = (out / MANIFEST).read_text().splitlines(keepends=True)
    (out / MANIFEST).write_text("".join(manifest[:5]) + manifest[5][:20])  # killed while appending
    for line in manifest[5:]:
        (out / json.loads(line)["file"]).unlink()
    _balance(data, out, 2)
    assert _files(out) == _files(tmp_path / "one")
    assert _manifest(out) == _manifest(tmp_path / "one")


def test_pool_only_for_parallel_generators_with_enough_work() -> None:
    from synthaug._default_plugins.classic import ClassicGenerator
    from synthaug._generator import Generator

    assert use_pool(ClassicGenerator(), 2, MIN_IMAGES)
    assert not use_pool(ClassicGenerator(), 1, 10_000)
    assert not use_pool(ClassicGenerator(), 2, MIN_IMAGES - 1)
    assert not use_pool(Generator(), 2, 10_000)
    assert 1 <= default_workers() <= 8
    with pytest.raises(InvalidParameterError, match="workers"):
        SyntheticAugmenter("classic", workers=0)


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_workers_exit_when_the_balance_process_is_killed(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    data = make_image_folder(tmp_path / "data", {"a": 400, "b": 4}, size=64)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "synthaug", "balance", str(data), "--out", str(out), "--quiet",
                             "--workers", "2"], stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    workers: list[int] = []
    while time.time() < deadline and len(workers) < 2 and proc.poll() is None:
        time.sleep(0.2)
        workers = _children(proc.pid)
    assert len(workers) == 2, "the pool did not start"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.2)
    for w in workers:  # reap if they became zombies of a reaper that is not us
        assert not Path(f"/proc/{w}").exists() or "Z" in Path(f"/proc/{w}/stat").read_text().split()[2]


def test_cli_rejects_zero_workers(tmp_path: Path) -> None:
    import subprocess
    import sys

    data = make_image_folder(tmp_path / "data", {"a": 4, "b": 2}, size=16)
    done = subprocess.run([sys.executable, "-m", "synthaug", "balance", str(data), "--out", str(tmp_path / "o"),
                           "--workers", "0"], capture_output=True, text=True)
    assert done.returncode == 2 and "--workers" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()


def test_a_large_concept_is_sent_to_the_workers_once_not_with_every_chunk(tmp_path: Path) -> None:
    """Cost per image must not grow with the class size: tasks carry a file name, not the
    concept's list of training images, and the shared folder is gone after the pool."""
    import pickle

    from synthaug._default_plugins.classic import ClassicGenerator
    from synthaug._generation_pool import GenerationPool
    from synthaug._generator import Concept

    data = make_image_folder(tmp_path / "data", {"a": 4}, size=16)
    big = Concept("a", "a", tuple(sorted((data / "a").iterdir())) * 2500)  # 10,000 training paths
    out = tmp_path / "out"
    sent: list[bytes] = []
    with GenerationPool(ClassicGenerator(), 2, out) as pool:
        submit = pool._executor.submit
        pool._executor.submit = lambda fn, *args: (sent.append(pickle.dumps(args)), submit(fn, *args))[1]
        written = list(pool.generate(big, list(range(40)), [f"a-{i}" for i in range(40)]))
        shared = Path(pool._shared.name)
        assert shared.is_dir()
    assert len(written) == 40 and len(sent) == 5
    assert max(len(s) for s in sent) < 2000 < len(pickle.dumps(big))
    assert not shared.exists()
    for seed, item in enumerate(written):
        assert item.seed == seed
        assert hashlib.sha256((out / item.image.file).read_bytes()).hexdigest() == item.image.sha256


def test_every_concept_object_gets_its_own_file(tmp_path: Path) -> None:
    """Two concepts with one name (a changed image list) and a third never share a file, so a
    worker's loaded concept is never taken for another."""
    import pickle

    from synthaug._default_plugins.classic import ClassicGenerator
    from synthaug._generation_pool import GenerationPool
    from synthaug._generator import Concept

    first, changed, other = Concept("a", "a", ("x.png",)), Concept("a", "a", ("y.png",)), Concept("b", "b", ("z.png",))
    with GenerationPool(ClassicGenerator(), 2, tmp_path / "out") as pool:
        paths = [pool._concept_file(c) for c in (first, changed, other, first)]
        assert len(set(paths[:3])) == 3 and paths[3] == paths[0]
        for concept, path in zip((first, changed, other), paths):
            with open(path, "rb") as fh:
                assert pickle.load(fh) == concept

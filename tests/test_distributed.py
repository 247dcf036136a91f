"""Multi-process balancing through accelerate: identical output, resume after a kill, rank errors."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthaug._distributed import shard
from synthaug._store import Store

from .test_augmenter import check_output
from .test_plugins import fake_distribution

pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow


def images_by_name(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*.png"))}


def balance(data: Path, out: Path, *extra: str, processes: int = 1, env: dict | None = None, **kw):
    cmd = [sys.executable, "-m", "synthaug", "balance", str(data), "--out", str(out), "--quiet", *extra]
    if processes > 1:
        cmd += ["--processes", str(processes)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})}, **kw)


def test_shard_is_a_partition() -> None:
    items = list(range(11))
    parts = [shard(items, r, 3) for r in range(3)]
    assert sorted(sum(parts, [])) == items and parts[1] == [1, 4, 7, 10]


def test_two_processes_write_exactly_what_one_does(skin_lesions: Path, tmp_path: Path) -> None:
    targets = ["--target", "dermatofibroma=45", "--target", "vascular_lesion=44", "--target", "actinic_keratosis=53"]
    one = balance(skin_lesions, tmp_path / "one", *targets)
    assert one.returncode == 0, one.stderr
    two = balance(skin_lesions, tmp_path / "two", *targets, processes=2)
    assert two.returncode == 0, two.stderr
    assert images_by_name(tmp_path / "one") == images_by_name(tmp_path / "two")
    assert len(images_by_name(tmp_path / "two")) == 15 + 14 + 3
    records = check_output(tmp_path / "two", {"dermatofibroma": 15, "vascular_lesion": 14, "actinic_keratosis": 3})
    assert [r["index"] for r in records if r["class"] == "dermatofibroma"] == list(range(15))  # merged in order
    assert not list((tmp_path / "two").glob("manifest.part-*"))
    strip = lambda r: {k: v for k, v in r.items() if k != "created"}  # noqa: E731
    one_records = [strip(json.loads(x)) for x in (tmp_path / "one" / "manifest.jsonl").read_text().splitlines()]
    assert [strip(r) for r in records] == one_records


def test_killed_two_process_run_resumes_to_the_plan(skin_lesions: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "synthaug", "balance", str(skin_lesions), "--out", str(out), "--quiet",
           "--target", "dermatofibroma=200", "--target", "vascular_lesion=200", "--processes", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        written = sum(len(p.read_bytes().splitlines()) for p in out.glob("manifest*.jsonl")) if out.exists() else 0
        if written >= 60:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(out.glob("manifest.part-*.jsonl")), "no per-rank manifest part was written"
    done = balance(skin_lesions, out, "--target", "dermatofibroma=200", "--target", "vascular_lesion=200", processes=2)
    assert done.returncode == 0, done.stderr
    check_output(out, {"dermatofibroma": 170, "vascular_lesion": 170})
    assert not list(out.glob("manifest.part-*"))


FAILING = """
    import os
    import synthaug
    from synthaug._default_plugins.classic import ClassicGenerator

    class FailsOnRankOne(ClassicGenerator):
        name = "fails-on-rank-one"
        def generate(self, concept, seeds):
            if os.environ.get("RANK") == "1":
                raise RuntimeError("disk on fire")
            yield from super().generate(concept, seeds)

    @synthaug.hookimpl
    def register_generators(register):
        register(FailsOnRankOne)
"""


def test_an_error_on_one_rank_stops_the_run_naming_it(tiny_folder: Path, tmp_path: Path) -> None:
    fake_distribution(tmp_path / "site", "failing-plugin", "failing_plugin", FAILING)
    done = balance(tiny_folder, tmp_path / "out", "--generator", "fails-on-rank-one", processes=2,
                   env={"PYTHONPATH": str(tmp_path / "site")})
    assert done.returncode != 0
    assert "rank 1 failed during generating" in done.stderr and "disk on fire" in done.stderr


def test_merge_parts_orders_and_drops_missing_files(tiny_folder: Path, tmp_path: Path) -> None:
    import synthaug

    out = tmp_path / "out"
    synthaug.upsample(tiny_folder, out)
    store = Store(out)
    lines = (out / "manifest.jsonl").read_text().splitlines()
    (out / "manifest.jsonl").write_text("\n".join(lines[:5]) + "\n")
    (out / "manifest.part-1.jsonl").write_text("\n".join(reversed(lines[5:])) + "\n")
    (out / json.loads(lines[-1])["file"]).unlink()
    assert store.merge_parts() == len(lines) - 6
    merged = store.records()
    assert [(r["class"], r["index"]) for r in merged] == sorted((r["class"], r["index"]) for r in merged)


def test_two_processes_fit_and_generate_tiny_sd15_like_one(skin_lesions: Path, tiny_sd15_model: Path,
                                                           tmp_path: Path) -> None:
    """accelerate (2 ranks, gloo on the CPU) on the tiny SD1.5 model: same adapters, same images."""
    from synthaug._plugins import list_generators

    if "lora-sd15" not in list_generators():
        pytest.skip("the lora-sd15 plugin is not installed (pip install -e plugins/synthaug-lora-sd15)")
    args = ["--generator", "lora-sd15", "-o", f"base_model={tiny_sd15_model}", "-o", "max_train_steps=2",
            "-o", "resolution=32", "-o", "num_inference_steps=2", "-o", "validation_images=0",
            "--target", "dermatofibroma=33", "--target", "vascular_lesion=32"]
    one = balance(skin_lesions, tmp_path / "one", *args)
    assert one.returncode == 0, one.stderr
    two = balance(skin_lesions, tmp_path / "two", *args, processes=2)
    assert two.returncode == 0, two.stderr
    assert images_by_name(tmp_path / "one") == images_by_name(tmp_path / "two")
    check_output(tmp_path / "two", {"dermatofibroma": 3, "vascular_lesion": 2})
    from safetensors.torch import load_file

    for concept in ("dermatofibroma", "vascular_lesion"):  # each concept fitted once, on one rank
        a = load_file(tmp_path / "one.synthaug" / "fits" / "lora-sd15" / concept / "pytorch_lora_weights.safetensors")
        b = load_file(tmp_path / "two.synthaug" / "fits" / "lora-sd15" / concept / "pytorch_lora_weights.safetensors")
        assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)

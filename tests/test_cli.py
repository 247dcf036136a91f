"""The command line: plans, bad input (exit 2, one line, no traceback), kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from .test_augmenter import check_output
from .test_splits import tree_digest


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synthaug", *args], capture_output=True, text=True, timeout=timeout)


def test_plan_json_on_skin_lesions(skin_lesions: Path) -> None:
    done = cli("plan", str(skin_lesions), "--json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["policy"] == {"name": "minority-upsampling", "strategy": "not majority"}
    classes = plan["classes"]
    assert classes["nevus"]["synthetic"] == 0
    for name, c in classes.items():
        if name != "nevus":
            assert c["synthetic"] == 400 - c["real"] and c["final"] == 400

    share = json.loads(cli("plan", str(skin_lesions), "--policy", "proportion", "--share", "0.6", "--json").stdout)
    assert {k: v["synthetic"] for k, v in share["classes"].items()} == {
        k: round(v["real"] * 0.6 / 0.4) for k, v in classes.items()
    }
    minority = json.loads(cli("plan", str(skin_lesions), "--strategy", "minority", "--json").stdout)
    filled = {k for k, v in minority["classes"].items() if v["synthetic"]}
    assert filled == {"dermatofibroma", "vascular_lesion"}  # the two rarest (30 each)


def test_plan_with_targets(tiny_folder: Path) -> None:
    done = cli("plan", str(tiny_folder), "--target", "c=5", "--target", "b=6", "--json")
    assert done.returncode == 0, done.stderr
    assert {k: v["synthetic"] for k, v in json.loads(done.stdout)["classes"].items()} == {"a": 0, "b": 0, "c": 2}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["balance", "{data}", "--out", "{out}", "--generator", "nope"], "unknown generator 'nope'"),
        (["balance", "{data}", "--out", "{out}", "-o", "colour=1"], "unknown option 'colour'"),
        (["balance", "{data}", "--out", "{out}", "-o", "hue=lots"], "option hue='lots'"),
        (["plan", "{data}", "--policy", "proportion", "--share", "1.5"], "share=1.5"),
        (["plan", "{data}", "--target", "c=-4"], "--target='c=-4'"),
        (["plan", "{data}", "--target", "c=1"], "at least the 3 real"),
        (["plan", "{data}", "--strategy", "most"], "strategy='most'"),
        (["plan", "{data}/nope"], "does not exist"),
        (["balance", "{data}", "--out", "{data}/x"], "inside the data folder"),
        (["plan", "{data}", "--share", "0.5"], "only with --policy proportion"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], needle: str, tiny_folder: Path, tmp_path: Path) -> None:
    before = tree_digest(tiny_folder)
    done = cli(*(a.format(data=tiny_folder, out=tmp_path / "out") for a in args))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert needle in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert tree_digest(tiny_folder) == before


def test_debug_shows_traceback(tiny_folder: Path, tmp_path: Path) -> None:
    done = cli("--debug", "balance", str(tiny_folder), "--out", str(tmp_path / "o"), "--generator", "nope")
    assert done.returncode != 0 and "Traceback" in done.stderr


def test_messy_folder_is_balanced_with_listed_skips(tiny_folder: Path, tmp_path: Path) -> None:
    (tiny_folder / "b" / "zero.png").write_bytes(b"")
    (tiny_folder / "b" / "corrupt.jpg").write_bytes(b"\xff\xd8garbage")
    Image.new("CMYK", (32, 32), (10, 200, 30, 0)).save(tiny_folder / "c" / "cmyk.jpg")
    (tiny_folder / ".DS_Store").write_bytes(b"\0\0")
    (tiny_folder / "a" / ".DS_Store").write_bytes(b"\0\0")
    (tiny_folder / "empty").mkdir()
    before = tree_digest(tiny_folder)
    done = cli("balance", str(tiny_folder), "--out", str(tmp_path / "out"), "--json")
    assert done.returncode == 0, done.stderr
    assert "skipped 2 unreadable image file(s)" in done.stderr and "zero.png" in done.stderr
    assert "no usable image: empty" in done.stderr
    assert "Traceback" not in done.stderr
    counts = json.loads(done.stdout)["counts"]
    assert counts["c"] == {"real": 4, "synthetic": 8, "total": 12} and counts["empty"]["total"] == 0
    strict = cli("balance", str(tiny_folder), "--out", str(tmp_path / "out2"), "--strict")
    assert strict.returncode == 2 and "2 unreadable image file(s)" in strict.stderr
    assert tree_digest(tiny_folder) == before


def test_help_lists_commands() -> None:
    done = cli("--help")
    assert done.returncode == 0
    for command in ("plan", "balance", "split", "plugins", "generators", "demo"):
        assert command in done.stdout


@pytest.mark.slow
def test_kill_and_resume_balance_on_skin_lesions(skin_lesions: Path, tmp_path: Path) -> None:
    """Kill a running balance with SIGKILL twice, rerun, and check every file."""
    out = tmp_path / "out"
    before = tree_digest(skin_lesions)
    cmd = [sys.executable, "-m", "synthaug", "balance", str(skin_lesions), "--out", str(out), "--quiet",
           "--strategy", "minority"]
    manifest = out / "manifest.jsonl"
    for kill_after in (100, 400):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if manifest.exists() and manifest.stat().st_size and len(manifest.read_bytes().splitlines()) >= kill_after:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "balance finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert kill_after <= len(manifest.read_bytes().splitlines()) < 740
    done = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    plan = json.loads((out / "plan.json").read_text())
    expected = {k: v["synthetic"] for k, v in plan["classes"].items()}
    assert sum(expected.values()) == 740
    check_output(out, expected)
    again = cli("balance", str(skin_lesions), "--out", str(out), "--json", "--strategy", "minority")
    assert again.returncode == 0, again.stderr
    assert len(manifest.read_bytes().splitlines()) == 740
    assert tree_digest(skin_lesions) == before


def _tree_state(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(folder.rglob("*")) if p.is_file() and ".synthaug" not in p.parts}


def test_balance_then_upsample_reuses_the_run(tiny_folder: Path, tmp_path: Path) -> None:
    """One policy factory and one default: the API reuses what the CLI wrote with its defaults, and back."""
    import synthaug
    from synthaug._cli import main

    out = tmp_path / "out"
    assert main(["balance", str(tiny_folder), "--out", str(out), "--quiet", "--workers", "1"]) == 0
    before = _tree_state(out)
    assert sum(1 for name in before if name.endswith(".png")) == (12 - 6) + (12 - 3)
    result = synthaug.upsample(tiny_folder, out)  # raised OutputConflictError (differs in: policy) before
    assert result.counts()["c"]["synthetic"] == 9
    assert _tree_state(out) == before  # nothing regenerated or rewritten
    from synthaug._policy import make_policy

    assert make_policy().describe() == make_policy("upsample", strategy="auto").describe()
    assert main(["balance", str(tiny_folder), "--out", str(out), "--quiet", "--strategy", "auto"]) == 0
    assert _tree_state(out) == before

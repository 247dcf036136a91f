"""One writer per output folder: a second writer is refused naming the first; a dead one's lock is recovered."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthaug._augmented import AugmentedDataset
from synthaug._errors import OutputLockedError
from synthaug._outdir import CLAIM_ENV, LOCK_INFO_FILE, claim_output

from . import slow_cli

HOLD = """
import sys, time
from synthaug._outdir import claim_output
with claim_output(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(out: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_two_balance_runs_on_one_out(tiny_folder: Path, tmp_path: Path) -> None:
    """The issue's repro: two runs started shortly apart. The second exits 2 naming the first;
    the first completes with exactly the planned images, each listed once."""
    out = tmp_path / "out"
    first = slow_cli.start("balance", str(tiny_folder), "--out", str(out), "-g", "slow-classic", "-q", delay=0.5)
    try:
        assert slow_cli.wait_for_lines(out / "manifest.jsonl", 1, first) >= 1
        second = slow_cli.run("balance", str(tiny_folder), "--out", str(out), "-g", "slow-classic", "-q")
        assert second.returncode == 2, second.stderr
        assert "another synthaug run" in second.stderr and f"pid {first.pid}" in second.stderr
        assert "balance" in second.stderr  # the holder's command line
    finally:
        assert first.wait(timeout=120) == 0, first.stderr.read()
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(records) == len({r["file"] for r in records}) == 6 + 9  # a=12: b +6, c +9
    assert len(AugmentedDataset.from_folders(tiny_folder, out).synthetic) == 15


def test_lock_of_a_killed_process_is_recovered(tiny_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    holder = _holder(out, 60)
    with pytest.raises(OutputLockedError, match=f"pid {holder.pid}"):
        with claim_output(out):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (out / LOCK_INFO_FILE).is_file()  # the dead holder's description is left behind
    done = slow_cli.run("balance", str(tiny_folder), "--out", str(out), "-q")
    assert done.returncode == 0, done.stderr
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 15
    assert not (out / LOCK_INFO_FILE).exists()  # released at the end of the run


def test_claim_is_reentrant_and_inherited_by_workers(tmp_path: Path) -> None:
    """What a ``--processes N`` run relies on: the launching process claims once, and the
    workers it starts (which see CLAIM_ENV) do not lock again, while strangers still are refused."""
    out = tmp_path / "out"
    with claim_output(out):
        with claim_output(out):  # re-entrant in one process
            pass
        assert str(out.resolve()) in os.environ[CLAIM_ENV]
        worker = subprocess.run([sys.executable, "-c", HOLD, str(out), "0"], capture_output=True, text=True)
        assert worker.returncode == 0 and "held" in worker.stdout, worker.stderr
        stranger = subprocess.run([sys.executable, "-c", HOLD, str(out), "0"], capture_output=True, text=True,
                                  env={k: v for k, v in os.environ.items() if k != CLAIM_ENV})
        assert stranger.returncode != 0 and "OutputLockedError" in stranger.stderr
    assert CLAIM_ENV not in os.environ or str(out.resolve()) not in os.environ[CLAIM_ENV]
    assert not out.exists()  # created by the claim and left empty: removed again


def test_second_writer_waits_for_nothing(tiny_folder: Path, tmp_path: Path) -> None:
    """A refused writer fails at once (no waiting on the lock) and writes nothing."""
    out = tmp_path / "out"
    holder = _holder(out, 30)
    try:
        start = time.monotonic()
        done = slow_cli.run("balance", str(tiny_folder), "--out", str(out))
        assert done.returncode == 2 and f"pid {holder.pid}" in done.stderr, done.stderr
        with pytest.raises(OutputLockedError):
            with claim_output(out):
                pass
        assert time.monotonic() - start < 30
        assert sorted(p.name for p in out.iterdir()) == [".synthaug.lock", LOCK_INFO_FILE]
    finally:
        holder.kill()
        holder.wait()

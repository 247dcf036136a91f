"""Run the real ``synthaug`` command line in a subprocess with a deliberately slow generator.

``slow-classic`` is the built-in ``classic`` generator sleeping ``SLOW_DELAY`` seconds per
image, registered in-process, so a test can signal, kill or race a run while it writes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = '''
import os, sys, time, types
from synthaug._default_plugins.classic import ClassicGenerator
from synthaug._hookspecs import hookimpl
from synthaug._plugins import register_module

class SlowClassic(ClassicGenerator):
    name = "slow-classic"
    def generate(self, concept, seeds):
        for item in super().generate(concept, seeds):
            time.sleep(float(os.environ.get("SLOW_DELAY", "0.05")))
            yield item

plugin = types.ModuleType("slow_plugin")
plugin.register_generators = hookimpl(lambda register: register(SlowClassic))
register_module(plugin)
from synthaug._cli import main
sys.exit(main(sys.argv[1:]))
'''


def start(*args: str, delay: float = 0.05) -> subprocess.Popen:
    """Start ``synthaug ARGS`` (with ``slow-classic`` available) in a subprocess."""
    env = {**os.environ, "SLOW_DELAY": str(delay)}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def run(*args: str, delay: float = 0.0, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``synthaug ARGS`` (with ``slow-classic`` available) to the end."""
    env = {**os.environ, "SLOW_DELAY": str(delay)}
    return subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def wait_for_lines(manifest: Path, n: int, proc: subprocess.Popen, timeout: float = 60) -> int:
    """Wait until ``manifest`` has at least ``n`` lines (or the process ended); return the count."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.is_file() and len(manifest.read_bytes().splitlines()) >= n:
            break
        time.sleep(0.02)
    return len(manifest.read_bytes().splitlines()) if manifest.is_file() else 0

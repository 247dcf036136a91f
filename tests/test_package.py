"""Packaging promises: light import, flat namespace, the demo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import synthaug


def test_import_is_light() -> None:
    code = (
        "import sys, json, synthaug; "
        "print(json.dumps(sorted(m for m in ('torch','tensorflow','diffusers','numpy','keras','transformers','rich') "
        "if m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_flat_namespace_exports_resolve() -> None:
    for name in synthaug.__all__:
        assert getattr(synthaug, name) is not None, name
    assert issubclass(synthaug.UsageError, synthaug.SynthaugError)
    assert issubclass(synthaug.InvalidParameterError, ValueError)
    assert issubclass(synthaug.MissingDependencyError, ImportError)
    import synthaug._errors as errors

    exceptions = {n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, Exception)
                  and v.__module__ == errors.__name__}
    assert exceptions <= set(synthaug.__all__), sorted(exceptions - set(synthaug.__all__))  # the whole tree


def test_missing_dependency_message_names_pip_command() -> None:
    from synthaug import require

    try:
        require("definitely_missing_module_xyz", purpose="testing")
    except synthaug.MissingDependencyError as exc:
        assert "pip install definitely_missing_module_xyz" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("no error")
    try:
        require("tensorflow.not_a_module")
    except synthaug.MissingDependencyError as exc:
        assert 'pip install "synthaug[tf]"' in str(exc)


def test_demo_balances_digits(tmp_path: Path) -> None:
    from synthaug._demo import DEMO_KEEP, run_demo

    plan, result, grid = run_demo(tmp_path / "demo")
    counts = result.counts()
    majority = max(c["real"] for c in counts.values())
    assert all(c["total"] == majority for c in counts.values())
    for digit, kept in DEMO_KEEP.items():
        assert counts[digit]["real"] == kept and counts[digit]["synthetic"] == majority - kept
    assert grid.is_file() and grid.stat().st_size > 1000
    assert len((tmp_path / "demo" / "synthetic" / "manifest.jsonl").read_text().splitlines()) == plan.synthetic_total


def test_plugin_helpers_are_public() -> None:
    """Plugin authors get ``load_image`` and ``require`` from the flat namespace (the rule that
    plugins/ and examples/ import no private module is in tests/test_architecture.py)."""
    assert synthaug.load_image.__module__ == "synthaug._imageio" and callable(synthaug.require)

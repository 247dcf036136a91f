"""Packaging: every plugin has an extra, and the built wheels install and run in a fresh venv.

The slow test runs ``make dist`` into a temporary folder, installs the wheels (not editable)
into a new virtual environment from those files only (``pip --isolated --no-index
--find-links``), and runs the CLI there. Nothing is downloaded: the heavy dependencies (torch,
diffusers, ...) are those of the running environment, seen through a folder of links that
leaves out every synthaug distribution (``venv --system-site-packages`` would show the base
interpreter's packages, not this virtual environment's).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import tomllib

from synthaug.testing import make_image_folder

REPO = Path(__file__).resolve().parent.parent


def _plugins() -> dict[str, dict]:
    """``{distribution name: its [project] table}`` for every plugin under plugins/."""
    out = {}
    for path in sorted(REPO.glob("plugins/*/pyproject.toml")):
        project = tomllib.loads(path.read_text())["project"]
        out[project["name"]] = project
    return out


def _extra_name(distribution: str) -> str:
    return distribution.removeprefix("synthaug-")


def _expected_generators() -> set[str]:
    names = {"classic"}
    for project in _plugins().values():
        names |= set(project.get("entry-points", {}).get("synthaug", {}))
    return names


def test_every_plugin_has_an_extra_and_declares_its_synthaug_range() -> None:
    core = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = core["optional-dependencies"]
    plugins = _plugins()
    assert len(plugins) >= 4
    for name, project in plugins.items():
        extra = _extra_name(name)
        assert extra in extras, f"pyproject.toml has no extra [{extra}] installing the plugin {name}"
        assert any(req.startswith(f"{name}>=") and "<" in req for req in extras[extra]), extras[extra]
        pins = [d for d in project["dependencies"] if d.split("[")[0].split(">")[0].strip() == "synthaug"]
        assert pins and ">=" in pins[0] and "<" in pins[0], f"{name} must declare the synthaug range it supports"
    sd_plugins = {_extra_name(n) for n in plugins if "-sd" in n or n.endswith("textual-inversion")}
    assert sd_plugins <= set(extras["sd"][0].split("[")[1].rstrip("]").split(","))


def _dependency_view(target: Path) -> Path:
    """Links to this environment's installed packages, minus every synthaug distribution."""
    site = Path(sysconfig.get_paths()["purelib"])
    target.mkdir()
    for entry in site.iterdir():
        stem = entry.name.split("-")[0].lower()  # a package, module or dist-info name
        if stem == "synthaug" or stem.startswith("synthaug_") or entry.name.startswith("__editable__") \
                or entry.suffix == ".pth":
            continue  # any synthaug distribution (also other checkouts' editable plugins)
        (target / entry.name).symlink_to(entry)
    return target


def _run(args: list[str], env: dict[str, str], cwd: Path, timeout: int = 300) -> str:
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.slow
def test_built_wheels_install_and_run_in_a_fresh_venv(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("`make` is not installed")
    pytest.importorskip("build", reason="`make dist` needs the build package (dev extra)")
    pytest.importorskip("twine", reason="`make dist` needs twine (dev extra)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    dist = tmp_path / "dist"
    _run(["make", "--no-print-directory", "dist", f"PY={sys.executable}", f"DIST_DIR={dist}"], env, REPO)
    wheels = sorted(p.name for p in dist.glob("*.whl"))
    assert len(wheels) == len(_plugins()) + 1 and len(list(dist.glob("*.tar.gz"))) == len(wheels), wheels

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], env, tmp_path)
    python = venv / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env, tmp_path)
    (Path(purelib.strip()) / "_shared_dependencies.pth").write_text(f"{_dependency_view(tmp_path / 'deps')}\n")
    extras = ",".join(_extra_name(n) for n in _plugins())
    _run([sys.executable, "-m", "pip", "--python", str(python), "--isolated", "install", "--no-index",
          "--only-binary", ":all:", "--find-links", str(dist), f"synthaug[{extras}]"], env, tmp_path)

    bin_dir = venv / "bin"
    where = _run([str(python), "-c", "import synthaug, synthaug_lora_sd15; "
                  "print(synthaug.__file__); print(synthaug_lora_sd15.__file__)"], env, tmp_path)
    assert all(line.startswith(str(venv)) for line in where.split()), where
    listed = json.loads(_run([str(bin_dir / "synthaug"), "generators", "--json"], env, tmp_path))
    assert set(listed) == _expected_generators()
    plugins = _run([str(bin_dir / "synthaug"), "plugins"], {**env, "COLUMNS": "200"}, tmp_path)
    for name in _plugins():
        assert name in plugins and "error" not in plugins.lower(), plugins

    data = make_image_folder(tmp_path / "data", {"a": 6, "b": 3})
    _run([str(bin_dir / "synthaug"), "balance", str(data), "--out", str(tmp_path / "synthetic"), "-g", "classic",
          "--quiet"], env, tmp_path)
    assert len(list((tmp_path / "synthetic" / "b").glob("*.png"))) == 3
    # The HTML templates are package data: the report renders from the installed wheel.
    _run([str(bin_dir / "synthaug"), "report", str(data), str(tmp_path / "synthetic"), "--out",
          str(tmp_path / "report"), "--quiet"], env, tmp_path)
    assert "<svg" in (tmp_path / "report" / "report.html").read_text()

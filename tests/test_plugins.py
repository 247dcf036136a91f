"""Plugin discovery: built-ins through the hook, entry points, broken plugins, duplicates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import synthaug
from synthaug import DuplicateGeneratorError, UnknownGeneratorError
from synthaug._plugins import PluginLoadWarning, get_registry, reset_plugins
from synthaug.testing import check_generator

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "synthaug-blend"


def fake_distribution(site: Path, dist: str, module: str, source: str, entry_name: str | None = None) -> None:
    """Make ``site`` look like an installed distribution with a ``synthaug`` entry point."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[synthaug]\n{entry_name or module} = {module}\n")


GOOD = """
    import synthaug

    class Dup(synthaug.Generator):
        name = "{name}"
        description = "test generator"
        def fit(self, concepts, work_dir, *, progress=None): pass
        def generate(self, concept, seeds):
            from PIL import Image
            for s in seeds:
                yield Image.new("RGB", (4, 4), (s % 256, 0, 0))

    @synthaug.hookimpl
    def register_generators(register):
        register(Dup)
"""


@pytest.fixture()
def isolated_plugins(monkeypatch: pytest.MonkeyPatch):
    reset_plugins()
    yield monkeypatch
    reset_plugins()


def test_builtin_classic_uses_the_same_hook() -> None:
    registry = get_registry()
    builtin = [p for p in registry.plugins if p.builtin]
    assert builtin and "classic" in builtin[0].generators
    assert synthaug.get_generator("classic").name == "classic"
    with pytest.raises(UnknownGeneratorError, match="unknown generator 'nope'; available generators: .*classic"):
        synthaug.get_generator("nope")


def test_broken_plugin_is_reported_and_others_work(tmp_path: Path, isolated_plugins) -> None:
    fake_distribution(tmp_path / "site", "broken-plugin", "broken_plugin", "raise ImportError('needs libfoo')\n")
    fake_distribution(tmp_path / "site", "good-plugin", "good_plugin", GOOD.format(name="good-one"))
    isolated_plugins.syspath_prepend(str(tmp_path / "site"))
    with pytest.warns(PluginLoadWarning, match="broken_plugin.*needs libfoo"):
        registry = get_registry()
    broken = next(p for p in registry.plugins if p.name == "broken_plugin")
    assert broken.distribution == "broken-plugin" and broken.version == "1.2.3"
    assert "ImportError: needs libfoo" in broken.error
    assert "good-one" in registry.generators and "classic" in registry.generators


def test_duplicate_names_are_an_error_naming_both(tmp_path: Path, isolated_plugins) -> None:
    fake_distribution(tmp_path / "site", "dist-one", "dup_one", GOOD.format(name="dup"))
    fake_distribution(tmp_path / "site", "dist-two", "dup_two", GOOD.format(name="dup"))
    isolated_plugins.syspath_prepend(str(tmp_path / "site"))
    with pytest.warns(PluginLoadWarning, match="registered by several plugins"):
        registry = get_registry()
    with pytest.raises(DuplicateGeneratorError) as info:
        registry.get("dup")
    assert "dist-one" in str(info.value) and "dist-two" in str(info.value)
    assert registry.get("classic").name == "classic"


def run_cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "synthaug", *args], capture_output=True, text=True, env=env, timeout=120)


def test_cli_lists_broken_plugin_and_classic_still_balances(tmp_path: Path, tiny_folder: Path) -> None:
    site = tmp_path / "site"
    fake_distribution(site, "broken-plugin", "broken_plugin", "import this_module_does_not_exist\n")
    env = {"PYTHONPATH": str(site)}
    listing = run_cli("plugins", "--json", env_extra=env)
    assert listing.returncode == 0, listing.stderr
    rows = {p["name"]: p for p in json.loads(listing.stdout)}
    assert "ModuleNotFoundError" in rows["broken_plugin"]["error"]
    table = run_cli("plugins", env_extra=env)
    assert "broken" in table.stdout and "classic" in table.stdout
    done = run_cli("balance", str(tiny_folder), "--out", str(tmp_path / "out"), "--quiet", env_extra=env)
    assert done.returncode == 0, done.stderr
    assert "failed to load" in done.stderr  # one warning line, not a traceback
    assert "Traceback" not in done.stderr
    assert len((tmp_path / "out" / "manifest.jsonl").read_text().splitlines()) == 15


@pytest.mark.slow
def test_pip_install_example_plugin_adds_its_generator(tmp_path: Path) -> None:
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--target", str(target), str(EXAMPLE)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr
    listing = run_cli("generators", "--json", env_extra={"PYTHONPATH": str(target)})
    assert listing.returncode == 0, listing.stderr
    generators = json.loads(listing.stdout)
    assert generators["blend"]["plugin"] == "synthaug-blend"
    schema = run_cli("generators", "blend", env_extra={"PYTHONPATH": str(target)})
    assert "min_alpha" in schema.stdout and "Smallest weight" in schema.stdout


def test_example_plugin_passes_check_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    from synthaug_blend import BlendGenerator

    check_generator(BlendGenerator, {"size": 16})


def test_check_generator_catches_batch_dependent_output() -> None:
    from PIL import Image

    class Leaky(synthaug.Generator):
        name = "leaky"
        description = "images depend on the batch"

        def fit(self, concepts, work_dir, *, progress=None) -> None:
            pass

        def generate(self, concept, seeds):
            for i, seed in enumerate(seeds):
                yield Image.new("RGB", (4, 4), ((seed + len(seeds)) % 256, i, 0))

    with pytest.raises(AssertionError, match="differs alone vs in a batch"):
        check_generator(Leaky)


UNDECORATED = GOOD.format(name="plain-one").replace("    @synthaug.hookimpl\n", "")  # a plain function, no marker


COMMANDS = """
    import click
    import synthaug

    @synthaug.hookimpl
    def register_commands(cli):
        @cli.command("hello")
        @click.argument("name")
        def hello(name):
            '''Greet NAME.'''
            click.echo(f"hello {name}, generators: {','.join(synthaug.list_generators())}")
"""

HIJACK = """
    import click
    import synthaug

    @synthaug.hookimpl
    def register_commands(cli):
        @cli.command("balance")
        def balance():
            click.echo("hijacked")
"""


@pytest.fixture()
def fresh_cli(isolated_plugins):
    from synthaug._cli import cli

    cli.forget_plugin_commands()
    yield isolated_plugins
    reset_plugins()
    cli.forget_plugin_commands()


def test_undecorated_hook_function_does_not_register(tmp_path: Path, isolated_plugins) -> None:
    fake_distribution(tmp_path / "site", "plain-plugin", "plain_plugin", UNDECORATED)
    isolated_plugins.syspath_prepend(str(tmp_path / "site"))
    isolated_plugins.setenv("SYNTHAUG_LOAD_PLUGINS", "plain_plugin")
    registry = get_registry()
    plain = next(p for p in registry.plugins if p.name == "plain_plugin")
    assert plain.error is None and plain.generators == []
    assert "plain-one" not in registry.generators and "classic" in registry.generators


def test_builtin_commands_arrive_through_the_hook(fresh_cli) -> None:
    from synthaug._cli import BUILTIN_COMMANDS, cli
    from synthaug._plugins import get_plugin_manager

    cli.list_commands(None)  # type: ignore[arg-type]  # collects the commands
    impls = {i.plugin_name for i in get_plugin_manager().hook.register_commands.get_hookimpls()}
    assert set(BUILTIN_COMMANDS) <= impls
    assert {"plan", "balance", "demo", "split", "evaluate", "report", "filter", "html", "plugins",
            "generators"} <= set(cli.commands)


def test_third_party_command_plugin(tmp_path: Path, fresh_cli, capsys: pytest.CaptureFixture[str]) -> None:
    from synthaug._cli import main

    fake_distribution(tmp_path / "site", "hello-plugin", "hello_plugin", COMMANDS)
    fresh_cli.syspath_prepend(str(tmp_path / "site"))
    fresh_cli.setenv("SYNTHAUG_LOAD_PLUGINS", "hello_plugin")
    assert main(["hello", "world"]) == 0
    assert capsys.readouterr().out == "hello world, generators: classic\n"
    assert main(["plugins", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["hello_plugin"]["commands"] == ["hello"] and rows["hello_plugin"]["error"] is None


def test_command_plugin_cannot_replace_a_command(tmp_path: Path, fresh_cli, capsys: pytest.CaptureFixture[str]) -> None:
    from synthaug._cli import main

    fake_distribution(tmp_path / "site", "hijack-plugin", "hijack_plugin", HIJACK)
    fake_distribution(tmp_path / "site", "hello-plugin", "hello_plugin", COMMANDS)
    fresh_cli.syspath_prepend(str(tmp_path / "site"))
    fresh_cli.setenv("SYNTHAUG_LOAD_PLUGINS", "hijack_plugin,hello_plugin")
    assert main(["balance", "--help"]) == 0
    captured = capsys.readouterr()
    assert "hijacked" not in captured.out and "--generator" in captured.out
    assert "hijack_plugin" in captured.err and "would replace the command(s) balance" in captured.err
    assert main(["hello", "you"]) == 0  # the other plugin's command still works
    assert capsys.readouterr().out.startswith("hello you")

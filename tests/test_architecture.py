"""The layer rules of docs/architecture.md, checked on the source: no import cycle, lower
layers never import upper ones, plugins and examples use only public synthaug names.

The import graph is read with :mod:`ast` (every ``import`` statement, including those inside
functions; those under ``if TYPE_CHECKING:`` are left out since they never run), so the check
needs no extra package.
"""

from __future__ import annotations

import ast
import graphlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
LOWER = ("synthaug.store", "synthaug.policy", "synthaug.dataset", "synthaug.outdir")
UPPER = ("synthaug.augmenter", "synthaug.cli", "synthaug.evaluate")
#: The layers of docs/architecture.md, bottom first; a module imports only from its layer or below.
LAYERS = (
    "errors _optional _imageio _paths progress hookspecs _version",
    "dataset hf_input probe policy outdir store splitting splits generator options",
    "plugins subgroups concepts inputs generation generation_pool distributed augmenter augmented combined "
    "conformance adapters diffusion "
    "default_plugins quality.features",
    "quality evaluate html_report demo",
    "cli evaluate.cli html_report.cli report_cli __main__ testing",
)


def layer_of(module: str) -> int | None:
    """The index in :data:`LAYERS` of ``module`` (its longest listed prefix), or None for the package."""
    rest = module.removeprefix("synthaug.")
    best: tuple[int, int] | None = None
    for index, names in enumerate(LAYERS):
        for name in names.split():
            if rest == name or rest.startswith(name + "."):
                if best is None or len(name) > best[0]:
                    best = (len(name), index)
    return None if best is None else best[1]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child
            stack.append(child)


def imported_modules(path: Path, name: str, known: set[str]) -> set[str]:
    """The modules ``path`` (module ``name``) imports, resolved against the ``known`` modules."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join(anchor + ([base] if base else []))
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            found.add(sub if sub in known else base)
    resolved = set()
    for target in found:  # "synthaug.quality.metrics.x" -> the deepest known module
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            resolved.add(target)
    return resolved


def import_graph(root: Path, package_glob: str) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in sorted(root.glob(package_glob)) if "__pycache__" not in p.parts}
    known = set(files) | {m.rpartition(".")[0] for m in files}
    return {name: imported_modules(path, name, known) for name, path in files.items()}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(SRC, "synthaug/**/*.py")


def _parents(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_the_graph_sees_lazy_and_relative_imports(graph: dict[str, set[str]]) -> None:
    assert "synthaug.cli.common" in graph["synthaug.cli.balance"]  # from .common import ...
    assert "synthaug.augmenter" in graph["synthaug.cli.balance"]  # from ..augmenter import ... inside a function
    assert "synthaug.policy" in graph["synthaug.cli.common"]


def test_no_import_cycle(graph: dict[str, set[str]]) -> None:
    # Importing a submodule runs its packages' __init__ first, so an edge into a package's
    # own __init__ from inside that package is how packages work, not a cycle.
    edges = {name: {t for t in targets if t not in _parents(name)} for name, targets in graph.items()}
    try:
        tuple(graphlib.TopologicalSorter(edges).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_a_cycle_is_found() -> None:
    with pytest.raises(graphlib.CycleError):
        tuple(graphlib.TopologicalSorter({"a": {"b"}, "b": {"c"}, "c": {"a"}}).static_order())


@pytest.mark.parametrize("lower", LOWER)
def test_lower_layers_never_import_upper_ones(graph: dict[str, set[str]], lower: str) -> None:
    reachable, todo = set(), [lower]
    while todo:  # transitively: store -> x -> augmenter counts too
        for target in graph.get(todo.pop(), ()):
            if target not in reachable and target not in _parents(lower):
                reachable.add(target)
                todo.append(target)
    bad = sorted(m for m in reachable if any(m == u or m.startswith(u + ".") for u in UPPER))
    assert not bad, f"{lower} imports (directly or through others) the upper layer(s) {bad}"


def test_layers_hold(graph: dict[str, set[str]]) -> None:
    unplaced = sorted(m for m in graph if m != "synthaug" and layer_of(m) is None)
    assert unplaced == [], "place these modules in LAYERS and docs/architecture.md"
    upward = sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets
                    if None not in (layer_of(m), layer_of(t)) and layer_of(t) > layer_of(m))  # type: ignore[operator]
    assert upward == []


def _private_imports(roots: list[Path]) -> dict[str, list[str]]:
    """``{file: [private synthaug names it imports]}`` for the Python files under ``roots``."""
    out: dict[str, list[str]] = {}
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names = []
            for node in _import_nodes(tree):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                    f"{node.module}.{a.name}" for a in node.names] if node.module and not node.level else []
                names += [m for m in modules if m.startswith("synthaug.") and
                          any(part.startswith("_") for part in m.split(".")[1:-1] + [m.split(".")[1]])]
            if names:
                out[path.relative_to(root).as_posix()] = sorted(set(names))
    return out


def test_private_import_finder_finds_them(tmp_path: Path) -> None:
    (tmp_path / "plug.py").write_text("import synthaug\nfrom synthaug.diffusion import x\n"
                                      "def f():\n    from synthaug._optional import require\n"
                                      "    import synthaug._imageio\n")
    (tmp_path / "clean.py").write_text("import synthaug\nfrom synthaug import hookimpl\n")
    assert _private_imports([tmp_path]) == {"plug.py": ["synthaug._imageio", "synthaug._optional.require"]}


def test_plugins_and_examples_use_only_public_synthaug_names() -> None:
    roots = sorted([*REPO.glob("plugins/*/src"), *REPO.glob("examples/*/src")])
    assert roots and _private_imports(roots) == {}


def test_cli_modules_never_import_the_cli_package(graph: dict[str, set[str]]) -> None:
    """Command modules get their helpers from synthaug.cli.common, never back from synthaug.cli;
    only the callers of its entry point ``main`` (``__main__``, and ``testing``'s end-to-end
    check) import the package."""
    callers = {"synthaug.__main__", "synthaug.testing"}
    bad = sorted(m for m, targets in graph.items() if m.startswith("synthaug.") and m != "synthaug.cli"
                 and "synthaug.cli" in targets and m not in callers)
    assert bad == []


def test_old_module_paths_still_work_with_a_warning() -> None:
    import importlib
    import sys

    import synthaug

    for old, new, name in (("synthaug.splits", "synthaug.splitting", "split_dataset"),
                           ("synthaug.quality.report", "synthaug.quality.assessment", "quality_report"),
                           ("synthaug.report_cli", "synthaug.cli.quality", "report_cmd")):
        sys.modules.pop(old, None)
        with pytest.warns(DeprecationWarning, match=old.replace(".", r"\.")):
            module = importlib.import_module(old)
        assert getattr(module, name) is getattr(importlib.import_module(new), name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert synthaug.split_dataset is importlib.import_module("synthaug.splitting").split_dataset


def test_a_policy_is_one_file(tiny_folder: Path, tmp_path: Path) -> None:
    """The policy example of docs/architecture.md, run: one class, one file, passed as policy=."""
    from collections.abc import Mapping
    from typing import Any

    import synthaug

    class DoubleRarest(synthaug.Policy):
        def describe(self) -> dict[str, Any]:
            return {"name": "double-rarest"}

        def synthetic_counts(self, counts: Mapping[str, int]) -> dict[str, int]:
            rarest = min(counts, key=counts.get)
            return {rarest: counts[rarest]}

    result = synthaug.SyntheticAugmenter("classic", DoubleRarest(), out_dir=tmp_path / "out").fit_resample(tiny_folder)
    assert {k: v["synthetic"] for k, v in result.counts().items()} == {"a": 0, "b": 0, "c": 3}
    assert len(list((tmp_path / "out" / "c").glob("*.png"))) == 3


def test_no_module_imports_a_deprecated_path(graph: dict[str, set[str]]) -> None:
    deprecated = {"synthaug.splits", "synthaug.quality.report", "synthaug.report_cli"}
    assert {m: sorted(t & deprecated) for m, t in graph.items() if t & deprecated} == {}

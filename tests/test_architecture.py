"""The layer rules of docs/architecture.md, checked on the source: no import cycle, lower
layers never import upper ones, plugins and examples use only public synthaug names.

The import graph is read with :mod:`ast` (every ``import`` statement, including those inside
functions; those under ``if TYPE_CHECKING:`` are left out since they never run), so the check
needs no extra package.
"""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
LOWER = ("synthaug._store", "synthaug._policy", "synthaug._dataset", "synthaug._outdir")
UPPER = ("synthaug._augmenter", "synthaug._cli", "synthaug._evaluate")
#: The layers of docs/architecture.md, bottom first; a module imports only from its layer or below.
LAYERS = (
    "_errors _optional _imageio _paths _progress _hookspecs _version _atomic _lazy _usercache",
    "_dataset _inputcheck _hf_input _probe _policy _outdir _store _splitting _generator _options _metadata _confine "
    "_artifacts _fingerprint",
    "_plugins _parameters _features _feature_cache _extractors _learned_features _subgroups _concepts _inputs _generation _generation_pool _distributed _augmenter "
    "_augmented _combined _conformance _adapters diffusion _default_plugins",
    "_quality _evaluate _html_report _demo",
    "_cli __main__ testing",
)
#: The public faces: plugins, examples and plugin tests import these modules of synthaug only.
FACES = ("synthaug", "synthaug.diffusion", "synthaug.testing")


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
    for target in found:  # "synthaug._quality.metrics.x" -> the deepest known module
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
    assert "synthaug._cli.common" in graph["synthaug._cli.balance"]  # from .common import ...
    assert "synthaug._augmenter" in graph["synthaug._cli.balance"]  # from ..augmenter import ... inside a function
    assert "synthaug._policy" in graph["synthaug._cli.common"]


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


def _non_face_imports(roots: list[Path]) -> dict[str, list[str]]:
    """``{file: [synthaug modules other than the public faces it imports]}`` under ``roots``."""
    out: dict[str, list[str]] = {}
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            names = set()
            for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    modules = [a.name for a in node.names]
                elif node.module and not node.level:
                    # ``from synthaug import x``: x is a name of the face, or a submodule
                    modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names
                                               if node.module in ("synthaug", "synthaug.diffusion")
                                               and a.name.islower() and a.name in _SUBMODULES]
                else:
                    modules = []
                names.update(m for m in modules if m.split(".")[0] == "synthaug" and m not in FACES)
            if names:
                out[path.relative_to(root).as_posix()] = sorted(names)
    return out


_SUBMODULES = {p.stem for p in (SRC / "synthaug").iterdir()} | {p.stem for p in (SRC / "synthaug" / "diffusion").iterdir()}


def test_the_face_finder_finds_other_modules(tmp_path: Path) -> None:
    (tmp_path / "plug.py").write_text("import synthaug\nfrom synthaug.diffusion import add_lora\n"
                                      "def f():\n    from synthaug._optional import require\n"
                                      "    import synthaug._imageio\n    from synthaug import _store\n"
                                      "    from synthaug.diffusion._lora import add_lora\n")
    (tmp_path / "clean.py").write_text("import synthaug\nfrom synthaug import hookimpl\n"
                                       "from synthaug.testing import make_concepts\n")
    assert _non_face_imports([tmp_path]) == {"plug.py": ["synthaug._imageio", "synthaug._optional", "synthaug._store",
                                                         "synthaug.diffusion._lora"]}


def test_plugins_and_examples_use_only_the_three_faces() -> None:
    """Plugins (their code and their tests) and examples import ``synthaug``,
    ``synthaug.diffusion`` and ``synthaug.testing`` only: every other module is private."""
    roots = sorted([*REPO.glob("plugins/*/src"), *REPO.glob("plugins/*/tests"), *REPO.glob("examples/*/src")])
    assert roots and _non_face_imports(roots) == {}


@pytest.mark.parametrize("face", FACES)
def test_every_name_of_a_face_imports(face: str) -> None:
    """``docs/api.md``'s claim: every name in ``__all__`` of the three faces imports."""
    import importlib

    module = importlib.import_module(face)
    missing = [name for name in module.__all__ if getattr(module, name, None) is None]
    assert module.__all__ and missing == []


def test_every_other_module_is_private() -> None:
    """httpx-style: besides the faces (and ``__main__``), every module and package is ``_name``."""
    public = sorted(p.relative_to(SRC).as_posix() for p in (SRC / "synthaug").rglob("*.py")
                    if "__pycache__" not in p.parts and not any(part.startswith("_") for part in
                                                                 p.relative_to(SRC / "synthaug").with_suffix("").parts))
    assert public == ["synthaug/testing.py"]


def test_cli_modules_never_import_the_cli_package(graph: dict[str, set[str]]) -> None:
    """Command modules get their helpers from synthaug._cli.common, never back from synthaug._cli;
    only the callers of its entry point ``main`` (``__main__``, and ``testing``'s end-to-end
    check) import the package."""
    callers = {"synthaug.__main__", "synthaug.testing"}
    bad = sorted(m for m, targets in graph.items() if m.startswith("synthaug.") and m != "synthaug._cli"
                 and "synthaug._cli" in targets and m not in callers)
    assert bad == []


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

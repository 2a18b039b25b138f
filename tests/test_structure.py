"""The shape of the package (issue 15): small modules, no import cycle, and each space's cell counts inside it.

Module-level imports only (imports inside functions are deferred on purpose, usually to keep ``import`` light, and
cannot form an import-time cycle); ``if TYPE_CHECKING:`` blocks are skipped. A package's ``__init__`` is a node of
its own: ``from vnas_monai.spaces import X`` runs ``vnas_monai/spaces/__init__.py``.
"""

from __future__ import annotations

import ast
import re

from tests.conftest import REPO

PACKAGE = REPO / "vnas_monai"
MAX_LINES = 400


def _module_name(path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, object]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _top_level_imports(tree: ast.Module):
    todo = list(tree.body)
    while todo:
        node = todo.pop(0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            todo += node.body + node.orelse
        elif isinstance(node, ast.Try):
            todo += node.body + [n for h in node.handlers for n in h.body] + node.orelse + node.finalbody


def _graph() -> dict[str, set[str]]:
    """module -> the package modules its module-level imports execute."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        base = name.split(".") if is_pkg else name.split(".")[:-1]
        edges: set[str] = set()
        for node in _top_level_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    prefix = ".".join(base[: len(base) - node.level + 1])
                    mod = f"{prefix}.{node.module}" if node.module else prefix
                else:
                    mod = node.module or ""
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            for target in targets:
                # importing a.b.c runs a, a.b and a.b.c
                parts = target.split(".")
                for i in range(1, len(parts) + 1):
                    candidate = ".".join(parts[:i])
                    if candidate in modules and candidate != name:
                        edges.add(candidate)
        graph[name] = edges
    return graph


def _is_ancestor(pkg: str, module: str) -> bool:
    return module.startswith(pkg + ".")


def test_no_module_over_the_size_limit():
    big = {str(p.relative_to(REPO)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) >
           MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines (split them): {big}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The cycles a depth-first walk of ``graph`` closes (each as the path back to its first node)."""
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return cycles


def test_no_import_cycle():
    """No cycle among the package's modules, except the one Python defines away: a package's ``__init__`` importing
    its own submodules, which import siblings (the edge submodule -> its ancestor package is dropped, as the package
    is already in ``sys.modules`` while its ``__init__`` runs)."""
    graph = {m: {t for t in edges if not _is_ancestor(t, m)} for m, edges in _graph().items()}
    cycles = _cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles[:5])


def test_the_checker_finds_a_cycle(tmp_path, monkeypatch):
    """The cycle check can fail: two modules importing each other at module level form a cycle, a chain does not."""
    pkg = tmp_path / "vnas_monai"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from vnas_monai import b\n")
    (pkg / "b.py").write_text("from . import a\n")
    (pkg / "c.py").write_text("import vnas_monai.a\n")
    monkeypatch.setitem(globals(), "REPO", tmp_path)
    monkeypatch.setitem(globals(), "PACKAGE", pkg)
    graph = {m: {t for t in edges if not _is_ancestor(t, m)} for m, edges in _graph().items()}
    assert _cycles(graph) == [["vnas_monai.a", "vnas_monai.b", "vnas_monai.a"]]


def test_vnas_cell_counts_stay_in_their_space():
    """Nothing outside ``spaces/vnas`` knows that V-NAS has 16 + 5 cells."""
    # slices of the 16 encoder codes, not of a digest's hex string (``hexdigest()[:16]``)
    pattern = re.compile(r"NUM_ENCODER_CELLS|NUM_DECODER_BLOCKS|ENCODER_GROUPS|(?<!\))\[:16\]|(?<!\))\[16:\]")
    leaks = [str(p.relative_to(REPO)) for p in PACKAGE.rglob("*.py")
             if "spaces/vnas" not in p.as_posix() and pattern.search(p.read_text())]
    assert not leaks, f"V-NAS cell counts used outside vnas_monai/spaces/vnas: {leaks}"

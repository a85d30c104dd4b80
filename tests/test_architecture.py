"""The import rules of docs/architecture.md, checked over the code's own imports.

Every import counts: at the top of a module, inside a function (a lazy import hides a
dependency, it does not remove it) and under ``TYPE_CHECKING``. Each test names the
offending imports, so a failure says exactly which line to move.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. A package may import its own layer and the layers below it, never above.
LAYERS = ["fdb_backend", "core", "accounts", "workspaces", "realtime", "operations", "coditect"]
RANK = {name: rank for rank, name in enumerate(LAYERS)}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _imports(module: str, path: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import of ``path``, relative ones resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # `from pkg import module` imports pkg.module
                name = f"{base}.{alias.name}"
                yield node.lineno, name if name in MODULES else base


def _graph() -> dict[str, dict[str, int]]:
    """module -> {imported project module: line}"""
    graph: dict[str, dict[str, int]] = defaultdict(dict)
    for module, path in MODULES.items():
        for line, target in _imports(module, path):
            # `import a.b.c` also runs a and a.b: the nearest project module stands for it
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != module:
                graph[module].setdefault(target, line)
    return graph


GRAPH = _graph()


def test_every_layer_package_exists() -> None:
    for package in LAYERS:
        assert package in MODULES, package


def test_no_import_from_a_lower_layer_to_a_higher_one() -> None:
    upward = [
        f"{MODULES[module].relative_to(ROOT)}:{line} imports {target}"
        for module, targets in sorted(GRAPH.items())
        for target, line in sorted(targets.items())
        if RANK[target.split(".")[0]] > RANK[module.split(".")[0]]
    ]
    assert upward == [], "\n".join(upward)


def _cycle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    path: list[str] = []
    on_path: set[str] = set()
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in on_path:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in done:
                found = visit(nxt)
                if found:
                    return found
        on_path.discard(path.pop())
        done.add(node)
        return None

    return visit(start)


def _package_of(module: str) -> str:
    # A package is a folder: accounts.services.login belongs to accounts.services.
    path = MODULES[module]
    return module if path.name == "__init__.py" else module.rpartition(".")[0] or module


@pytest.mark.parametrize("level", ["module", "package"])
def test_no_import_cycle(level: str) -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, targets in GRAPH.items():
        for target in targets:
            if level == "module":
                graph[module].add(target)
                continue
            a, b = _package_of(module), _package_of(target)
            # A package's __init__ re-exporting its own modules is not a cycle between packages.
            if a != b and not b.startswith(a + ".") and not a.startswith(b + "."):
                graph[a].add(b)
    for start in sorted(graph):
        cycle = _cycle_from(start, graph)
        assert cycle is None, " -> ".join(cycle or [])


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: a lazy import from accounts into realtime is reported."""
    source = "def f():\n    from realtime import services\n"
    path = tmp_path / "x.py"
    path.write_text(source)
    found = [target for _, target in _imports("accounts.x", path)]
    assert "realtime.services" in found
    assert RANK["realtime"] > RANK["accounts"]

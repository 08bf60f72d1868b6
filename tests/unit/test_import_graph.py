"""The package's modules import one another without a circle, counting every import a module writes."""

from __future__ import annotations

import ast
from pathlib import Path

import airflow_tokens

PACKAGE = Path(airflow_tokens.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Return each module of the package with the package modules it imports anywhere in its text.

    Imports at the top, inside functions and under ``TYPE_CHECKING`` all count: a lazy import is still a
    dependency. ``from package import name`` counts as importing ``package.name`` where that is a module.
    """
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names if alias.name in modules)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    if target in modules:
                        edges.add(target)
                    elif node.module in modules:
                        edges.add(node.module)
        edges.discard(name)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return one circle through each module that lies on one (depth-first search)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_graph_sees_the_package() -> None:
    graph = import_graph()
    assert "airflow_tokens.hooks.base" in graph
    assert "airflow_tokens.flow" in graph["airflow_tokens.cache"]


def test_a_circle_is_found_when_there_is_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_module_of_the_package_imports_itself_through_others() -> None:
    assert cycles(import_graph()) == []


def test_the_core_never_imports_a_hook_and_provider_info_imports_no_hook() -> None:
    graph = import_graph()
    core = ("cache", "fetch", "flow", "request", "response", "retry", "sealing", "stores", "token", "memory")
    for name in core:
        module = f"airflow_tokens.{name}"
        if module in graph:
            assert not {target for target in graph[module] if ".hooks" in target}, module

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for target in graph[todo.pop()]:
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        return seen

    assert not {name for name in reachable("airflow_tokens.get_provider_info") if ".hooks" in name}

"""No import circle in ``stacks/``: sections are leaves, the root config composes them.

Every import counts, also one inside a function or under ``TYPE_CHECKING``: a circle
hidden that way still makes the modules read bottom-up and breaks when moved.
"""

from __future__ import annotations

import ast
from pathlib import Path

from stacks.config import PROJECT_ROOT


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same top-level package it imports (and their packages)."""
    root = package_dir.parent
    top = package_dir.name
    modules = {_module_name(p, root): p for p in sorted(package_dir.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets.add(base)
                targets |= {f"{base}.{alias.name}" for alias in node.names}
        edges: set[str] = set()
        for target in targets:
            if target != top and not target.startswith(top + "."):
                continue
            parts = target.split(".")
            for end in range(1, len(parts) + 1):
                candidate = ".".join(parts[:end])
                if candidate in modules and not name.startswith(candidate + "."):
                    edges.add(candidate)
        edges.discard(name)
        graph[name] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_stacks_has_no_import_circle() -> None:
    graph = import_graph(PROJECT_ROOT / "stacks")
    assert "stacks.schema.serving" in graph
    assert "stacks.schema.problems" in graph["stacks.config"]
    assert circles(graph) == []


def test_config_sections_never_import_the_root_config() -> None:
    graph = import_graph(PROJECT_ROOT / "stacks")
    importers = sorted(
        m
        for m, edges in graph.items()
        if m.startswith("stacks.schema") and "stacks.config" in edges
    )
    assert importers == []


def test_a_circle_hidden_in_a_function_or_type_checking_block_is_found(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "root.py").write_text("from pkg.sub.leaf import X\nfrom pkg.sub import other\n")
    (pkg / "sub" / "leaf.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.root import Y\nX = 1\n"
    )
    (pkg / "sub" / "other.py").write_text("def f():\n    from ..root import Y\n")
    (pkg / "alone.py").write_text("import pkg.sub.leaf\n")
    graph = import_graph(pkg)
    assert graph["pkg.sub.other"] == {"pkg.root"}
    assert circles(graph) == [["pkg.root", "pkg.sub.leaf", "pkg.sub.other"]]

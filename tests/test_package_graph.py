"""
The packages of ``revenge`` import each other without a loop.

Every import counts: at module level, inside functions and under
``TYPE_CHECKING`` alike, because a loop of type-only imports is still two
packages that cannot be understood (or moved) one without the other. The
allowed direction is docs/development.md's layout table; this test holds the
code to "no loop", the table to what the code does.

``python tests/test_package_graph.py`` prints the graph, one package a line.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "revenge"
LAYOUT = ROOT / "docs" / "development.md"
TABLE_HEADING = "## Who imports whom"


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _unit(module: str) -> str:
    """The package a module belongs to: ``revenge.x`` for anything under it."""
    return ".".join(module.split(".")[:2])


def _is_module(name: str, root: Path) -> bool:
    relative = Path(*name.split("."))
    return (root / relative).is_dir() or (root / relative).with_suffix(".py").is_file()


def _imported(path: Path, root: Path = ROOT) -> Iterator[str]:
    """Every module ``path`` imports, wherever the import is."""
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # "from revenge import providers" imports the module providers.
            for alias in node.names:
                if _is_module(f"{source}.{alias.name}", root):
                    yield f"{source}.{alias.name}"
                else:
                    yield source


def package_graph() -> dict[str, set[str]]:
    """Each package of revenge and the other packages it imports."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        unit = _unit(_module_name(path))
        targets = graph.setdefault(unit, set())
        for name in _imported(path):
            if name == "revenge" or name.startswith("revenge."):
                target = _unit(name)
                if target != unit:
                    targets.add(target)
    return graph


def loops(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected parts of ``graph`` with more than one package."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = lowest[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                lowest[node] = min(lowest[node], lowest[target])
            elif target in stack:
                lowest[node] = min(lowest[node], index[target])
        if lowest[node] == index[node]:
            part = []
            while True:
                member = stack.pop()
                part.append(member)
                if member == node:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _path_between(graph: Mapping[str, set[str]], start: str, goal: str) -> list[str]:
    routes = [[start]]
    seen = {start}
    while routes:
        route = routes.pop(0)
        for target in sorted(graph.get(route[-1], ())):
            if target == goal:
                return [*route, goal]
            if target not in seen:
                seen.add(target)
                routes.append([*route, target])
    return []


def test_no_package_imports_itself_through_others() -> None:
    graph = package_graph()
    found = loops(graph)
    shown = [
        " -> ".join(_path_between(graph, part[0], part[0]) or part) for part in found
    ]
    assert not found, "import loops between packages:\n" + "\n".join(shown)


def documented_floors() -> dict[str, tuple[int, set[str]]]:
    """docs/development.md's table: each package's floor and what it imports."""
    text = LAYOUT.read_text(encoding="utf-8")
    section = text.split(TABLE_HEADING, 1)[1].split("\n## ", 1)[0]
    table: dict[str, tuple[int, set[str]]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].isdigit():
            continue
        imports = {name.strip(" `") for name in cells[2].split(",")} - {"nothing"}
        table[cells[1].strip("`")] = (int(cells[0]), imports)
    return table


def test_the_documented_table_is_what_the_code_imports() -> None:
    graph = package_graph()
    table = documented_floors()
    assert set(table) == set(graph), "packages missing from or extra in the table"
    for package, targets in sorted(graph.items()):
        assert table[package][1] == targets, (
            f"{package} imports {sorted(targets)}; docs/development.md says "
            f"{sorted(table[package][1])}"
        )


def test_every_package_imports_only_lower_floors() -> None:
    table = documented_floors()
    for package, (floor, imports) in table.items():
        for target in imports:
            assert table[target][0] < floor, f"{package} (floor {floor}) imports {target}"


def test_the_reader_sees_imports_of_every_kind(tmp_path: Path) -> None:
    package = tmp_path / "revenge" / "things"
    package.mkdir(parents=True)
    (tmp_path / "revenge" / "__init__.py").write_text("")
    (tmp_path / "revenge" / "providers.py").write_text("")
    (package / "__init__.py").write_text("")
    module = package / "_thing.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "from revenge import providers\n"
        "from . import _other\n"
        "if TYPE_CHECKING:\n"
        "    from revenge.server._server import Server\n"
        "def late():\n"
        "    import revenge.cli\n"
    )
    seen = set(_imported(module, tmp_path))
    assert {"revenge.providers", "revenge.server._server", "revenge.cli"} <= seen
    assert "revenge.things" in seen  # the relative import, resolved


def test_loops_are_found() -> None:
    assert loops({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert loops({"a": {"b"}, "b": set()}) == []


def test_the_lowest_packages_import_no_other_package() -> None:
    graph = package_graph()
    # The floor everything stands on (docs/development.md, "Layout").
    assert graph["revenge.logs"] == set()
    assert graph["revenge.metrics"] <= {"revenge.logs"}


if __name__ == "__main__":
    for package, targets in sorted(package_graph().items()):
        sys.stdout.write(f"{package} -> {', '.join(sorted(targets)) or '(nothing)'}\n")
    for part in loops(package_graph()):
        sys.stdout.write(f"loop: {', '.join(part)}\n")

"""No import cycles among dvsnet's modules, counting the imports inside functions (docs/design.md §6).

An import inside a function hides a cycle from Python but not from a reader: each concept has one owner
module, and the modules import in one direction. The graph is read from the source (ast), every import
of a dvsnet module wherever it stands, except under `if TYPE_CHECKING:`; imports of the optional extras
(av, ray, matplotlib) are not dvsnet modules and do not count.
"""
import ast
from pathlib import Path

import dvsnet

PACKAGE = Path(dvsnet.__file__).parent
# cycles the modules named in them still hold, each to be broken by that module's owner
KNOWN: set[frozenset[str]] = set()  # cycles allowed to remain: none


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The module `name` lives in: itself, or the closest package or module above it."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def import_graph() -> dict[str, set[str]]:
    """module -> the dvsnet modules it imports anywhere in its source."""
    modules = module_names()
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        skipped = _type_checking_lines(tree)
        targets = set()
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skipped:
                continue
            if isinstance(node, ast.Import):
                targets.update(_owner(alias.name, modules) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(_owner(full if full in modules else base, modules))
        graph[name] = {t for t in targets if t and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == {frozenset("abc")}
    assert cycles({"a": {"b"}, "b": set()}) == set()
    assert "dvsnet.flow_mv" in import_graph()["dvsnet.flow"]  # read from the source: FLOWS builds "mv"


def test_no_new_import_cycle():
    assert cycles(import_graph()) <= KNOWN


def test_no_import_cycles():
    assert cycles(import_graph()) == set()

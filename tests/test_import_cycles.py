"""No import cycle in ktrdr_core: between modules, and between its parts even through in-function imports.

A cycle makes the import order matter and hides behind "import it inside the
function" workarounds; docs/architecture.md says which way dependencies go.
Two graphs are checked:

- modules, module-level imports only: what Python actually runs at import;
- parts (a subpackage such as ``ktrdr_core.rollout`` is one node, a top-level
  module another), every import counted, inside functions too. An import
  inside a function is fine for reaching a heavy or optional part (torch,
  fastapi) only when used, but not for reaching back up against the
  dependency direction.

``if TYPE_CHECKING:`` imports are left out of both: they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import ktrdr_core

PACKAGE = Path(ktrdr_core.__file__).resolve().parent


def module_name(path: Path, package: Path = PACKAGE, root: str = "ktrdr_core") -> str:
    parts = [root, *path.relative_to(package).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str, known: set[str], *, in_functions: bool) -> set[str]:
    """The ``known`` modules ``path`` (module ``name``) imports, outside functions or everywhere.

    ``from pkg import mod`` imports ``pkg.mod``; it counts as importing ``pkg``
    itself only when some name it takes is not a submodule (``from pkg import name``).
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def add(node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            return
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        submodules = {f"{base}.{alias.name}" for alias in node.names} & known
        found.update(submodules)
        if len(submodules) < len(node.names):
            found.add(base)

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                add(node)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                if in_functions:
                    visit(list(ast.iter_child_nodes(node)))  # type: ignore[arg-type]
            else:
                visit(list(ast.iter_child_nodes(node)))  # type: ignore[arg-type]

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return (found & known) - {name}


def _modules(package: Path, root: str) -> dict[str, Path]:
    return {module_name(path, package, root): path for path in sorted(package.rglob("*.py"))}


def import_graph(package: Path = PACKAGE, root: str = "ktrdr_core") -> dict[str, set[str]]:
    """Module -> the package's modules it imports at module level."""
    modules = _modules(package, root)
    known = set(modules)
    return {name: imports_of(path, name, known, in_functions=False) for name, path in modules.items()}


def part_of(module: str, root: str = "ktrdr_core") -> str:
    """``ktrdr_core.rollout.gates`` -> ``ktrdr_core.rollout``; a top-level module is its own part."""
    return ".".join(module.split(".")[:2]) if module != root else root


def part_graph(package: Path = PACKAGE, root: str = "ktrdr_core") -> dict[str, set[str]]:
    """Part -> the other parts it imports anywhere (inside functions too)."""
    modules = _modules(package, root)
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        source = part_of(name, root)
        targets = {part_of(target, root) for target in imports_of(path, name, known, in_functions=True)}
        graph.setdefault(source, set()).update(targets - {source})
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            # importing a.b.c runs a/__init__ and a/b/__init__ first: a package never counts as
            # importing its own submodule's parents
            if node.startswith(target + "."):
                continue
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := walk(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := walk(node)):
            return cycle
    return None


def test_find_cycle_sees_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_covers_the_package() -> None:
    graph = import_graph()
    assert "ktrdr_core.manager" in graph and "ktrdr_core.plugins" in graph["ktrdr_core.manager"]
    parts = part_graph()
    assert "ktrdr_core.ledger" in parts["ktrdr_core.rollout"]  # gates and auto-rollback read the ledger
    assert "ktrdr_core.service" in parts["ktrdr_core.cli"]  # `ktrdr serve` imports the app inside a function


def test_no_import_cycle_between_modules() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_import_cycle_between_parts_even_inside_functions() -> None:
    cycle = find_cycle(part_graph())
    assert cycle is None, "import cycle (counting imports inside functions): " + " -> ".join(cycle or [])


def test_a_cycle_hidden_in_a_function_is_found(tmp_path: Path) -> None:
    """A throw-away package whose two parts import each other, one of them only inside a function."""
    package = tmp_path / "toy"
    (package / "store").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "store" / "__init__.py").write_text("from toy.store.rows import Row\n")
    (package / "store" / "rows.py").write_text(
        "class Row: ...\n\ndef after_write() -> None:\n    from toy.policy import judge\n    judge()\n"
    )
    (package / "policy.py").write_text(
        "from typing import TYPE_CHECKING\n\nfrom toy.store import Row\n\n"
        "if TYPE_CHECKING:\n    from toy import nothing\n\ndef judge() -> Row:\n    return Row()\n"
    )
    assert find_cycle(import_graph(package, "toy")) is None  # at module level, no cycle
    assert find_cycle(part_graph(package, "toy")) == ["toy.policy", "toy.store", "toy.policy"]
    (package / "store" / "rows.py").write_text("class Row: ...\n")
    assert find_cycle(part_graph(package, "toy")) is None

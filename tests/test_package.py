"""Package-level properties: no import cycles inside mi_decode, and what the wheel must carry."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mi_decode"


def module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the mi_decode modules it imports (at any depth of the file: deferred imports count too,
    since they run on first call), from the source with ast."""
    modules = {module_name(path, package): path for path in package.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".")
                    base = base if is_package else base[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                targets = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle as a list of modules (first == last), or None; packages are not counted as importing their
    own submodules' importers (a package __init__ re-exporting submodules is not a cycle by itself)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            # Importing a submodule runs its package's __init__ first; that edge is implied, not a cycle.
            if node.startswith(target + "."):
                continue
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycles():
    graph = import_graph(PACKAGE)
    assert len(graph) > 30  # the walk found the package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_old_rank_cli_cycle_would_be_caught(tmp_path):
    """rank -> cli -> eval.cli -> ... -> rank was the cycle issue 9 removed; rebuild its shape and check."""
    package = tmp_path / "mi_decode"
    (package / "cli").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "rank.py").write_text("from .cli.types import positive_int\n")
    (package / "cli" / "__init__.py").write_text("")
    (package / "cli" / "types.py").write_text("from ..selection import select\n")
    (package / "selection.py").write_text("def select(): pass\nimport mi_decode.rank\n")
    assert find_cycle(import_graph(package)) == [
        "mi_decode.cli.types", "mi_decode.selection", "mi_decode.rank", "mi_decode.cli.types"
    ]  # fmt: skip


def eval_wing_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(core module, eval module) for every import of the evaluation wing by a module outside it, deferred
    imports included: dependencies point from mi_decode.eval to the core, never back."""
    wing = "mi_decode.eval"

    def in_wing(name: str) -> bool:
        return name == wing or name.startswith(wing + ".")

    return sorted(
        (module, target)
        for module, targets in graph.items()
        if not in_wing(module)
        for target in targets
        if in_wing(target)
    )


def test_the_core_does_not_import_the_eval_wing():
    found = eval_wing_imports(import_graph(PACKAGE))
    assert not found, "the core imports the eval wing: " + ", ".join(f"{a} -> {b}" for a, b in found)


def test_the_eval_wing_check_finds_a_deferred_import(tmp_path):
    """The shape issue 20 removed: the core rank-prompts command reading the eval wing's task files."""
    package = tmp_path / "mi_decode"
    (package / "cli").mkdir(parents=True)
    (package / "eval" / "data").mkdir(parents=True)
    for init in (package, package / "cli", package / "eval", package / "eval" / "data"):
        (init / "__init__.py").write_text("")
    (package / "eval" / "data" / "prompt_selection.py").write_text("from ...rank import rank\n")
    (package / "rank.py").write_text("def rank(): pass\n")
    (package / "cli" / "rank_prompts.py").write_text(
        "def run():\n    from ..eval.data.prompt_selection import TASKS\n"
    )
    (package / "cli" / "main.py").write_text("import mi_decode.eval\n")
    assert eval_wing_imports(import_graph(package)) == [
        ("mi_decode.cli.main", "mi_decode.eval"),
        ("mi_decode.cli.rank_prompts", "mi_decode.eval.data.prompt_selection"),
    ]


@pytest.mark.parametrize("suite", ["grounding", "summarization", "open_ended", "prompt_selection", "pope"])
def test_shipped_suites_live_inside_the_package(suite):
    import mi_decode
    from mi_decode.eval.suite import available_suites

    path = available_suites()[suite]
    assert Path(mi_decode.__file__).resolve().parent in path.parents  # the checkout's or the wheel's


def test_every_public_name_resolves_to_its_module():
    """mi_decode's names load lazily; each one in __all__ must resolve, to the object its module defines."""
    import importlib

    import mi_decode

    for name in mi_decode.__all__:
        value = getattr(mi_decode, name)
        if name != "__version__":
            module = importlib.import_module(f"mi_decode.{mi_decode._EXPORTS[name]}")
            assert value is getattr(module, name), name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mi_decode.nope  # noqa: B018
    assert set(mi_decode._EXPORTS) == set(mi_decode.__all__) - {"__version__"}

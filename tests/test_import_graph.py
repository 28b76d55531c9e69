"""No import circles between modules of catdog, lazy imports (inside functions) included.

A circle means two modules cannot be understood, tested or moved one without the other, and a lazy
import only hides it until run time. Every module under src/catdog is parsed with `ast`; every
`import catdog.x` / `from catdog.x import y` / `from . import y` at any depth is an edge to a module
(`from catdog.x import y` is an edge to catdog.x.y when that is a module, else to catdog.x; a package
maps to its __init__.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "catdog"


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is a catdog module (catdog.x.y.func -> catdog.x.y)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _edges(module: str, source: str, is_package: bool, modules: dict[str, Path]) -> set[str]:
    """The catdog modules that `source` (module `module`) imports, at any depth of the syntax tree."""
    targets = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x / from .y import z
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # `from catdog.x import y`: catdog.x.y if y is a module, else a name defined in catdog.x
            names = [f"{prefix}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                target = _resolve(name, modules)
                if target is not None and target != module:
                    targets.add(target)
    return targets


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _edges(name, path.read_text(), path.name == "__init__.py", modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index, low, on_stack, stack, result, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def _path_in(component: list[str], graph: dict[str, set[str]]) -> str:
    """One concrete loop through a circle, for the failure message: a -> b -> ... -> a."""
    members = set(component)
    start = component[0]
    parents, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    loop, node = [start], v
                    while node is not None:
                        loop.append(node)
                        node = parents[node]
                    return " -> ".join(reversed(loop))
                if w not in parents:
                    parents[w] = v
                    nxt.append(w)
        frontier = nxt
    return ", ".join(component)


def test_there_are_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 40 and "catdog.training.trainer" in graph  # the walk really saw the package
    cycles = find_cycles(graph)
    assert not cycles, "import circles:\n" + "\n".join(_path_in(c, graph) for c in cycles)


def test_the_checker_finds_a_lazy_circle():
    """The detector itself: an import inside a function, a relative import and a package import are edges."""
    modules = {"catdog": Path("__init__.py"), "catdog.run": Path("run.py"), "catdog.model": Path("__init__.py"),
               "catdog.model.registry": Path("registry.py"), "catdog.model.loading": Path("loading.py")}
    lazy = "def build():\n    from catdog.run import load_run\n    return load_run\n"
    assert _edges("catdog.model.registry", lazy, False, modules) == {"catdog.run"}
    assert _edges("catdog.model.registry", "from . import loading\n", False, modules) == {"catdog.model.loading"}
    assert _edges("catdog.model", "from .registry import get\n", True, modules) == {"catdog.model.registry"}
    assert _edges("catdog.run", "import catdog.model\nimport numpy\n", False, modules) == {"catdog.model"}
    assert _edges("catdog.run", "from catdog import __version__\n", False, modules) == {"catdog"}
    graph = {"catdog.model": {"catdog.model.registry"}, "catdog.model.registry": {"catdog.run"},
             "catdog.run": {"catdog.model"}, "catdog": {"catdog.run"}}
    cycles = find_cycles(graph)
    assert cycles == [["catdog.model", "catdog.model.registry", "catdog.run"]]
    assert _path_in(cycles[0], graph) == "catdog.model -> catdog.model.registry -> catdog.run -> catdog.model"

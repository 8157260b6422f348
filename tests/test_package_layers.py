"""The package's import structure (the layer order in bomrl/__init__.py's docstring), checked from the
source: every `import` statement, at module top or inside a function, is an edge.

- no module imports a layer above its own, and the peers (core | tabular, algos | envs) never
  import each other;
- no import cycle between modules;
- no private name (`_x`) imported from another module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "bomrl"

# package -> layer; a module imports only from its own package or from lower layers
LAYERS = {
    "errors": 0, "limits": 0, "registry": 0, "utils": 0, "": 0,
    "core": 1, "tabular": 1,
    "algos": 2, "envs": 2,
    "workflow": 3,
    "bench": 4, "checks": 4, "experiments": 4,
    "cli": 5,
}


def module_names(root: Path = SRC) -> dict[str, Path]:
    out = {}
    for path in root.rglob("*.py"):
        parts = ("bomrl",) + path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(name: str, modules) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_edges(modules: dict[str, Path]) -> list[tuple[str, str, int, list[str]]]:
    """(importer, imported module, line, imported names) for every bomrl import in the sources."""
    edges = []
    for mod, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:   # relative import
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if not target.startswith("bomrl"):
                    continue
                names = [a.name for a in node.names]
                submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
                for sub in submodules:
                    edges.append((mod, sub, node.lineno, []))
                plain = [n for n in names if f"{target}.{n}" not in modules]
                if plain or not submodules:
                    edges.append((mod, _resolve(target, modules), node.lineno, plain))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("bomrl"):
                        edges.append((mod, _resolve(alias.name, modules), node.lineno, []))
    return [e for e in edges if e[1] is not None and e[1] != e[0]]


def package(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else ""


PEERS = ({"core", "tabular"}, {"algos", "envs"})


def layer_violations(edges) -> list[str]:
    bad = []
    for src, dst, line, _ in edges:
        a, b = package(src), package(dst)
        if a == b or b == "":   # own package; the top-level package (a version string) is ground
            continue
        if a not in LAYERS or b not in LAYERS:
            bad.append(f"{src}:{line} imports {dst}: package not in the layer table")
        elif LAYERS[b] > LAYERS[a] or {a, b} in PEERS:
            bad.append(f"{src}:{line} imports {dst} ({b} is not below {a})")
    return bad


def cycles(edges) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for src, dst, _, _ in edges:
        graph.setdefault(src, set()).add(dst)
        graph.setdefault(dst, set())
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def private_imports(edges) -> list[str]:
    return [f"{src}:{line} imports {n} from {dst}" for src, dst, line, names in edges
            for n in names if n.startswith("_") and not n.startswith("__")]


@pytest.fixture(scope="module")
def edges():
    return import_edges(module_names())


def test_no_upward_or_peer_import(edges):
    assert layer_violations(edges) == []


def test_no_import_cycle(edges):
    assert cycles(edges) == []


def test_no_private_name_imported_across_modules(edges):
    assert private_imports(edges) == []


def test_every_package_has_a_layer():
    packages = {package(m) for m in module_names()}
    assert packages <= set(LAYERS), sorted(packages - set(LAYERS))


def test_the_checks_catch_what_they_look_for(tmp_path):
    """A planted package: an upward import, a peer import, a cycle and a private import are found."""
    root = tmp_path / "bomrl"
    for sub in ("core", "algos", "envs", "workflow"):
        (root / sub).mkdir(parents=True)
        (root / sub / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "core" / "a.py").write_text("from bomrl.workflow import b\n")                    # upward
    (root / "algos" / "c.py").write_text("def f():\n    from bomrl.envs.d import _g\n")      # peer, private
    (root / "envs" / "d.py").write_text("from bomrl.envs import e\n\ndef _g(): pass\n")
    (root / "envs" / "e.py").write_text("import bomrl.envs.d\n")                             # cycle d <-> e
    (root / "workflow" / "b.py").write_text("from bomrl.core.a import x\n")                  # cycle a <-> b
    found = import_edges(module_names(root))
    violations = layer_violations(found)
    assert any(v.startswith("bomrl.core.a:1 imports bomrl.workflow.b") for v in violations)
    assert any(v.startswith("bomrl.algos.c:2 imports bomrl.envs.d") for v in violations)
    assert sorted(cycles(found)) == [["bomrl.core.a", "bomrl.workflow.b"], ["bomrl.envs.d", "bomrl.envs.e"]]
    assert private_imports(found) == ["bomrl.algos.c:2 imports _g from bomrl.envs.d"]

"""trainer/'s modules import one another one way: no import cycle, module-level or inside functions."""

from __future__ import annotations

import ast

from conftest import REPO


def _graph() -> dict[str, set[str]]:
    modules = {p.stem: p for p in (REPO / "trainer").glob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "trainer":
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("trainer."):
                deps.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                deps.update(a.name.split(".")[1] for a in node.names if a.name.startswith("trainer."))
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def test_trainer_has_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
    assert "loop" in graph["pretrain"] and "loop" in graph["ppo"] and "loop" in graph["posttrain"]  # one loop

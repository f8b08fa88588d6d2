"""The loop's shape: its modules import each other without a circle, and only the driver (transitions)
calls the policy, so phases return instead of calling forward."""

import ast
import graphlib
from pathlib import Path

import airlab_manager.loop

PACKAGE = "airlab_manager.loop"
LOOP = Path(airlab_manager.loop.__file__).parent


def loop_imports() -> dict[str, set[str]]:
    """module -> the loop's modules it imports."""
    graph = {}
    for path in sorted(LOOP.glob("*.py")):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            if node.module == PACKAGE:
                found |= {alias.name for alias in node.names}
            elif node.module.startswith(f"{PACKAGE}."):
                found.add(node.module.split(".")[2])
        graph[path.stem] = found - {path.stem}
    return graph


def test_the_loop_package_has_no_import_circle():
    graph = loop_imports()
    assert {"policy", "transitions", "step", "coding", "runs"} <= set(graph)
    order = list(graphlib.TopologicalSorter(graph).static_order())  # CycleError names a circle
    assert order.index("step") < order.index("policy") < order.index("transitions")


def test_only_the_driver_imports_the_policy():
    importers = {module for module, imports in loop_imports().items() if "policy" in imports}
    assert importers == {"transitions"}

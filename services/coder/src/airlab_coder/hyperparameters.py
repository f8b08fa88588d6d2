"""Which searched hyperparameters a draft reads (params["name"] or params.get("name")): a searched one it
never reads would make the search change nothing, so it is sent back, or left out of the search."""

from __future__ import annotations

import ast
from collections.abc import Mapping

from airlab import domain


class WholeCounts(ast.NodeTransformer):
    """A count read without int() (`nn.Conv2d(1, params.get("channels", 8.0), 3)`) reaches PyTorch or
    scikit-learn as a float: wrapped in int() when the search space, or the name, says it is whole."""

    def __init__(self, space: Mapping[str, bool]) -> None:
        self.space = space
        self.repairs: list[str] = []
        self.cast: set[int] = set()

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if isinstance(node.func, ast.Name) and node.func.id in ("int", "float", "round", "str", "bool"):
            self.cast.update(id(a) for a in node.args)
        return self._wrap(node) if id(node) not in self.cast else self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        return self._wrap(node) if id(node) not in self.cast else self.generic_visit(node)

    def _wrap(self, node: ast.Call | ast.Subscript) -> ast.AST:
        name = param_read(node)
        whole = self.space.get(name, domain.counts_something(name)) if name else False
        if not whole:
            return self.generic_visit(node)
        self.repairs.append(f"`{name}` read without int(), a whole number: wrapped in int()")
        return ast.Call(ast.Name("int", ast.Load()), [node], [])


def unread_hyperparameters(tree: ast.Module, searched: list[str]) -> list[str]:
    """The searched hyperparameters the code never reads. Code that hands `params` itself to something
    (a template network, `**params`, a helper) is taken to read them all."""
    read = {name for node in ast.walk(tree) if isinstance(node, ast.expr) and (name := param_read(node))}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            handed = [a.value if isinstance(a, ast.Starred) else a for a in node.args]
            handed += [k.value for k in node.keywords]
            if any(isinstance(a, ast.Name) and a.id == "params" for a in handed):
                return []
    return [name for name in searched if name not in read]


def unread_problem(unread: list[str]) -> str:
    names = ", ".join(f"`{name}`" for name in unread)
    return (
        f"the idea searches {names}, but build_model never reads {'it' if len(unread) == 1 else 'them'}: "
        "every trial would run the same model. Read each with params.get(name, default) and use it"
    )


def param_read(node: ast.expr) -> str | None:
    """The hyperparameter an expression reads: `params["x"]` or `params.get("x", ...)` -> "x"."""
    key: ast.expr | None = None
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "params":
        key = node.slice
    elif (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
        and isinstance(node.func.value, ast.Name) and node.func.value.id == "params" and node.args
    ):  # fmt: skip
        key = node.args[0]
    return key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else None

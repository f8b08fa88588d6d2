"""Names in a draft's syntax tree: the dotted name a call or attribute spells
(`ensemble.RandomForestClassifier`), the names the draft binds itself, and whether an expression is a
plain constant."""

from __future__ import annotations

import ast

from airlab_coder.hyperparameters import param_read


def is_scalar(node: ast.expr) -> bool:
    """A single number, string or name, or one hyperparameter read with int()/float() around it."""
    if isinstance(node, ast.UnaryOp):
        node = node.operand
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("int", "float"):
        return len(node.args) == 1 and param_read(node.args[0]) is not None
    return isinstance(node, ast.Constant | ast.Name) or param_read(node) is not None


def dotted(node: ast.expr) -> list[str] | None:
    """`a.b.c` as ["a", "b", "c"]; None for anything that is not a plain name path."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def bound_names(tree: ast.Module) -> set[str]:
    """Every name the draft binds itself (definitions, arguments, assignments, loop and with targets)."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            bound.add(node.id)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
    return bound

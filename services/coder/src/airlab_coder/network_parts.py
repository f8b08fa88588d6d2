"""The parts a network draft uses but never wrote: a class it calls (asked for alone, its constructor's
arguments given, a block class passed to the template's CNN or UNet included) and a class without
forward() (forward asked for alone), and putting what was written back into the draft."""

from __future__ import annotations

import ast
from dataclasses import dataclass

from airlab_coder.api_index import load_index
from airlab_coder.ast_names import bound_names, dotted
from airlab_coder.hyperparameters import param_read
from airlab_coder.template_names import template_namespace

# How the template's CNN and UNet build a block class passed as `block=`.
BLOCK_ARGUMENTS = ("channels_in", "channels_out")


@dataclass(frozen=True)
class MissingClass:
    name: str
    # The constructor's arguments as the draft passes them, named after what they carry.
    arguments: tuple[str, ...]


def _argument_name(node: ast.expr, position: int) -> str:
    """`int(params.get("width", 64))` -> "width"; a plain name -> itself; otherwise argN."""
    if isinstance(node, ast.Name):
        return node.id
    reads = (param_read(inner) for inner in ast.walk(node) if isinstance(inner, ast.expr))
    read = next((name for name in reads if name), None)
    return read or f"arg{position}"


def missing_classes(code: str) -> list[MissingClass]:
    """Classes the draft calls (a capitalised name) but defines nowhere and no library or the template
    has."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    defined = bound_names(tree) | template_namespace("pytorch").defined
    index = load_index()
    found: dict[str, MissingClass] = {}

    def unknown(name: str) -> bool:
        return name[:1].isupper() and name not in defined | found.keys() and not index.homes(name, "torch")

    for node in ast.walk(tree):
        # `CNN(..., block=ResidualBlock)`: the template's networks build each block as block(in, out).
        if isinstance(node, ast.keyword) and node.arg == "block" and isinstance(node.value, ast.Name):
            if unknown(node.value.id):
                found[node.value.id] = MissingClass(node.value.id, BLOCK_ARGUMENTS)
            continue
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        name = node.func.id
        if not unknown(name):
            continue
        arguments = [_argument_name(a, i) for i, a in enumerate(node.args)]
        arguments += [k.arg for k in node.keywords if k.arg]
        unique = [a if arguments.index(a) == i else f"{a}_{i}" for i, a in enumerate(arguments)]
        found[name] = MissingClass(name, tuple(unique))
    return list(found.values())


def classes_without_forward(code: str) -> list[str]:
    """Network classes (subclasses of nn.Module) that define no forward method."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        and any((dotted(base) or [""])[-1] == "Module" for base in node.bases)
        and not any(isinstance(n, ast.FunctionDef) and n.name == "forward" for n in node.body)
    ]


def with_method(code: str, class_name: str, method: str) -> str:
    """The code with `method` (a def) added to the class; the code as it is when either cannot be read."""
    try:
        tree, added = ast.parse(code), ast.parse(method)
    except SyntaxError:
        return code
    functions = [n for n in ast.walk(added) if isinstance(n, ast.FunctionDef) and n.name == "forward"]
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name]
    if not functions or not classes:
        return code
    classes[0].body.append(functions[0])
    return ast.unparse(ast.fix_missing_locations(tree))


def method_named(node: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    return next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == name), None)

"""What a draft can name without importing it: the members of the job template it is written into (its
imports, functions and classes, each with the library member it stands for) and Python's builtins."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache

from airlab import domain
from airlab.job_templates import template_source
from airlab_coder.api_index import Member


def template_members(source: str) -> dict[str, Member]:
    """The public classes and functions a job template defines, with their arguments."""
    members = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef | ast.FunctionDef) or node.name.startswith("_"):
            continue
        function: ast.stmt | None = node
        if isinstance(node, ast.ClassDef):
            function = next(
                (n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None
            )
        if not isinstance(function, ast.FunctionDef):
            continue
        arguments = function.args
        names = [a.arg for a in arguments.args if a.arg != "self"]
        members[node.name] = Member(
            kind="class" if isinstance(node, ast.ClassDef) else "function",
            keywords=(*names, *(a.arg for a in arguments.kwonlyargs)),
            any_keyword=arguments.kwarg is not None,
            required=len(names) - len(arguments.defaults),
            positional=-1 if arguments.vararg else len(names),
        )
    return members


@dataclass(frozen=True)
class TemplateNamespace:
    """What a job template gives the code written into it, read from its source: the modules it imports
    (local name -> module path), every name it defines, and its public classes and functions."""

    imports: dict[str, str]
    defined: frozenset[str]
    members: dict[str, Member]
    # Hyperparameters the template itself reads (the training settings: TRAINING's keys).
    reads: frozenset[str] = frozenset()


@cache
def template_namespace(template: str) -> TemplateNamespace:
    source = template_source(domain.TEMPLATE_FILES[domain.template_of(template)])
    tree = ast.parse(source)
    imports: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                imports[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                imports[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    defined = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    } | {node.name for node in tree.body if isinstance(node, ast.ClassDef | ast.FunctionDef)}
    training = next(
        (
            node.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "TRAINING" for t in node.targets)
        ),
        None,
    )
    keys = training.keys if isinstance(training, ast.Dict) else []
    reads = {k.value for k in keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return TemplateNamespace(imports, frozenset(defined), template_members(source), frozenset(reads))

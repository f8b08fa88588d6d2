"""Checking a draft without running it: the build_model function (and a network's classes) out of a reply,
merged with what the previous attempt had, formatted and linted with ruff, and the template's registry
function for a family. A problem is said in words the model gets back."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys

from airlab import domain
from airlab.v1 import idea_pb2, loop_pb2
from airlab_coder.templates import BEGIN, END, RULES, SKLEARN, TemplateRules

# A traceback frame in the code the model writes (the line after it is the line that raised).
DRAFT_FRAME = re.compile(
    r'File ".*train\.py", line \d+, in (build_model|forward|__init__|augment|build_optimizer)'
)


# Undefined names, syntax errors and other mistakes that would only show when the code runs.
RUFF_RULES = "F821,F822,F823,F632,F701,F702,F704,F706,E9"


class CodeProblem(ValueError):
    """The code cannot be used; the message is fed back to the model."""


def with_model(source: str, function_code: str) -> str:
    start, end = source.index(BEGIN) + len(BEGIN), source.index(END)
    return f"{source[:start]}\n{function_code.strip()}\n\n\n{source[end:]}"


def code_block(text: str) -> str:
    """The first fenced code block of a reply, or the reply itself when it has none."""
    match = re.search(r"```(?:python|py)?\s*\n(.*?)```", text, flags=re.DOTALL)
    return match.group(1) if match else text


def extract_function(code: str, rules: TemplateRules = SKLEARN) -> str:
    """The build_model function (and imports, and for a network its classes and helpers) out of what the
    model wrote; anything else is left out, and a wrong signature or a forbidden call is a problem."""
    code = re.sub(r"^\s*```[a-z]*\s*$", "", code.strip(), flags=re.MULTILINE).strip()
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise CodeProblem(f"syntax error on line {exc.lineno}: {exc.msg}") from None
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "build_model"]
    signature = ", ".join(rules.args)
    if not functions:
        raise CodeProblem(f"the code must define `def build_model({signature}):`")
    args = [a.arg for a in functions[0].args.args]
    if tuple(args) != rules.args:
        raise CodeProblem(f"build_model must take ({signature}), not ({', '.join(args)})")
    definitions = (ast.ClassDef, ast.FunctionDef) if rules.keeps_definitions else ()
    kept = [
        n for n in tree.body
        if isinstance(n, ast.Import | ast.ImportFrom) or n is functions[0] or isinstance(n, definitions)
    ]  # fmt: skip
    # The script loads the data and trains; code that does either wastes the run (or cheats).
    for node in (inner for n in kept for inner in ast.walk(n)):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in rules.forbidden or name.startswith(("load_", "fetch_", "read_")):
                raise CodeProblem(
                    f"build_model calls {name}(): it must only build and return {rules.returns}; "
                    "the script loads the data, trains and scores"
                )
    return "\n\n".join(ast.get_source_segment(code, n) or "" for n in kept)


def class_named(code: str, name: str) -> str:
    """The class `name` (and the imports before it) out of what the model wrote; "" if it is not there."""
    code = re.sub(r"^\s*```[a-z]*\s*$", "", code.strip(), flags=re.MULTILINE).strip()
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return ""
    kept = [
        n for n in tree.body
        if isinstance(n, ast.Import | ast.ImportFrom) or (isinstance(n, ast.ClassDef) and n.name == name)
    ]  # fmt: skip
    if not any(isinstance(n, ast.ClassDef) for n in kept):
        return ""
    return "\n\n".join(ast.get_source_segment(code, n) or "" for n in kept)


def merged_reply(previous: str, reply: str, rules: TemplateRules) -> tuple[str, list[str]]:
    """A repair reply that holds only a corrected class (no build_model): the previous code with that class
    replaced or added, and a note saying so. Any other reply as it is."""
    if not (previous and rules.keeps_definitions):
        return reply, []
    try:
        old, new = ast.parse(previous), ast.parse(reply)
    except SyntaxError:
        return reply, []
    definitions = {n.name: n for n in new.body if isinstance(n, ast.ClassDef | ast.FunctionDef)}
    if not definitions or "build_model" in definitions:
        return reply, []
    if not any(isinstance(n, ast.FunctionDef) and n.name == "build_model" for n in old.body):
        return reply, []

    def segment(source: str, node: ast.stmt) -> str:
        return ast.get_source_segment(source, node) or ""

    imports = [segment(reply, n) for n in new.body if isinstance(n, ast.Import | ast.ImportFrom)]
    kept = [segment(previous, n) for n in old.body if getattr(n, "name", "") not in definitions]
    replaced = [segment(reply, n) for n in definitions.values()]
    note = f"the reply held only {', '.join(definitions)}: kept the earlier build_model"
    return "\n\n\n".join([*imports, *kept, *replaced]), [note]


def ruff_command() -> list[str]:
    found = shutil.which("ruff")
    return [found] if found else [sys.executable, "-m", "ruff"]


def format_code(code: str) -> str:
    """The code laid out by ruff (after a repair rewrote it from its syntax tree); as it is if ruff fails."""
    done = subprocess.run(
        [*ruff_command(), "format", "--no-cache", "--isolated", "--line-length", "110", "-"],
        input=code,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout if done.returncode == 0 and done.stdout.strip() else code


def smoke_summary(detail: str) -> str:
    """A smoke run's failure for the model: the error first, then the line of its code that raised it,
    then the rest of the log's tail."""
    lines = detail.splitlines()
    error = next((line for line in reversed(lines) if re.match(r"^\w*(Error|Exception)\b", line)), "")
    offending = ""
    for number, line in enumerate(lines[:-1]):
        if DRAFT_FRAME.search(line):
            offending = lines[number + 1].strip()
    head = [f"error: {error}"] if error else []
    if offending:
        head.append(f"raised by this line of your code: {offending}")
    return "\n".join([*head, "log:", detail[-1500:]]) if head else detail


def check_source(source: str) -> list[str]:
    """Compile it and let ruff look for undefined names and other errors; the problems found, if any."""
    try:
        compile(source, "train.py", "exec")
    except SyntaxError as exc:
        return [f"syntax error on line {exc.lineno}: {exc.msg}"]
    done = subprocess.run(
        [
            *ruff_command(),
            "check",
            "--no-cache",
            "--isolated",
            "--select",
            RUFF_RULES,
            "--output-format",
            "concise",
            "--stdin-filename",
            "train.py",
            "-",
        ],
        input=source,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode == 0:
        return []
    lines = [line for line in done.stdout.splitlines() if line.startswith("train.py:")]
    return lines or [done.stderr.strip() or "ruff failed"]


def registry_function(idea: idea_pb2.Idea | None, job: loop_pb2.JobConfig) -> str:
    """A build_model for the model family the idea names, from the template's registry; "" if none fits.
    Hyperparameters the model does not take are left out."""
    if not idea:
        return ""
    template = domain.template_of(job.template)
    family = domain.family_in(f"{idea.title} {idea.change}", job.task, template)
    return RULES[template].registry_function.format(name=family.template_model(job.task)) if family else ""

"""The coder agent: turns an idea into experiment code by editing a job template, checks it, smoke-runs
it on a small subset through the runner, and repairs it from the errors, a bounded number of times.

Every attempt is kept under research/<id>/code/<idea>/attempt-<n>/; the code that passed goes to
research/<id>/code/<idea>/final/, which is what experiments run."""

from __future__ import annotations

import ast
import asyncio
import hashlib
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, cast

from airlab import domain, experiments, techniques
from airlab.blobs import ArtifactStore, research_prefix
from airlab.job_templates import template_source
from airlab.llm.accounting import Budget
from airlab.llm.client import LLMClient
from airlab.llm.prompts import Prompt, render
from airlab.v1 import idea_pb2, loop_pb2, runner_pb2
from airlab_coder.api_check import review_calls, unread_problem
from airlab_coder.networks import (
    after_smoke_error,
    block_problems,
    classes_without_forward,
    dilated_padding,
    image_layers,
    missing_classes,
    out_of_place,
    params_passed_in,
    with_method,
)

# Beside the code that passed: where it came from (template, LLM attempt n, registry).
PROVENANCE_FILE = "provenance.json"
BEGIN, END = "# <airlab:model>", "# </airlab:model>"
MODULES = (
    "decomposition, ensemble, linear_model, naive_bayes, neighbors, neural_network, pipeline, preprocessing, "
    "svm, tree"
)
BASELINE = "baseline"


@dataclass(frozen=True)
class TemplateRules:
    """What the coder writes into one job template: the function's arguments, what it must not call, the
    prompts, and how the template's own registry builds a family (the registry path and the fallback)."""

    file: str
    args: tuple[str, ...]
    returns: str
    forbidden: frozenset[str]
    implement_prompt: str
    repair_prompt: str
    registry_function: str
    # Besides imports and build_model, what a draft may define (a network's classes, helpers).
    keeps_definitions: bool = False


SKLEARN = TemplateRules(
    file=domain.TEMPLATE_FILES["sklearn"],
    args=("params", "seed"),
    returns="the unfitted estimator",
    forbidden=frozenset(
        (
            "fit",
            "fit_transform",
            "fit_predict",
            "predict",
            "predict_proba",
            "score",
            "train_test_split",
            "cross_val_score",
            "open",
        )
    ),
    implement_prompt="coder/implement",
    repair_prompt="coder/repair",
    registry_function="""def build_model(params, seed):
    estimator = MODELS[{name!r}](seed)
    accepted = estimator.get_params()
    chosen = {{}}
    for key, value in params.items():
        if key in accepted:
            whole = isinstance(value, float) and value.is_integer() and not isinstance(accepted[key], float)
            chosen[key] = int(value) if whole else value
    return pipeline.make_pipeline(preprocessing.StandardScaler(), estimator.set_params(**chosen))""",
)
PYTORCH = TemplateRules(
    file=domain.TEMPLATE_FILES["pytorch"],
    args=("params", "input_shape", "n_outputs"),
    returns="the untrained network",
    forbidden=frozenset(
        (
            "backward",
            "step",
            "zero_grad",
            "load",
            "save",
            "load_state_dict",
            "open",
            "train_test_split",
            "fit",
        )
    ),
    implement_prompt="coder/implement_pytorch",
    repair_prompt="coder/repair_pytorch",
    registry_function="""def build_model(params, input_shape, n_outputs):
    return MODELS[{name!r}](input_shape, n_outputs, params)""",
    keeps_definitions=True,
)
RULES = {"sklearn": SKLEARN, "pytorch": PYTORCH}
# What a network's output must be, per task (the PyTorch prompt says it).
OUTPUTS = {
    "classification": "(batch, n_outputs) class logits",
    "regression": "(batch, 1) values",
    "segmentation": "(batch, n_outputs, height, width) class logits per pixel, the input's height and width",
}


class NetworkExamples(StrEnum):
    """The PyTorch prompt's worked examples for image tasks: a block class passed to the template's CNN or
    UNet, or a whole network class."""

    BLOCKS = "blocks"
    WHOLE = "whole"


# Models that write better networks from whole-class examples. bench-coder (idea set v1, one run each):
# with block examples the 0.5B model put a classifier head into a block, or a block into ideas that need
# none (PyTorch ideas within 3 attempts: 30%, against 60% with whole networks); the 1.5B model passed
# 80% with them. Any other model gets the block examples.
WHOLE_NETWORK_MODELS = frozenset(("qwen2.5-coder-0.5b-instruct",))


def network_examples_for(model: str) -> NetworkExamples:
    return NetworkExamples.WHOLE if model in WHOLE_NETWORK_MODELS else NetworkExamples.BLOCKS


# The input of the built-in image datasets (the PyTorch prompt says it, and how often it can be halved).
INPUT_SHAPES = {"digits": ((1, 8, 8), 2), "shapes": ((1, 32, 32), 3)}


def rules_for(job: loop_pb2.JobConfig) -> TemplateRules:
    return RULES[domain.template_of(job.template)]


SMOKE_SAMPLES = 300
# A traceback frame in the code the model writes (the line after it is the line that raised).
DRAFT_FRAME = re.compile(
    r'File ".*train\.py", line \d+, in (build_model|forward|__init__|augment|build_optimizer)'
)
# How many repairs with one right answer a draft gets after smoke errors (each one more smoke run).
REPAIRS_AFTER_A_SMOKE_ERROR = 2
# A repair's second try when the first gave the same code back.
REPEAT_TEMPERATURE = 0.8
MAX_ATTEMPTS = 10
DEFAULT_ATTEMPTS = 3
# Undefined names, syntax errors and other mistakes that would only show when the code runs.
RUFF_RULES = "F821,F822,F823,F632,F701,F702,F704,F706,E9"


class CodeProblem(ValueError):
    """The code cannot be used; the message is fed back to the model."""


@dataclass
class CodeTask:
    research_id: str
    # The idea's id, or "baseline" for the plan's baseline (no LLM involved).
    name: str
    job_config: loop_pb2.JobConfig
    idea: idea_pb2.Idea | None = None
    max_attempts: int = DEFAULT_ATTEMPTS
    budget: Budget | None = None
    # Read-only dataset mounts every run of the research gets.
    mounts: list[runner_pb2.DatasetMount] = field(default_factory=list)
    # A model family of the domain catalog: built from the template's registry, no LLM.
    family: str = ""
    # An improve step: the code to improve (artifact prefix) and how it did, one line each.
    base_code_ref: str = ""
    base_results: list[str] = field(default_factory=list)


@dataclass
class CodeOutcome:
    ok: bool
    code_ref: str
    attempts: int
    problems: list[str] = field(default_factory=list)
    origin: loop_pb2.CodeOrigin = loop_pb2.CODE_ORIGIN_UNSPECIFIED
    sha256: str = ""
    # What the coder itself changed in the model's code that passed, and why (api_check, networks).
    repairs: list[str] = field(default_factory=list)
    # Searched hyperparameters the code that passed does not read: the search leaves them out.
    unsearched: list[str] = field(default_factory=list)

    @property
    def entrypoint(self) -> str:
        return experiments.CODE_FILE


@dataclass
class Tried:
    """One draft after its checks and smoke run."""

    ok: bool
    # The function as checked (with the coder's repairs), or the draft when it could not be read.
    function: str
    problems: list[str]
    repairs: list[str] = field(default_factory=list)
    # Searched hyperparameters the draft does not read (a problem, or left out of the search).
    unread: list[str] = field(default_factory=list)
    unsearched: list[str] = field(default_factory=list)


@dataclass
class SmokeResult:
    ok: bool
    detail: str = ""


class SmokeRunner(Protocol):
    async def run(
        self,
        research_id: str,
        experiment_id: str,
        code_ref: str,
        config: dict[str, Any],
        mounts: list[runner_pb2.DatasetMount],
    ) -> SmokeResult: ...


def code_prefix(research_id: str, name: str, part: str) -> str:
    return f"{research_prefix(research_id)}code/{name}/{part}/"


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


class CoderAgent:
    def __init__(
        self,
        llm: LLMClient | None,
        artifacts: ArtifactStore,
        smoke: SmokeRunner,
        network_examples: NetworkExamples = NetworkExamples.BLOCKS,
    ) -> None:
        self.llm = llm
        self.artifacts = artifacts
        self.smoke = smoke
        self.network_examples = network_examples
        self.templates = {name: template_source(rules.file) for name, rules in RULES.items()}

    async def implement(self, task: CodeTask) -> CodeOutcome:
        """Code for the task that passed its checks and smoke run, or the problems of every attempt."""
        final = code_prefix(task.research_id, task.name, "final")
        if await asyncio.to_thread(self.artifacts.exists, final + experiments.CODE_FILE):
            return await self._done_before(final)  # done before a crash: the same code again
        rules, template = rules_for(task.job_config), self._template(task)
        if task.idea is None:
            source = template
            problems = await asyncio.to_thread(check_source, source)
            await self._keep(task, "1", source, problems)
            if problems:
                return CodeOutcome(False, "", 1, problems)
            return await self._final(
                final, source, CodeOutcome(True, final, 1, [], loop_pb2.CODE_ORIGIN_TEMPLATE)
            )
        if task.family:
            family = domain.MODEL_FAMILIES[task.family]
            function = rules.registry_function.format(name=family.template_model(task.job_config.task))
            tried = await self._try(task, 1, function, review=False)
            if not tried.ok:
                told = " ".join(tried.problems)
                return CodeOutcome(False, "", 1, [f"attempt 1 (template registry): {told}"])
            source = with_model(template, function)
            # A feature idea: its steps compiled into the template, its family from the registry.
            catalog = task.idea.steps and domain.template_of(task.job_config.template) == "sklearn"
            origin = loop_pb2.CODE_ORIGIN_CATALOG if catalog else loop_pb2.CODE_ORIGIN_REGISTRY
            return await self._final(final, source, CodeOutcome(True, final, 1, [], origin))
        if self.llm is None:
            raise CodeProblem("no LLM is configured for the coder")
        attempts = max(1, min(task.max_attempts or DEFAULT_ATTEMPTS, MAX_ATTEMPTS))
        history: list[str] = []
        function = ""
        unread: list[str] = []
        for attempt in range(1, attempts + 1):
            draft = await self._draft(task, function, history[-1] if history else "")
            draft, written = merged_reply(function, draft, rules)
            draft, asked = await self._define_missing(task, draft)
            written += asked
            # Told once that it does not read searched hyperparameters, a small model tends to say so
            # again: the second time, the search leaves them out rather than lose the idea's code.
            tried = await self._try(task, attempt, draft, drop_unread=bool(unread))
            function, unread = tried.function, tried.unread
            if tried.ok:
                outcome = CodeOutcome(
                    True, final, attempt, history, loop_pb2.CODE_ORIGIN_LLM, repairs=written + tried.repairs,
                    unsearched=tried.unsearched,
                )  # fmt: skip
                return await self._final(final, with_model(template, tried.function), outcome)
            history.append(f"attempt {attempt}: " + "\n".join(tried.problems))
        # A small model may never write a usable function. When the idea names a model family the template
        # already knows, build it from the template's registry instead: checked and smoke-run the same way.
        # Not for an improve step: the registry's code is what it was asked to improve on.
        fallback = "" if task.base_code_ref else registry_function(task.idea, task.job_config)
        if fallback:
            tried = await self._try(task, attempts + 1, fallback, review=False)
            if tried.ok:
                history.append(f"attempt {attempts + 1}: built from the template's model registry")
                origin = loop_pb2.CODE_ORIGIN_REGISTRY_FALLBACK
                outcome = CodeOutcome(True, final, attempts + 1, history, origin)
                return await self._final(final, with_model(template, fallback), outcome)
            history.append(f"attempt {attempts + 1} (template registry): " + "\n".join(tried.problems))
        return CodeOutcome(False, "", attempts, history)

    def _template(self, task: CodeTask) -> str:
        """The source of the job template the task's code is written into: with a feature idea's steps
        compiled into its FEATURES (kept through an improve step, whose LLM rewrites only the model)."""
        template = domain.template_of(task.job_config.template)
        steps = task.idea.steps if task.idea is not None and template == "sklearn" else []
        return techniques.with_features(self.templates[template], steps)

    async def _final(self, prefix: str, source: str, outcome: CodeOutcome) -> CodeOutcome:
        """Publish the code that passed, with where it came from (read again after a crash)."""
        outcome.sha256 = hashlib.sha256(source.encode()).hexdigest()
        provenance = {
            "origin": loop_pb2.CodeOrigin.Name(outcome.origin),
            "attempts": outcome.attempts,
            "problems": outcome.problems,
            "sha256": outcome.sha256,
            "repairs": outcome.repairs,
            "unsearched": outcome.unsearched,
        }
        await asyncio.to_thread(
            self.artifacts.put,
            prefix + PROVENANCE_FILE,
            json.dumps(provenance, indent=2).encode(),
            content_type="application/json",
        )
        await self._publish(prefix, source)
        return outcome

    async def _done_before(self, prefix: str) -> CodeOutcome:
        try:
            raw = await asyncio.to_thread(self.artifacts.get, prefix + PROVENANCE_FILE)
            provenance = json.loads(raw)
            origin = cast(loop_pb2.CodeOrigin, loop_pb2.CodeOrigin.Value(provenance["origin"]))
            attempts, problems = int(provenance["attempts"]), list(provenance["problems"])
            sha256, repairs = str(provenance.get("sha256", "")), list(provenance.get("repairs", []))
            unsearched = list(provenance.get("unsearched", []))
            return CodeOutcome(True, prefix, attempts, problems, origin, sha256, repairs, unsearched)
        except Exception:  # code published by an earlier version: its origin was not written down
            return CodeOutcome(True, prefix, 0)

    async def _try(
        self, task: CodeTask, attempt: int, draft: str, *, review: bool = True, drop_unread: bool = False
    ) -> Tried:
        """Check one draft (its calls against the libraries, with the repairs that have one answer; the
        whole script with ruff) and smoke-run it; keep the attempt. `review`: the draft is the model's.
        `drop_unread`: searched hyperparameters the draft does not read are left out of the search (said
        in its repairs) instead of sending it back; for a model that made that mistake twice."""
        job = task.job_config
        template = domain.template_of(job.template)
        repairs: list[str] = []
        unread: list[str] = []
        unsearched: list[str] = []
        try:
            function = extract_function(draft, rules_for(job))
            problems = []
            if review:
                space = task.idea.search_space if task.idea is not None else {}
                reviewed = review_calls(
                    function,
                    template,
                    task=job.task,
                    needs_probability=job.metric == "roc_auc",
                    space={name: bool(r.integer) for name, r in space.items()},
                )
                problems, repairs, unread = reviewed.problems, reviewed.repairs, reviewed.unread
                if unread and drop_unread:
                    problems = [p for p in problems if p != unread_problem(unread)]
                    unsearched, names = unread, ", ".join(f"`{n}`" for n in unread)
                    repairs = [*repairs, f"{names} left out of the search: build_model does not read them"]
                if template == "pytorch":
                    for repair in (image_layers, params_passed_in, out_of_place, dilated_padding):
                        repaired = repair(reviewed.code, job.task)
                        reviewed.code, repairs = repaired.code, repairs + repaired.repairs
                    problems += block_problems(reviewed.code)
                if repairs:
                    function = await asyncio.to_thread(format_code, reviewed.code)
            source = with_model(self._template(task), function)
            if not problems:
                problems = await asyncio.to_thread(check_source, source)
        except CodeProblem as exc:
            function, source, problems = draft, draft, [str(exc)]
        label = str(attempt)
        if not problems:
            problems = await self._smoke(task, label, source)
            rounds = 0
            while problems and review and template == "pytorch" and rounds < REPAIRS_AFTER_A_SMOKE_ERROR:
                # A network's error with one right answer (a layer's input size, a shortcut's channels,
                # the output's size): repaired and smoke-run again, without asking the model. The draft as
                # it failed stays kept as attempt-<n>, the repaired one as attempt-<n>-repaired (then
                # -repaired2).
                fixed = after_smoke_error(function, job.task, problems[0])
                if not fixed.repairs:
                    break
                rounds += 1
                await self._keep(task, label, source, problems, repairs)
                label = f"{attempt}-repaired{rounds if rounds > 1 else ''}"
                function = await asyncio.to_thread(format_code, fixed.code)
                repairs, source = repairs + fixed.repairs, with_model(self._template(task), function)
                problems = await asyncio.to_thread(check_source, source) or await self._smoke(
                    task, label, source
                )
        await self._keep(task, label, source, problems, repairs)
        return Tried(not problems, function, problems, repairs, unread, unsearched if not problems else [])

    async def _improve_prompt(self, task: CodeTask) -> Prompt:
        """The improve step's first request: the best code's marked region and its results."""
        assert task.idea is not None
        rules, config = rules_for(task.job_config), task.job_config
        source = (
            await asyncio.to_thread(self.artifacts.get, task.base_code_ref + experiments.CODE_FILE)
        ).decode()
        start, end = source.index(BEGIN) + len(BEGIN), source.index(END)
        imports = (
            f"The script already imports numpy as np and these scikit-learn modules: {MODULES}."
            if rules is SKLEARN
            else "The script already imports numpy as np, torch, `from torch import nn` and `from torch.nn "
            "import functional`, and defines conv_block, MLP, CNN and UNet."
        )
        return render(
            "coder/improve",
            signature=f"def build_model({', '.join(rules.args)})",
            returns=rules.returns,
            metric=config.metric,
            maximize=domain.maximize(config.metric) if config.metric in domain.METRICS else True,
            param_names=", ".join(task.idea.search_space) or "(none)",
            imports=imports,
            title=task.idea.title,
            code=source[start:end].strip(),
            results=task.base_results or ["(no results recorded)"],
        )

    async def _define_missing(self, task: CodeTask, draft: str) -> tuple[str, list[str]]:
        """A network draft that calls a class it never wrote: ask for that class alone (the smallest
        request), its constructor's arguments given. The draft with what was written, and notes."""
        if task.idea is None or self.llm is None or domain.template_of(task.job_config.template) != "pytorch":
            return draft, []
        notes = []
        shape, poolings = INPUT_SHAPES.get(task.job_config.dataset, ((), 0))
        for missing in missing_classes(draft)[:2]:
            prompt = render(
                "coder/define_class",
                output=OUTPUTS.get(task.job_config.task, ""),
                input_shape=shape,
                poolings=poolings,
                title=task.idea.title,
                change=task.idea.change,
                code=draft.strip(),
                class_name=missing.name,
                arguments=", ".join(missing.arguments),
            )
            written = class_named(await self._ask(task, prompt, f"class {missing.name}"), missing.name)
            if written:
                draft = f"{draft.rstrip()}\n\n\n{written}\n"
                notes.append(f"class {missing.name} (used by build_model) written by the LLM on request")
        for name in classes_without_forward(draft)[:2]:
            prompt = render(
                "coder/define_forward",
                output=OUTPUTS.get(task.job_config.task, ""),
                code=class_named(draft, name),
                class_name=name,
            )
            completed = with_method(draft, name, await self._ask(task, prompt, f"forward of {name}"))
            if completed != draft:
                draft = completed
                notes.append(f"forward() of {name}, which had none, written by the LLM on request")
        return draft, notes

    async def _draft(self, task: CodeTask, previous: str, problems: str) -> str:
        assert self.llm is not None and task.idea is not None
        idea = task.idea
        space = idea.search_space
        rules, config = rules_for(task.job_config), task.job_config
        output = OUTPUTS.get(config.task, "")
        shape, poolings = INPUT_SHAPES.get(config.dataset, ((), 0))
        if task.base_code_ref and not (previous or problems):
            prompt = await self._improve_prompt(task)
        elif previous or problems:
            prompt = render(
                rules.repair_prompt,
                output=output,
                input_shape=shape,
                poolings=poolings,
                modules=MODULES,
                param_names=", ".join(space) or "(none)",
                title=idea.title,
                change=idea.change,
                code=previous or "(none)",
                problems=problems[-3000:],
            )
        else:
            prompt = render(
                rules.implement_prompt,
                output=output,
                input_shape=shape,
                poolings=poolings,
                modules=MODULES,
                task=config.task,
                dataset=config.dataset,
                metric=config.metric,
                title=idea.title,
                change=idea.change,
                params=space,
                network_examples=self.network_examples.value,
            )
        # Plain text, not JSON: small models write code far more reliably in a code block than escaped
        # inside a JSON string.
        draft = await self._ask(task, prompt, f"code {task.name}")
        if previous and draft.strip() == previous.strip():
            # A repair that gives the same code back changes nothing: ask once more, less predictably.
            again = f"code {task.name} (again: the repair was unchanged)"
            draft = await self._ask(task, prompt, again, temperature=REPEAT_TEMPERATURE)
        return draft

    async def _ask(
        self, task: CodeTask, prompt: Prompt, purpose: str, temperature: float | None = None
    ) -> str:
        """One request to the coder's LLM for the task; the first code block of its reply."""
        assert self.llm is not None
        reply = await self.llm.complete(
            "coder",
            prompt,
            research_id=task.research_id,
            purpose=purpose,
            budget=task.budget,
            temperature=temperature,
        )
        return code_block(reply.text)

    async def _smoke(self, task: CodeTask, label: str, source: str) -> list[str]:
        """Smoke-run one attempt (`label`: "2", or "2-repaired" for its repaired form)."""
        prefix = code_prefix(task.research_id, task.name, f"attempt-{label}")
        await self._publish(prefix, source)
        space = task.idea.search_space if task.idea is not None else {}
        params = experiments.param_values(experiments.default_params(space))
        job = task.job_config
        config = experiments.run_config(job, seed=job.split_seed, params=params, learning_curve=False)
        config |= {"max_samples": SMOKE_SAMPLES, "save_model": False}
        experiment = experiments.experiment_id(task.research_id, task.name, f"smoke{label.replace('-', '')}")
        result = await self.smoke.run(task.research_id, experiment, prefix, config, task.mounts)
        return [] if result.ok else [f"the smoke run failed: {smoke_summary(result.detail)}"]

    async def _keep(
        self, task: CodeTask, label: str, source: str, problems: list[str], repairs: list[str] | None = None
    ) -> None:
        """Keep one attempt's code and what its checks said under code/<idea>/attempt-<label>/."""
        prefix = code_prefix(task.research_id, task.name, f"attempt-{label}")
        await self._publish(prefix, source)
        report = {
            "attempt": int(label.split("-")[0]),
            "label": label,
            "passed": not problems,
            "problems": problems,
            "repairs": repairs or [],
        }
        await asyncio.to_thread(
            self.artifacts.put,
            prefix + "check.json",
            json.dumps(report, indent=2).encode(),
            content_type="application/json",
        )

    async def _publish(self, prefix: str, source: str) -> None:
        await asyncio.to_thread(
            self.artifacts.put, prefix + experiments.CODE_FILE, source.encode(), content_type="text/x-python"
        )

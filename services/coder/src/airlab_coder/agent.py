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
from typing import Any, Protocol, cast

from airlab import domain, experiments
from airlab.blobs import ArtifactStore, research_prefix
from airlab.job_templates import template_source
from airlab.llm.accounting import Budget
from airlab.llm.client import LLMClient
from airlab.llm.prompts import render
from airlab.v1 import idea_pb2, loop_pb2, runner_pb2

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


# The input of the built-in image datasets (the PyTorch prompt says it, and how often it can be halved).
INPUT_SHAPES = {"digits": ((1, 8, 8), 2), "shapes": ((1, 32, 32), 3)}


def rules_for(job: loop_pb2.JobConfig) -> TemplateRules:
    return RULES[domain.template_of(job.template)]


SMOKE_SAMPLES = 300
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


@dataclass
class CodeOutcome:
    ok: bool
    code_ref: str
    attempts: int
    problems: list[str] = field(default_factory=list)
    origin: loop_pb2.CodeOrigin = loop_pb2.CODE_ORIGIN_UNSPECIFIED
    sha256: str = ""

    @property
    def entrypoint(self) -> str:
        return experiments.CODE_FILE


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


def ruff_command() -> list[str]:
    found = shutil.which("ruff")
    return [found] if found else [sys.executable, "-m", "ruff"]


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
    def __init__(self, llm: LLMClient | None, artifacts: ArtifactStore, smoke: SmokeRunner) -> None:
        self.llm = llm
        self.artifacts = artifacts
        self.smoke = smoke
        self.templates = {name: template_source(rules.file) for name, rules in RULES.items()}

    async def implement(self, task: CodeTask) -> CodeOutcome:
        """Code for the task that passed its checks and smoke run, or the problems of every attempt."""
        final = code_prefix(task.research_id, task.name, "final")
        if await asyncio.to_thread(self.artifacts.exists, final + experiments.CODE_FILE):
            return await self._done_before(final)  # done before a crash: the same code again
        rules, template = rules_for(task.job_config), self._template(task.job_config)
        if task.idea is None:
            source = template
            problems = await asyncio.to_thread(check_source, source)
            await self._keep(task, 1, source, problems)
            if problems:
                return CodeOutcome(False, "", 1, problems)
            return await self._final(
                final, source, CodeOutcome(True, final, 1, [], loop_pb2.CODE_ORIGIN_TEMPLATE)
            )
        if task.family:
            family = domain.MODEL_FAMILIES[task.family]
            function = rules.registry_function.format(name=family.template_model(task.job_config.task))
            ok, _, problems = await self._try(task, 1, function)
            if not ok:
                return CodeOutcome(False, "", 1, [f"attempt 1 (template registry): {' '.join(problems)}"])
            source = with_model(template, function)
            return await self._final(
                final, source, CodeOutcome(True, final, 1, [], loop_pb2.CODE_ORIGIN_REGISTRY)
            )
        if self.llm is None:
            raise CodeProblem("no LLM is configured for the coder")
        attempts = max(1, min(task.max_attempts or DEFAULT_ATTEMPTS, MAX_ATTEMPTS))
        history: list[str] = []
        function = ""
        for attempt in range(1, attempts + 1):
            draft = await self._draft(task, function, history[-1] if history else "")
            ok, source, problems = await self._try(task, attempt, draft)
            function = source if ok else draft
            if ok:
                outcome = CodeOutcome(True, final, attempt, history, loop_pb2.CODE_ORIGIN_LLM)
                return await self._final(final, with_model(template, source), outcome)
            history.append(f"attempt {attempt}: " + "\n".join(problems))
        # A small model may never write a usable function. When the idea names a model family the template
        # already knows, build it from the template's registry instead: checked and smoke-run the same way.
        fallback = registry_function(task.idea, task.job_config)
        if fallback:
            ok, _, problems = await self._try(task, attempts + 1, fallback)
            if ok:
                history.append(f"attempt {attempts + 1}: built from the template's model registry")
                origin = loop_pb2.CODE_ORIGIN_REGISTRY_FALLBACK
                outcome = CodeOutcome(True, final, attempts + 1, history, origin)
                return await self._final(final, with_model(template, fallback), outcome)
            history.append(f"attempt {attempts + 1} (template registry): " + "\n".join(problems))
        return CodeOutcome(False, "", attempts, history)

    def _template(self, job: loop_pb2.JobConfig) -> str:
        """The source of the job template the research's code is written into."""
        return self.templates[domain.template_of(job.template)]

    async def _final(self, prefix: str, source: str, outcome: CodeOutcome) -> CodeOutcome:
        """Publish the code that passed, with where it came from (read again after a crash)."""
        outcome.sha256 = hashlib.sha256(source.encode()).hexdigest()
        provenance = {
            "origin": loop_pb2.CodeOrigin.Name(outcome.origin),
            "attempts": outcome.attempts,
            "problems": outcome.problems,
            "sha256": outcome.sha256,
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
            return CodeOutcome(True, prefix, attempts, problems, origin, str(provenance.get("sha256", "")))
        except Exception:  # code published by an earlier version: its origin was not written down
            return CodeOutcome(True, prefix, 0)

    async def _try(self, task: CodeTask, attempt: int, draft: str) -> tuple[bool, str, list[str]]:
        """Check one draft and smoke-run it; keep the attempt. (passed, the function, problems)."""
        try:
            function = extract_function(draft, rules_for(task.job_config))
            source = with_model(self._template(task.job_config), function)
            problems = await asyncio.to_thread(check_source, source)
        except CodeProblem as exc:
            function, source, problems = draft, draft, [str(exc)]
        if not problems:
            problems = await self._smoke(task, attempt, source)
        await self._keep(task, attempt, source, problems)
        return not problems, function, problems

    async def _draft(self, task: CodeTask, previous: str, problems: str) -> str:
        assert self.llm is not None and task.idea is not None
        idea = task.idea
        space = idea.search_space
        rules, config = rules_for(task.job_config), task.job_config
        output = OUTPUTS.get(config.task, "")
        shape, poolings = INPUT_SHAPES.get(config.dataset, ((), 0))
        if previous or problems:
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
            )
        # Plain text, not JSON: small models write code far more reliably in a code block than escaped
        # inside a JSON string.
        reply = await self.llm.complete(
            "coder", prompt, research_id=task.research_id, purpose=f"code {task.name}", budget=task.budget
        )
        return code_block(reply.text)

    async def _smoke(self, task: CodeTask, attempt: int, source: str) -> list[str]:
        prefix = code_prefix(task.research_id, task.name, f"attempt-{attempt}")
        await self._publish(prefix, source)
        space = task.idea.search_space if task.idea is not None else {}
        params = experiments.param_values(experiments.default_params(space))
        job = task.job_config
        config = experiments.run_config(job, seed=job.split_seed, params=params, learning_curve=False)
        config |= {"max_samples": SMOKE_SAMPLES, "save_model": False}
        experiment = experiments.experiment_id(task.research_id, task.name, f"smoke{attempt}")
        result = await self.smoke.run(task.research_id, experiment, prefix, config, task.mounts)
        return [] if result.ok else [f"the smoke run failed: {result.detail}"]

    async def _keep(self, task: CodeTask, attempt: int, source: str, problems: list[str]) -> None:
        prefix = code_prefix(task.research_id, task.name, f"attempt-{attempt}")
        await self._publish(prefix, source)
        report = {"attempt": attempt, "passed": not problems, "problems": problems}
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

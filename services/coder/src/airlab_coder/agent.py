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

TEMPLATE = "sklearn_train_template.py"
# Beside the code that passed: where it came from (template, LLM attempt n, registry).
PROVENANCE_FILE = "provenance.json"
BEGIN, END = "# <airlab:model>", "# </airlab:model>"
MODULES = (
    "decomposition, ensemble, linear_model, naive_bayes, neighbors, neural_network, pipeline, preprocessing, "
    "svm, tree"
)
BASELINE = "baseline"
FORBIDDEN_CALLS = {
    "fit",
    "fit_transform",
    "fit_predict",
    "predict",
    "predict_proba",
    "score",
    "train_test_split",
    "cross_val_score",
    "open",
}
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


def model_region(source: str) -> str:
    start, end = source.index(BEGIN) + len(BEGIN), source.index(END)
    return source[start:end].strip()


def with_model(source: str, function_code: str) -> str:
    start, end = source.index(BEGIN) + len(BEGIN), source.index(END)
    return f"{source[:start]}\n{function_code.strip()}\n\n\n{source[end:]}"


def code_block(text: str) -> str:
    """The first fenced code block of a reply, or the reply itself when it has none."""
    match = re.search(r"```(?:python|py)?\s*\n(.*?)```", text, flags=re.DOTALL)
    return match.group(1) if match else text


def extract_function(code: str) -> str:
    """The build_model function (and imports) out of what the model wrote; anything else is a problem."""
    code = re.sub(r"^\s*```[a-z]*\s*$", "", code.strip(), flags=re.MULTILINE).strip()
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise CodeProblem(f"syntax error on line {exc.lineno}: {exc.msg}") from None
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "build_model"]
    if not functions:
        raise CodeProblem("the code must define `def build_model(params, seed):`")
    args = [a.arg for a in functions[0].args.args]
    if args[:2] != ["params", "seed"] or len(args) != 2:
        raise CodeProblem(f"build_model must take (params, seed), not ({', '.join(args)})")
    # The script loads the data and fits; a build_model that does either wastes the run (or cheats).
    for node in ast.walk(functions[0]):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in FORBIDDEN_CALLS or name.startswith(("load_", "fetch_", "read_")):
                raise CodeProblem(
                    f"build_model calls {name}(): it must only build and return the unfitted estimator; "
                    "the script loads the data, fits and scores"
                )
    kept = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom) or n is functions[0]]
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


REGISTRY_FUNCTION = """def build_model(params, seed):
    estimator = MODELS[{name!r}](seed)
    accepted = estimator.get_params()
    chosen = {{}}
    for key, value in params.items():
        if key in accepted:
            whole = isinstance(value, float) and value.is_integer() and not isinstance(accepted[key], float)
            chosen[key] = int(value) if whole else value
    return pipeline.make_pipeline(preprocessing.StandardScaler(), estimator.set_params(**chosen))"""


def registry_function(idea: idea_pb2.Idea | None, task: str) -> str:
    """A build_model for the model family the idea names, from the template's registry; "" if none fits.
    Hyperparameters the estimator does not take are left out."""
    if not idea:
        return ""
    family = domain.family_in(f"{idea.title} {idea.change}", task)
    return REGISTRY_FUNCTION.format(name=family.template_model(task)) if family else ""


class CoderAgent:
    def __init__(self, llm: LLMClient | None, artifacts: ArtifactStore, smoke: SmokeRunner) -> None:
        self.llm = llm
        self.artifacts = artifacts
        self.smoke = smoke
        self.template = template_source(TEMPLATE)

    async def implement(self, task: CodeTask) -> CodeOutcome:
        """Code for the task that passed its checks and smoke run, or the problems of every attempt."""
        final = code_prefix(task.research_id, task.name, "final")
        if await asyncio.to_thread(self.artifacts.exists, final + experiments.CODE_FILE):
            return await self._done_before(final)  # done before a crash: the same code again
        if task.idea is None:
            source = self.template
            problems = await asyncio.to_thread(check_source, source)
            await self._keep(task, 1, source, problems)
            if problems:
                return CodeOutcome(False, "", 1, problems)
            return await self._final(
                final, source, CodeOutcome(True, final, 1, [], loop_pb2.CODE_ORIGIN_TEMPLATE)
            )
        if task.family:
            family = domain.MODEL_FAMILIES[task.family]
            function = REGISTRY_FUNCTION.format(name=family.template_model(task.job_config.task))
            ok, _, problems = await self._try(task, 1, function)
            if not ok:
                return CodeOutcome(False, "", 1, [f"attempt 1 (template registry): {' '.join(problems)}"])
            source = with_model(self.template, function)
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
                return await self._final(final, with_model(self.template, source), outcome)
            history.append(f"attempt {attempt}: " + "\n".join(problems))
        # A small model may never write a usable function. When the idea names a model family the template
        # already knows, build it from the template's registry instead: checked and smoke-run the same way.
        fallback = registry_function(task.idea, task.job_config.task)
        if fallback:
            ok, _, problems = await self._try(task, attempts + 1, fallback)
            if ok:
                history.append(f"attempt {attempts + 1}: built from the template's model registry")
                origin = loop_pb2.CODE_ORIGIN_REGISTRY_FALLBACK
                outcome = CodeOutcome(True, final, attempts + 1, history, origin)
                return await self._final(final, with_model(self.template, fallback), outcome)
            history.append(f"attempt {attempts + 1} (template registry): " + "\n".join(problems))
        return CodeOutcome(False, "", attempts, history)

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
            function = extract_function(draft)
            source = with_model(self.template, function)
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
        if previous or problems:
            prompt = render(
                "coder/repair",
                modules=MODULES,
                param_names=", ".join(space) or "(none)",
                title=idea.title,
                change=idea.change,
                code=previous or "(none)",
                problems=problems[-3000:],
            )
        else:
            config = task.job_config
            prompt = render(
                "coder/implement",
                modules=MODULES,
                task=config.task,
                dataset=config.dataset,
                metric=config.metric,
                baseline_code=model_region(self.template),
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

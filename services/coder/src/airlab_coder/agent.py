"""The coder agent: turns an idea into experiment code by editing a job template, checks it, smoke-runs
it on a small subset through the runner, and repairs it from the errors, a bounded number of times.

Every attempt is kept under research/<id>/code/<idea>/attempt-<n>/; the code that passed goes to
research/<id>/code/<idea>/final/, which is what experiments run. The agent is the attempt loop; what it
asks the LLM is `prompting`, how a draft is checked `checking`, where code is kept `storing`, and what
each job template takes `templates` (each uses only the ones after it in that list, never the agent)."""

from __future__ import annotations

import asyncio

from airlab import domain, experiments, techniques
from airlab.blobs import ArtifactStore
from airlab.job_templates import template_source
from airlab.llm.client import LLMClient
from airlab.v1 import events_pb2, loop_pb2
from airlab_coder.api_check import review_calls
from airlab_coder.checking import (
    CodeProblem,
    check_source,
    extract_function,
    format_code,
    merged_reply,
    registry_function,
    smoke_summary,
    with_model,
)
from airlab_coder.hyperparameters import unread_problem
from airlab_coder.networks import (
    block_problems,
    dilated_padding,
    image_layers,
    out_of_place,
    params_passed_in,
)
from airlab_coder.prompting import Prompter
from airlab_coder.smoke_repairs import after_smoke_error
from airlab_coder.storing import CodeStore, code_prefix
from airlab_coder.tasks import DEFAULT_ATTEMPTS, MAX_ATTEMPTS, CodeTask, SmokeRunner, Tried
from airlab_coder.templates import (
    RULES,
    NetworkExamples,
    rules_for,
)

SMOKE_SAMPLES = 300
# How many repairs with one right answer a draft gets after smoke errors (each one more smoke run).
REPAIRS_AFTER_A_SMOKE_ERROR = 2


def failed(task: CodeTask, attempts: int, problems: list[str]) -> events_pb2.CodeOutcome:
    """No code passed: what every attempt ran into."""
    return events_pb2.CodeOutcome(name=task.request.name, attempts=attempts, problems=problems)


def passed(
    task: CodeTask,
    attempts: int,
    problems: list[str],
    origin: loop_pb2.CodeOrigin,
    repairs: list[str] | None = None,
    unsearched: list[str] | None = None,
) -> events_pb2.CodeOutcome:
    """Code that passed (where it is stored and its hash are set when it is published: CodeStore.final)."""
    return events_pb2.CodeOutcome(
        name=task.request.name,
        attempts=attempts,
        problems=problems,
        origin=origin,
        repairs=repairs or [],
        unsearched=unsearched or [],
    )


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
        self.store = CodeStore(artifacts)
        self.prompter = Prompter(llm, artifacts, network_examples)
        self.templates = {name: template_source(rules.file) for name, rules in RULES.items()}

    async def implement(self, task: CodeTask) -> events_pb2.CodeOutcome:
        """Code for the task that passed its checks and smoke run, or the problems of every attempt."""
        final = code_prefix(task.research_id, task.request.name, "final")
        if await asyncio.to_thread(self.artifacts.exists, final + experiments.CODE_FILE):
            return await self.store.done_before(task, final)  # done before a crash: the same code again
        rules, template = rules_for(task.request.job_config), self._template(task)
        if task.idea is None:
            source = template
            problems = await asyncio.to_thread(check_source, source)
            await self.store.keep(task, "1", source, problems)
            if problems:
                return failed(task, 1, problems)
            return await self.store.final(final, source, passed(task, 1, [], loop_pb2.CODE_ORIGIN_TEMPLATE))
        if task.request.family:
            family = domain.MODEL_FAMILIES[task.request.family]
            model = family.template_model(task.request.job_config.task)
            function = rules.registry_function.format(name=model)
            tried = await self._try(task, 1, function, review=False)
            if not tried.ok:
                told = " ".join(tried.problems)
                return failed(task, 1, [f"attempt 1 (template registry): {told}"])
            source = with_model(template, function)
            # A feature idea: its steps compiled into the template, its family from the registry.
            catalog = task.idea.steps and domain.template_of(task.request.job_config.template) == "sklearn"
            origin = loop_pb2.CODE_ORIGIN_CATALOG if catalog else loop_pb2.CODE_ORIGIN_REGISTRY
            return await self.store.final(final, source, passed(task, 1, [], origin))
        if self.llm is None:
            raise CodeProblem("no LLM is configured for the coder")
        attempts = max(1, min(task.request.max_attempts or DEFAULT_ATTEMPTS, MAX_ATTEMPTS))
        history: list[str] = []
        function = ""
        unread: list[str] = []
        for attempt in range(1, attempts + 1):
            draft = await self.prompter.draft(task, function, history[-1] if history else "")
            draft, written = merged_reply(function, draft, rules)
            draft, asked = await self.prompter.define_missing(task, draft)
            written += asked
            # Told once that it does not read searched hyperparameters, a small model tends to say so
            # again: the second time, the search leaves them out rather than lose the idea's code.
            tried = await self._try(task, attempt, draft, drop_unread=bool(unread))
            function, unread = tried.function, tried.unread
            if tried.ok:
                outcome = passed(
                    task, attempt, history, loop_pb2.CODE_ORIGIN_LLM, repairs=written + tried.repairs,
                    unsearched=tried.unsearched,
                )  # fmt: skip
                return await self.store.final(final, with_model(template, tried.function), outcome)
            history.append(f"attempt {attempt}: " + "\n".join(tried.problems))
        # A small model may never write a usable function. When the idea names a model family the template
        # already knows, build it from the template's registry instead: checked and smoke-run the same way.
        # Not for an improve step: the registry's code is what it was asked to improve on.
        fallback = "" if task.request.base_code_ref else registry_function(task.idea, task.request.job_config)
        if fallback:
            tried = await self._try(task, attempts + 1, fallback, review=False)
            if tried.ok:
                history.append(f"attempt {attempts + 1}: built from the template's model registry")
                origin = loop_pb2.CODE_ORIGIN_REGISTRY_FALLBACK
                outcome = passed(task, attempts + 1, history, origin)
                return await self.store.final(final, with_model(template, fallback), outcome)
            history.append(f"attempt {attempts + 1} (template registry): " + "\n".join(tried.problems))
        return failed(task, attempts, history)

    def _template(self, task: CodeTask) -> str:
        """The source of the job template the task's code is written into: with a feature idea's steps
        compiled into its FEATURES (kept through an improve step, whose LLM rewrites only the model)."""
        template = domain.template_of(task.request.job_config.template)
        steps = task.idea.steps if task.idea is not None and template == "sklearn" else []
        return techniques.with_features(self.templates[template], steps)

    async def _try(
        self, task: CodeTask, attempt: int, draft: str, *, review: bool = True, drop_unread: bool = False
    ) -> Tried:
        """Check one draft (its calls against the libraries, with the repairs that have one answer; the
        whole script with ruff) and smoke-run it; keep the attempt. `review`: the draft is the model's.
        `drop_unread`: searched hyperparameters the draft does not read are left out of the search (said
        in its repairs) instead of sending it back; for a model that made that mistake twice."""
        job = task.request.job_config
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
                await self.store.keep(task, label, source, problems, repairs)
                label = f"{attempt}-repaired{rounds if rounds > 1 else ''}"
                function = await asyncio.to_thread(format_code, fixed.code)
                repairs, source = repairs + fixed.repairs, with_model(self._template(task), function)
                problems = await asyncio.to_thread(check_source, source) or await self._smoke(
                    task, label, source
                )
        await self.store.keep(task, label, source, problems, repairs)
        return Tried(not problems, function, problems, repairs, unread, unsearched if not problems else [])

    async def _smoke(self, task: CodeTask, label: str, source: str) -> list[str]:
        """Smoke-run one attempt (`label`: "2", or "2-repaired" for its repaired form)."""
        prefix = code_prefix(task.research_id, task.request.name, f"attempt-{label}")
        await self.store.publish(prefix, source)
        space = task.idea.search_space if task.idea is not None else {}
        params = experiments.param_values(experiments.default_params(space))
        job = task.request.job_config
        config = experiments.run_config(job, seed=job.split_seed, params=params, learning_curve=False)
        config |= {"max_samples": SMOKE_SAMPLES, "save_model": False}
        smoke = f"smoke{label.replace('-', '')}"
        experiment = experiments.experiment_id(task.research_id, task.request.name, smoke)
        result = await self.smoke.run(task.research_id, experiment, prefix, config, list(task.request.mounts))
        return [] if result.ok else [f"the smoke run failed: {smoke_summary(result.detail)}"]

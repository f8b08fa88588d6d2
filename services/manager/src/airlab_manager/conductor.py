"""The research loop, driven by events: baseline, rounds of ideas, review, code, search, evaluation,
decision, report. The manager owns it.

Every step is one compare-and-set on the research's record (its `loop` section holds ideas, experiments,
reviews and decisions), keyed by the event that caused it, with the requests it makes committed in the same
write and published after (the store's outbox). So a crash or a redelivered event neither loses a step
nor takes it twice, and a restarted manager goes on from the stored state: nothing finished is asked for
again, because every experiment's id follows from its place in the loop and the runner keeps one job per
experiment id.

Requests go out as events other services consume:
  code.requested -> coder -> code.ready | code.failed
  idea.requested -> idea -> idea.proposed
  experiment.requested -> runner -> experiment.finished | failed | cancelled
  evaluation.requested -> reviewer -> evaluation.completed
  report.requested -> reviewer -> report.written"""

from __future__ import annotations

import asyncio
import copy
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airlab import experiments
from airlab.errors import FailedPrecondition
from airlab.events import event_from_dict, make_event, payload_dict
from airlab.ids import derived_id
from airlab.llm.accounting import UsageLedger
from airlab.memory import MemorySessions
from airlab.settings import ResearchDefaults
from airlab.state import Change, StateStore
from airlab.v1 import events_pb2, manager_pb2, research_pb2, runner_pb2
from airlab_manager import deciding, search
from airlab_manager.catalog import DatasetCatalog
from airlab_manager.jobconfig import dataset_mounts, job_config
from airlab_manager.lab import TERMINAL_STATES, from_data, to_data
from airlab_manager.reviewing import IdeaReview, Novelty, review_idea

log = logging.getLogger(__name__)
BASELINE = "baseline"
HANDLED = (
    "research.planned",
    "research.approved",
    "research.rejected",
    "idea.proposed",
    "code.ready",
    "code.failed",
    "experiment.finished",
    "experiment.failed",
    "experiment.cancelled",
    "evaluation.completed",
    "report.written",
)
# Requests that failed every delivery come back as dead letters: "deadletter.<consumer>".
DEAD_LETTERS = "deadletter."
RUNNING = research_pb2.RESEARCH_STATE_RUNNING
# Cosine similarity from which an idea counts as one already tried. Ideas share much wording ("replace the
# baseline with ..."), and e5 similarities sit high: measured, "Decision trees" against "Random forest"
# written alike scores 0.96, so the general memory threshold (0.93) would call different models the same.
IDEA_DUPLICATE_SIMILARITY = 0.975
MAXIMIZE = research_pb2.METRIC_DIRECTION_MAXIMIZE


@dataclass
class StepContext:
    """What a step needs that comes from outside the record (looked up before the compare-and-set)."""

    now: float
    tokens: int = 0
    cost_usd: float = 0.0
    llm_seconds: float = 0.0
    novelty: dict[str, Novelty] = field(default_factory=dict)
    recalled: list[str] = field(default_factory=list)


@dataclass
class Step:
    research: research_pb2.Research
    loop: dict[str, Any]
    cause: events_pb2.Event
    context: StepContext
    events: list[events_pb2.Event] = field(default_factory=list)
    memories: list[tuple[str, str, dict[str, Any], str]] = field(default_factory=list)

    @property
    def plan(self) -> research_pb2.Plan:
        return self.research.plan

    @property
    def maximize(self) -> bool:
        return self.plan.direction == MAXIMIZE


def summary_of(idea: dict[str, Any]) -> str:
    """One line on how an idea did, for the idea agent and memory."""
    title = idea.get("title", "")
    evaluation = idea.get("evaluation")
    if evaluation:
        verdict = "a significant gain" if evaluation.get("significant") else "no significant gain"
        return (
            f"{title}: {evaluation['mean']:.4f} ± {evaluation['std']:.4f} against the baseline's "
            f"{evaluation['baseline_mean']:.4f} ± {evaluation['baseline_std']:.4f}: {verdict}"
        )
    status = idea.get("status", "")
    if status == "rejected":
        return f"{title}: rejected in review ({'; '.join(idea.get('review', {}).get('reasons', []))})"
    if status == "failed":
        return f"{title}: failed ({idea.get('failure', '')[:300]})"
    return f"{title}: {status}"


class Conductor:
    def __init__(
        self,
        store: StateStore,
        catalog: DatasetCatalog,
        rules: ResearchDefaults,
        *,
        memory: MemorySessions | None = None,
        ledger: UsageLedger | None = None,
        source: str = "manager",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.rules = rules
        self.memory = memory
        self.ledger = ledger
        self.source = source
        self.clock = clock
        self._memory_lock = asyncio.Lock()

    # -- the event handler ----------------------------------------------------------------------------------

    async def on_event(self, event: events_pb2.Event) -> None:
        if (event.type not in HANDLED and not event.type.startswith(DEAD_LETTERS)) or not event.research_id:
            return
        record = await self.store.find(event.research_id)
        if record is None or from_data(record.data).state in TERMINAL_STATES:
            return
        context = await self._context(from_data(record.data), record.data.get("loop") or {}, event)
        memories: list[tuple[str, str, dict[str, Any], str]] = []

        def apply(data: dict[str, Any]) -> Change | None:
            research = from_data(data)
            if research.state in TERMINAL_STATES:
                return None
            step = Step(research, copy.deepcopy(data.get("loop") or {}), event, context)
            if self._dispatch(step) is False:
                return None
            self._progress(step)
            research.updated_at.GetCurrentTime()
            memories[:] = step.memories
            return Change({**to_data(research), "loop": step.loop}, step.events)

        await self.store.mutate(event.research_id, apply, cause_id=event.id)
        await self._remember(memories)

    async def _context(
        self, research: research_pb2.Research, loop: dict[str, Any], event: events_pb2.Event
    ) -> StepContext:
        context = StepContext(now=self.clock())
        if self.ledger is not None:
            total = (await self.ledger.usage(research.id)).total
            context.tokens, context.cost_usd = total.tokens, total.cost_usd
            context.llm_seconds = total.latency_seconds
        if self.memory is None:
            return context
        ideas = payload_dict(event).get("ideas", []) if event.type == "idea.proposed" else []
        async with self._memory_lock:
            try:
                context.novelty, context.recalled = await asyncio.to_thread(self._look_up, research, ideas)
            except Exception:  # memory is advice: the loop goes on without it
                log.exception("memory lookup failed", extra={"research_id": research.id})
        return context

    def _look_up(
        self, research: research_pb2.Research, ideas: list[dict[str, Any]]
    ) -> tuple[dict[str, Novelty], list[str]]:
        """How close each idea comes to one tried before, and what earlier research on the dataset taught."""
        assert self.memory is not None
        dataset = research.plan.dataset
        novelty = {}
        with self.memory.open() as memory:
            for idea in ideas:
                text = f"{idea.get('title', '')}: {idea.get('change', '')}"
                closest = memory.nearest(text, kind="idea", filters={"dataset": dataset})
                score = (closest.score or 0.0) if closest else 0.0
                duplicate = ""
                if closest and score >= IDEA_DUPLICATE_SIMILARITY:
                    duplicate = closest.payload.get("title", closest.text)
                novelty[idea.get("id", "")] = Novelty(duplicate, score)
            found = memory.recall(research.goal, kinds=["lesson"], filters={"dataset": dataset}, k=5)
        return novelty, [m.text for m in found if m.payload.get("research_id") != research.id]

    async def _remember(self, memories: list[tuple[str, str, dict[str, Any], str]]) -> None:
        if self.memory is None or not memories:
            return

        def write() -> None:
            assert self.memory is not None
            with self.memory.open() as memory:
                for kind, text, payload, key in memories:
                    memory.remember_many(kind, [(text, payload)], keys=[key])

        async with self._memory_lock:
            try:
                await asyncio.to_thread(write)
            except Exception:  # memory is advice: the loop goes on without it
                log.exception("could not remember", extra={"count": len(memories)})

    # -- direct calls (ManagerService): the same rules, nothing stored -------------------------------------

    async def _running(self, research_id: str) -> tuple[research_pb2.Research, dict[str, Any]]:
        record = await self.store.get(research_id)
        research, loop = from_data(record.data), record.data.get("loop") or {}
        if not loop.get("phase"):
            state = research_pb2.ResearchState.Name(research.state)
            raise FailedPrecondition(f"research {research_id} is {state}: its loop has not started")
        return research, loop

    async def review(self, research_id: str, idea: dict[str, Any]) -> IdeaReview:
        """How the manager would review `idea` for the research now."""
        research, loop = await self._running(research_id)
        probe = events_pb2.Event(type="idea.proposed", research_id=research_id)
        probe.payload.update({"ideas": [idea]})
        context = await self._context(research, loop, probe)
        per_idea = deciding.experiments_per_idea(research.plan)
        left = research.plan.budget.max_experiments - len(loop["experiments"]) - per_idea * len(loop["queue"])
        return review_idea(
            idea,
            task=research.plan.task,
            metric=research.plan.metric,
            experiments_left=left,
            experiments_per_idea=per_idea,
            tried_titles=[i.get("title", "") for i in loop["ideas"].values()],
            novelty=context.novelty.get(idea.get("id", ""), Novelty()),
        )

    async def decision(self, research_id: str) -> tuple[int, str]:
        """What the manager would decide for the research now."""
        research, loop = await self._running(research_id)
        context = await self._context(research, {"phase": "done"}, events_pb2.Event())
        spend = deciding.Spend(
            len(loop["experiments"]), context.now - loop["started_at"], context.tokens, context.cost_usd
        )
        ask_people = research.gates != research_pb2.HUMAN_GATES_OFF
        return deciding.decide(loop, research.plan, spend, self.rules, ask_people=ask_people)

    # -- steps ----------------------------------------------------------------------------------------------

    def _dispatch(self, step: Step) -> bool | None:
        """Apply the event to the loop; False when it changes nothing (stale, repeated, not ours)."""
        body = payload_dict(step.cause)
        kind = step.cause.type
        if kind == "research.planned":
            return self._start(step)
        if kind == "research.approved":
            return self._approved(step, body)
        if kind == "research.rejected":
            return self._rejected(step, body)
        if kind == "idea.proposed":
            return self._ideas_proposed(step, body)
        if kind in ("code.ready", "code.failed"):
            return self._code_done(step, body, ok=kind == "code.ready")
        if kind.startswith("experiment."):
            return self._experiment_done(step, body, finished=kind == "experiment.finished")
        if kind == "evaluation.completed":
            return self._evaluated(step, body)
        if kind == "report.written":
            return self._reported(step, body)
        if kind.startswith(DEAD_LETTERS):
            return self._dead_letter(step, body)
        return False

    def _dead_letter(self, step: Step, body: dict[str, Any]) -> bool | None:
        """A request no service could handle (it failed every delivery) is answered as a failure, so the
        loop never waits for a reply that will not come."""
        original = event_from_dict(body.get("event") or {})
        request = payload_dict(original)
        error = f"{original.type} failed {body.get('deliveries', '?')} times: {body.get('error', '')}"[:1500]
        if original.type == "code.requested":
            return self._code_done(step, {"name": request.get("name", ""), "problems": [error]}, ok=False)
        if original.type == "idea.requested":
            return self._ideas_proposed(
                step, {"round": request.get("round", -1), "ideas": [], "error": error}
            )
        if original.type == experiments.REQUESTED:
            reply = {"experiment_id": request.get("experiment_id", ""), "reason": error}
            return self._experiment_done(step, reply, finished=False)
        if original.type == "evaluation.requested":
            idea = step.loop.get("ideas", {}).get(request.get("name", ""))
            if idea is None or idea.get("status") != "reviewing":
                return False
            self._idea_failed(step, idea, f"its evaluation failed: {error}")
            return True
        if original.type == "report.requested" and step.loop.get("phase") == "reporting":
            step.loop["failed"] = True
            reason = step.loop.get("stop_reason", "")
            step.loop["stop_reason"] = f"{reason}; the report could not be written: {error}"
            return self._reported(step, {})
        log.error("a dead letter the loop cannot answer", extra={"event_type": original.type, "error": error})
        return False

    def _emit(self, step: Step, event_type: str, payload: dict[str, Any]) -> None:
        # Derived from the cause and the event's place in the step: the same step always names its events
        # the same (so publishing them again is deduplicated), and ids stay short however long the chain.
        event_id = derived_id("e", f"{step.cause.id}:{event_type}:{len(step.events)}")
        step.events.append(
            make_event(
                event_type,
                step.research.id,
                payload,
                event_id=event_id,
                correlation_id=step.cause.id,
                source=self.source,
            )
        )

    def _start(self, step: Step) -> bool | None:
        research, loop = step.research, step.loop
        if research.state != research_pb2.RESEARCH_STATE_PLANNED or loop.get("phase"):
            return False
        loop.update(
            phase=BASELINE,
            round=0,
            started_at=step.context.now,
            experiments={},
            ideas={},
            queue=[],
            decisions=[],
            rounds_without_progress=0,
            consecutive_failures=0,
            job_config=job_config(step.plan, self.catalog),
            mounts=dataset_mounts(step.plan, self.catalog),
        )
        research.state = RUNNING
        research.state_reason = "running the baseline"
        self._emit(step, "code.requested", self._code_request(step, BASELINE, None))
        return True

    def _approved(self, step: Step, body: dict[str, Any]) -> bool | None:
        subject = body.get("subject", "plan")
        if subject == "plan":
            return self._start(step)
        if step.research.state != RUNNING:
            return False
        if subject == "experiment":
            idea = step.loop["ideas"].get(body.get("idea_id", ""))
            if idea is None or idea.get("status") != "awaiting approval":
                return False
            self._code_idea(step, idea)
            return True
        step.loop["escalated"] = True
        step.loop["consecutive_failures"] = 0
        self._next(step)
        return True

    def _rejected(self, step: Step, body: dict[str, Any]) -> bool | None:
        subject = body.get("subject", "plan")
        if step.research.state != RUNNING or subject not in ("experiment", "continue"):
            return False
        if subject == "experiment":
            idea = step.loop["ideas"].get(body.get("idea_id", ""))
            if idea is None:
                return False
            idea["status"] = "rejected"
            idea.setdefault("review", {}).setdefault("reasons", []).append(
                f"rejected by a person: {body.get('reason', '')}"
            )
            self._next(step)
            return True
        self._stop(step, f"a person chose to stop: {body.get('reason', '')}")
        return True

    def _ideas_proposed(self, step: Step, body: dict[str, Any]) -> bool | None:
        loop = step.loop
        if loop.get("phase") != "ideas" or int(body.get("round", -1)) != loop.get("round"):
            return False
        proposed = body.get("ideas", [])
        if not proposed:
            loop.setdefault("failures", []).append(
                {
                    "round": loop["round"],
                    "what": "idea agent",
                    "error": body.get("error", "no ideas proposed"),
                }
            )
        per_idea = deciding.experiments_per_idea(step.plan)
        left = step.plan.budget.max_experiments - len(loop["experiments"]) - per_idea * len(loop["queue"])
        reviews = []
        for idea in proposed:
            tried = [i.get("title", "") for i in loop["ideas"].values() if i.get("status") != "rejected"]
            review = review_idea(
                idea,
                task=step.plan.task,
                metric=step.plan.metric,
                experiments_left=left,
                experiments_per_idea=per_idea,
                tried_titles=tried,
                novelty=step.context.novelty.get(idea.get("id", ""), Novelty()),
            )
            record = {
                **idea,
                "round": loop["round"],
                "review": review.to_dict(),
                "trials": [],
                "evaluations": {},
            }
            record["status"] = "approved" if review.approved else "rejected"
            loop["ideas"][idea["id"]] = record
            reviews.append(review.to_dict() | {"title": idea.get("title", "")})
            if review.approved:
                loop["queue"].append(idea["id"])
                left -= per_idea
                text = f"{idea.get('title', '')}: {idea.get('change', '')}"
                payload = {
                    "dataset": step.plan.dataset,
                    "research_id": step.research.id,
                    "idea_id": idea["id"],
                    "title": idea.get("title", ""),
                }
                step.memories.append(("idea", text, payload, idea["id"]))
        self._emit(step, "idea.reviewed", {"round": loop["round"], "reviews": reviews})
        self._next(step)
        return True

    def _code_done(self, step: Step, body: dict[str, Any], *, ok: bool) -> bool | None:
        loop, name = step.loop, body.get("name", "")
        if name == BASELINE:
            if loop.get("phase") != BASELINE or loop.get("baseline_code"):
                return False
            if not ok:
                self._stop(
                    step,
                    f"the baseline's code failed its checks: {'; '.join(body.get('problems', []))}",
                    failed=True,
                )
                return True
            loop["baseline_code"] = body["code_ref"]
            for seed in step.plan.seeds:
                self._request_run(
                    step, BASELINE, "baseline", f"seed{seed}", seed, {}, body["code_ref"], curve=True
                )
            return True
        idea = loop["ideas"].get(name)
        if idea is None or idea.get("status") != "coding":
            return False
        # Event payloads carry numbers as floats (protobuf Struct): the count is whole again here.
        attempts = int(body.get("attempts", 0))
        idea["code_attempts"] = attempts
        idea["code_problems"] = body.get("problems", [])
        if not ok:
            self._idea_failed(
                step,
                idea,
                f"no working code after {attempts} attempt(s): {' | '.join(body.get('problems', []))[-600:]}",
            )
            return True
        idea["code_ref"] = body["code_ref"]
        left = step.plan.budget.max_experiments - len(loop["experiments"])
        idea["trial_budget"] = max(0, min(self.rules.trials_per_idea, left - (len(step.plan.seeds) - 1)))
        if idea["trial_budget"] < 1:
            self._idea_failed(step, idea, "the experiment budget ran out before it could run", count=False)
            return True
        idea["status"] = "searching"
        loop["phase"] = "searching"
        self._fill_trials(step, idea)
        return True

    def _experiment_done(self, step: Step, body: dict[str, Any], *, finished: bool) -> bool | None:
        loop = step.loop
        experiment = loop.get("experiments", {}).get(body.get("experiment_id", ""))
        if experiment is None or experiment["state"] != "requested":
            return False
        experiment["state"] = "finished" if finished else "failed"
        metrics = body.get("metrics") or {}
        experiment["test"] = metrics.get(step.plan.metric) if finished else None
        experiment["validation"] = metrics.get(f"val_{step.plan.metric}") if finished else None
        if not finished:
            experiment["reason"] = str(body.get("reason") or step.cause.type)[:1000]
        experiment["run_seconds"] = float(body.get("run_seconds") or 0.0)
        experiment["queued_seconds"] = float(body.get("queued_seconds") or 0.0)
        if experiment["kind"] == "baseline":
            return self._baseline_progress(step)
        idea = loop["ideas"][experiment["name"]]
        if experiment["kind"] == "trial":
            if idea.get("status") != "searching":
                return True
            wall = step.plan.budget.max_wall_seconds
            out_of_time = bool(wall) and step.context.now - loop["started_at"] >= wall
            if not out_of_time:
                self._fill_trials(step, idea)
            if all(loop["experiments"][x]["state"] != "requested" for x in idea["trials"]):
                self._finish_search(step, idea)
            return True
        if idea.get("status") == "evaluating" and all(
            loop["experiments"][x]["state"] != "requested" for x in idea["evaluations"].values()
        ):
            self._request_evaluation(step, idea)
        return True

    def _baseline_progress(self, step: Step) -> bool:
        loop = step.loop
        runs = {x: e for x, e in loop["experiments"].items() if e["kind"] == "baseline"}
        if any(e["state"] == "requested" for e in runs.values()):
            return True
        done = {
            str(e["seed"]): x for x, e in runs.items() if e["state"] == "finished" and e["test"] is not None
        }
        if not done:
            reasons = "; ".join(sorted({e.get("reason", "") for e in runs.values()}))
            self._stop(step, f"the baseline failed on every seed: {reasons[:800]}", failed=True)
            return True
        tests = [runs[x]["test"] for x in done.values()]
        validations = [runs[x]["validation"] for x in done.values() if runs[x]["validation"] is not None]
        mean = statistics.fmean(tests)
        std = statistics.stdev(tests) if len(tests) > 1 else 0.0
        loop["baseline"] = {
            "mean": mean,
            "std": std,
            "experiments": done,
            "validation": statistics.fmean(validations) if validations else None,
        }
        step.research.state_reason = f"baseline measured: {step.plan.metric} {mean:.4f} ± {std:.4f}"
        loop["phase"] = "ideas"
        self._next(step)
        return True

    def _request_run(
        self,
        step: Step,
        name: str,
        kind: str,
        label: str,
        seed: int,
        params: dict[str, Any],
        code_ref: str,
        *,
        curve: bool = False,
    ) -> str:
        experiment = experiments.experiment_id(step.research.id, name, label)
        step.loop["experiments"][experiment] = {
            "kind": kind,
            "name": name,
            "seed": int(seed),
            "params": params,
            "state": "requested",
            "test": None,
            "validation": None,
        }
        config = {**step.loop["job_config"], "seed": int(seed), "params": params, "learning_curve": curve}
        rules = self.rules
        event = experiments.request(
            step.research.id,
            experiment,
            code_ref=code_ref,
            config=config,
            resources=runner_pb2.Resources(
                cpu_millis=rules.experiment_cpu_millis,
                memory_mib=rules.experiment_memory_mib,
                wall_seconds=rules.experiment_wall_seconds,
            ),
            datasets=[runner_pb2.DatasetMount(**m) for m in step.loop.get("mounts", [])],
            labels={"kind": kind, "name": name},
            source=self.source,
            cause=step.cause.id,
        )
        step.events.append(event)
        return experiment

    def _fill_trials(self, step: Step, idea: dict[str, Any]) -> None:
        """Keep up to `parallel_trials` of the idea's search trials in flight (the runner's free slots),
        within its trial budget."""
        runs = step.loop["experiments"]
        in_flight = sum(1 for x in idea["trials"] if runs[x]["state"] == "requested")
        while len(idea["trials"]) < idea["trial_budget"] and in_flight < self.rules.parallel_trials:
            self._request_trial(step, idea)
            in_flight += 1

    def _request_trial(self, step: Step, idea: dict[str, Any]) -> None:
        space = idea.get("search_space") or {}
        runs = [step.loop["experiments"][x] for x in idea["trials"]]
        done = [(e["params"], e["validation"]) for e in runs if e["state"] != "requested"]
        pending = [e["params"] for e in runs if e["state"] == "requested"]
        if not runs:
            params = experiments.default_params(space)
        else:
            params = search.next_params(
                space, done, pending=pending, maximize=step.maximize, seed=int(step.plan.seeds[0])
            )
        seed = step.plan.seeds[0]
        experiment = self._request_run(
            step, idea["id"], "trial", f"trial{len(idea['trials'])}", seed, params, idea["code_ref"]
        )
        idea["trials"].append(experiment)

    def _finish_search(self, step: Step, idea: dict[str, Any]) -> None:
        runs = [(x, step.loop["experiments"][x]) for x in idea["trials"]]
        scored = [(x, e) for x, e in runs if e["state"] == "finished" and e["validation"] is not None]
        if not scored:
            self._idea_failed(
                step,
                idea,
                "every search trial failed: "
                + "; ".join(sorted({e.get("reason", "")[:200] for _, e in runs})),
            )
            return
        pick = max if step.maximize else min
        best, run = pick(scored, key=lambda item: item[1]["validation"])
        idea["best_trial"], idea["best_params"] = best, run["params"]
        idea["status"] = "evaluating"
        step.loop["phase"] = "evaluating"
        idea["evaluations"] = {str(run["seed"]): best}
        for seed in step.plan.seeds:
            if str(seed) in idea["evaluations"]:
                continue
            idea["evaluations"][str(seed)] = self._request_run(
                step,
                idea["id"],
                "evaluation",
                f"seed{seed}",
                seed,
                run["params"],
                idea["code_ref"],
                curve=True,
            )
        if all(step.loop["experiments"][x]["state"] != "requested" for x in idea["evaluations"].values()):
            self._request_evaluation(step, idea)

    def _request_evaluation(self, step: Step, idea: dict[str, Any]) -> None:
        experiments_ = step.loop["experiments"]
        candidate = {s: x for s, x in idea["evaluations"].items() if experiments_[x]["state"] == "finished"}
        if not candidate:
            self._idea_failed(step, idea, "every evaluation run failed")
            return
        idea["status"] = "reviewing"
        self._emit(
            step,
            "evaluation.requested",
            {
                "name": idea["id"],
                "title": idea.get("title", ""),
                "metric": step.plan.metric,
                "maximize": step.maximize,
                "candidate": candidate,
                "baseline": step.loop["baseline"]["experiments"],
            },
        )

    def _evaluated(self, step: Step, body: dict[str, Any]) -> bool | None:
        loop = step.loop
        idea = loop["ideas"].get(body.get("name", ""))
        if idea is None or idea.get("status") != "reviewing":
            return False
        evaluation = body["evaluation"]
        idea["evaluation"] = evaluation
        idea["status"] = "evaluated"
        loop["consecutive_failures"] = 0
        best = loop.get("best")
        better = best is None or (
            (evaluation["significant"], evaluation["gain"]) > (best["significant"], best["gain"])
        )
        if better:
            loop["best"] = {
                "idea_id": idea["id"],
                "title": idea.get("title", ""),
                "mean": evaluation["mean"],
                "std": evaluation["std"],
                "gain": evaluation["gain"],
                "significant": evaluation["significant"],
            }
        step.memories.append(self._lesson(step, idea))
        self._next(step)
        return True

    def _lesson(self, step: Step, idea: dict[str, Any]) -> tuple[str, str, dict[str, Any], str]:
        text = f"On {step.plan.dataset} ({step.plan.metric}), {summary_of(idea)}"
        evaluation = idea.get("evaluation") or {}
        payload = {
            "dataset": step.plan.dataset,
            "metric": step.plan.metric,
            "research_id": step.research.id,
            "idea_id": idea["id"],
            "significant": bool(evaluation.get("significant")),
        }
        return ("lesson", text, payload, f"{step.research.id}:{idea['id']}")

    def _idea_failed(self, step: Step, idea: dict[str, Any], why: str, *, count: bool = True) -> None:
        idea["status"] = "failed"
        idea["failure"] = why
        if count:
            step.loop["consecutive_failures"] = int(step.loop.get("consecutive_failures", 0)) + 1
        step.loop.setdefault("failures", []).append(
            {"idea_id": idea["id"], "title": idea.get("title", ""), "error": why}
        )
        step.memories.append(self._lesson(step, idea))
        self._next(step)

    def _code_request(self, step: Step, name: str, idea: dict[str, Any] | None) -> dict[str, Any]:
        budget = step.plan.budget
        public = None
        if idea is not None:
            public = {
                k: idea[k]
                for k in ("id", "title", "change", "expected_effect", "rationale", "search_space")
                if k in idea
            }
        return {
            "name": name,
            "idea": public,
            "job_config": step.loop["job_config"],
            "mounts": step.loop.get("mounts", []),
            "max_attempts": self.rules.code_attempts,
            "budget": {"max_tokens": budget.max_tokens, "max_cost_usd": budget.max_cost_usd},
        }

    def _code_idea(self, step: Step, idea: dict[str, Any]) -> None:
        idea["status"] = "coding"
        step.loop["phase"] = "coding"
        step.research.state = RUNNING
        step.research.state_reason = f"coding idea {idea.get('title', '')!r}"
        self._emit(step, "code.requested", self._code_request(step, idea["id"], idea))

    def _next(self, step: Step) -> None:
        """After the baseline, a review, or an idea's end: decide, then take the next idea or ask for more."""
        loop, plan = step.loop, step.plan
        if not loop["queue"] and loop["round"] >= 1 and loop.get("round_closed") != loop["round"]:
            loop["round_closed"] = loop["round"]
            gain_now = (loop.get("best") or {}).get("gain")
            improved = (loop.get("best") or {}).get("significant") and gain_now != loop.get(
                "gain_at_round_start"
            )
            loop["rounds_without_progress"] = (
                0 if improved else int(loop.get("rounds_without_progress", 0)) + 1
            )
        spend = deciding.Spend(
            len(loop["experiments"]),
            step.context.now - loop["started_at"],
            step.context.tokens,
            step.context.cost_usd,
        )
        ask_people = step.research.gates != research_pb2.HUMAN_GATES_OFF
        kind, reason = deciding.decide(loop, plan, spend, self.rules, ask_people=ask_people)
        decision = {"round": loop["round"], "kind": manager_pb2.DecisionKind.Name(kind), "reason": reason}
        loop["decisions"].append(decision)
        self._emit(step, "research.decided", decision)
        if kind == deciding.STOP:
            self._stop(step, reason)
            return
        if kind == deciding.ASK_HUMAN:
            loop["phase"] = "waiting"
            step.research.state = research_pb2.RESEARCH_STATE_AWAITING_APPROVAL
            step.research.state_reason = reason
            step.research.awaiting = "continue"
            self._emit(step, "research.awaiting_approval", {"subject": "continue", "reason": reason})
            return
        if loop["queue"]:
            idea = loop["ideas"][loop["queue"].pop(0)]
            if step.research.gates == research_pb2.HUMAN_GATES_EVERY_EXPERIMENT:
                idea["status"] = "awaiting approval"
                loop["phase"] = "waiting"
                step.research.state = research_pb2.RESEARCH_STATE_AWAITING_APPROVAL
                step.research.state_reason = f"idea {idea.get('title', '')!r} waits for a person's approval"
                step.research.awaiting, step.research.awaiting_idea_id = "experiment", idea["id"]
                self._emit(
                    step,
                    "research.awaiting_approval",
                    {"subject": "experiment", "idea_id": idea["id"], "title": idea.get("title", "")},
                )
                return
            self._code_idea(step, idea)
            return
        loop["round"] += 1
        loop["phase"] = "ideas"
        loop["gain_at_round_start"] = (loop.get("best") or {}).get("gain")
        step.research.state_reason = f"round {loop['round']}: asking for ideas"
        ideas = list(loop["ideas"].values())
        self._emit(
            step,
            "idea.requested",
            {
                "round": loop["round"],
                "count": self.rules.ideas_per_round,
                "tried": [i.get("title", "") for i in ideas],
                "results": [summary_of(i) for i in ideas if i.get("status") != "rejected"][-12:],
                "recalled": step.context.recalled,
            },
        )

    def _stop(self, step: Step, reason: str, *, failed: bool = False) -> None:
        loop = step.loop
        loop["phase"] = "reporting"
        loop["stop_reason"] = reason
        loop["failed"] = failed
        for idea_id in loop.get("queue", []):
            loop["ideas"][idea_id]["status"] = "not run (stopped)"
        loop["queue"] = []
        step.research.state_reason = f"writing the report: {reason}"
        self._emit(step, "report.requested", {"stop_reason": reason, "failed": failed})

    def _reported(self, step: Step, body: dict[str, Any]) -> bool | None:
        loop, research = step.loop, step.research
        if loop.get("phase") != "reporting":
            return False
        loop["phase"] = "done"
        research.report_markdown_key = body.get("markdown_key", "")
        research.report_html_key = body.get("html_key", "")
        research.state = (
            research_pb2.RESEARCH_STATE_FAILED
            if loop.get("failed")
            else research_pb2.RESEARCH_STATE_COMPLETED
        )
        research.state_reason = loop.get("stop_reason", "")
        kind = "research.failed" if loop.get("failed") else "research.completed"
        self._emit(
            step,
            kind,
            {
                "reason": research.state_reason,
                "report_markdown_key": research.report_markdown_key,
                "report_html_key": research.report_html_key,
                "best": loop.get("best"),
                "baseline": {k: v for k, v in (loop.get("baseline") or {}).items() if k != "experiments"},
            },
        )
        return True

    # -- progress -------------------------------------------------------------------------------------------

    def _progress(self, step: Step) -> None:
        loop = step.loop
        runs = loop.get("experiments", {}).values()
        ideas = loop.get("ideas", {}).values()
        progress = research_pb2.ResearchProgress(
            round=loop.get("round", 0),
            experiments_requested=len(runs),
            experiments_finished=sum(1 for e in runs if e["state"] == "finished"),
            experiments_failed=sum(1 for e in runs if e["state"] == "failed"),
            ideas_proposed=len(ideas),
            ideas_approved=sum(1 for i in ideas if i.get("review", {}).get("approved")),
            tokens=step.context.tokens,
            cost_usd=step.context.cost_usd,
            phase=loop.get("phase", ""),
            llm_seconds=step.context.llm_seconds,
            experiment_seconds=sum(e.get("run_seconds", 0.0) for e in runs),
            waiting_seconds=sum(e.get("queued_seconds", 0.0) for e in runs),
        )
        if loop.get("baseline"):
            progress.has_baseline = True
            progress.baseline_mean, progress.baseline_std = loop["baseline"]["mean"], loop["baseline"]["std"]
        if loop.get("best"):
            best = loop["best"]
            progress.has_best = True
            progress.best_mean, progress.best_std = best["mean"], best["std"]
            progress.best_idea_id, progress.best_title = best["idea_id"], best["title"]
            progress.best_significant = best["significant"]
        step.research.progress.CopyFrom(progress)

"""The research loop, driven by events: baseline, rounds of ideas, review, code, search, evaluation,
decision, report. The manager owns it.

The loop's rules are pure transitions (the `loop` package); this module is the I/O around them. Every step
is one compare-and-set on the research's record (the research and its typed loop state), keyed by the
event that caused it, with the requests it makes committed in the same write and published after (the
store's outbox). So a crash or a redelivered event neither loses a step nor takes it twice, and a
restarted manager goes on from the stored state: nothing finished is asked for again, because every
experiment's id follows from its place in the loop and the runner keeps one job per experiment id. The
record also keeps the requests still awaiting an answer (airlab.research_record), which a restore from a
backup sends again.

Requests go out as events other services consume:
  code.requested -> coder -> code.ready | code.failed
  idea.requested -> idea -> idea.proposed
  experiment.requested -> runner -> experiment.finished | failed | cancelled
  evaluation.requested -> reviewer -> evaluation.completed
  report.requested -> reviewer -> report.written"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from airlab.errors import FailedPrecondition
from airlab.events import body_of, make_event
from airlab.ids import derived_id
from airlab.llm.accounting import UsageLedger
from airlab.memory import MemorySessions
from airlab.research_record import OldLoopSchema, StoredResearch
from airlab.settings import ResearchDefaults
from airlab.state import Change, StateStore
from airlab.v1 import events_pb2, idea_pb2, loop_pb2, manager_pb2, research_pb2
from airlab_manager import loop as research_loop
from airlab_manager.catalog import DatasetCatalog
from airlab_manager.checks import check_owner
from airlab_manager.lab import TERMINAL_STATES
from airlab_manager.loop import ideas, policy
from airlab_manager.loop.idea_review import Novelty
from airlab_manager.loop.step import LoopConfig, Memory, Step, StepContext

log = logging.getLogger(__name__)
HANDLED = research_loop.HANDLED
# Cosine similarity from which an idea counts as one already tried. Ideas share much wording ("replace the
# baseline with ..."), and e5 similarities sit high: measured, "Decision trees" against "Random forest"
# written alike scores 0.96, so the general memory threshold (0.93) would call different models the same.
IDEA_DUPLICATE_SIMILARITY = 0.975


class Conductor:
    def __init__(
        self,
        store: StateStore[StoredResearch],
        catalog: DatasetCatalog,
        rules: ResearchDefaults,
        *,
        memory: MemorySessions | None = None,
        ledger: UsageLedger | None = None,
        source: str = "manager",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.config = LoopConfig(rules, catalog, source)
        self.memory = memory
        self.ledger = ledger
        self.clock = clock
        self._memory_lock = asyncio.Lock()

    # -- the event handler ----------------------------------------------------------------------------------

    async def on_event(self, event: events_pb2.Event) -> None:
        if not research_loop.handles(event.type) or not event.research_id:
            return
        record = await self.store.find(event.research_id)
        if record is None or record.value.research.state in TERMINAL_STATES:
            return
        proposed = list(body_of(event).ideas) if event.type == "idea.proposed" else []
        context = await self._context(record.value.research, proposed)
        memories: list[Memory] = []

        def apply(stored: StoredResearch) -> Change[StoredResearch] | None:
            try:
                loop = stored.running_loop() or loop_pb2.ResearchLoop()
            except OldLoopSchema as exc:
                return self._refuse(stored, event, str(exc))
            outcome = research_loop.apply(stored.research, loop, event, context, self.config)
            if outcome is None:
                # A stale answer changes nothing in the loop but is still an answer: not awaited any more.
                return Change(stored, []) if stored.track(event, []) else None
            outcome.research.updated_at.GetCurrentTime()
            memories[:] = outcome.memories
            updated = StoredResearch(outcome.research, outcome.loop, awaiting=stored.awaiting)
            updated.track(event, outcome.events)
            if updated.research.state in TERMINAL_STATES:
                updated.awaiting.clear()  # an ended research waits for nothing
            return Change(updated, outcome.events)

        # The record read above is the one the step works on (read again only when a concurrent write
        # beat this one), so an event decodes the record once and encodes it once. Off the event loop: a
        # step may run TPE (tens of milliseconds) while other events wait.
        await self.store.mutate(event.research_id, apply, cause_id=event.id, off_loop=True, read=record)
        await self._remember(memories)

    def _refuse(
        self, stored: StoredResearch, cause: events_pb2.Event, why: str
    ) -> Change[StoredResearch] | None:
        """A research whose loop an earlier version stored ends FAILED, saying so (its record is kept)."""
        research = stored.research
        if research.state in TERMINAL_STATES:
            return None
        research.state = research_pb2.RESEARCH_STATE_FAILED
        research.state_reason = why
        research.updated_at.GetCurrentTime()
        ended = make_event(
            "research.failed",
            research.id,
            events_pb2.ResearchEnded(reason=why),
            event_id=derived_id("e", f"{cause.id}:old-loop"),
            correlation_id=cause.id,
            source=self.config.source,
        )
        return Change(stored, [ended])

    async def _context(
        self, research: research_pb2.Research, proposed: Sequence[idea_pb2.Idea]
    ) -> StepContext:
        context = StepContext(now=self.clock())
        if self.ledger is not None:
            total = (await self.ledger.usage(research.id)).total
            context.tokens, context.cost_usd = total.tokens, total.cost_usd
            context.llm_seconds = total.latency_seconds
        if self.memory is None:
            return context
        async with self._memory_lock:
            try:
                context.novelty, context.recalled = await asyncio.to_thread(self._look_up, research, proposed)
            except Exception:  # memory is advice: the loop goes on without it
                log.exception("memory lookup failed", extra={"research_id": research.id})
        return context

    def _look_up(
        self, research: research_pb2.Research, proposed: Sequence[idea_pb2.Idea]
    ) -> tuple[dict[str, Novelty], list[str]]:
        """How close each idea comes to one tried before, and what earlier research on the dataset taught."""
        assert self.memory is not None
        dataset = research.plan.dataset
        novelty = {}
        with self.memory.open() as memory:
            for idea in proposed:
                closest = memory.nearest(
                    f"{idea.title}: {idea.change}", kind="idea", filters={"dataset": dataset}
                )
                score = (closest.score or 0.0) if closest else 0.0
                duplicate = ""
                if closest and score >= IDEA_DUPLICATE_SIMILARITY:
                    duplicate = closest.payload.get("title", closest.text)
                novelty[idea.id] = Novelty(duplicate, score)
            found = memory.recall(research.goal, kinds=["lesson"], filters={"dataset": dataset}, k=5)
        return novelty, [m.text for m in found if m.payload.get("research_id") != research.id]

    async def _remember(self, memories: list[Memory]) -> None:
        if self.memory is None or not memories:
            return

        def write() -> None:
            assert self.memory is not None
            with self.memory.open() as memory:
                for m in memories:
                    memory.remember_many(m.kind, [(m.text, dict(m.payload))], keys=[m.key])

        async with self._memory_lock:
            try:
                await asyncio.to_thread(write)
            except Exception:  # memory is advice: the loop goes on without it
                log.exception("could not remember", extra={"count": len(memories)})

    # -- direct calls (ManagerService): the same rules as the loop, nothing stored --------------------------

    async def _running(self, research_id: str) -> tuple[research_pb2.Research, loop_pb2.ResearchLoop]:
        stored = (await self.store.get(research_id)).value
        research = stored.research
        check_owner(research)
        loop = stored.loop_for_caller()
        if loop is None or not loop.phase:
            state = research_pb2.ResearchState.Name(research.state)
            raise FailedPrecondition(f"research {research_id} is {state}: its loop has not started")
        return research, loop

    async def review(self, research_id: str, idea: idea_pb2.Idea) -> manager_pb2.IdeaReview:
        """How the manager would review `idea` for the research now."""
        research, loop = await self._running(research_id)
        context = await self._context(research, [idea])
        return ideas.review(research.plan, loop, idea, context.novelty.get(idea.id, Novelty()))

    async def decision(self, research_id: str) -> tuple[manager_pb2.DecisionKind, str]:
        """What the manager would decide for the research now."""
        research, loop = await self._running(research_id)
        context = await self._context(research, [])
        step = Step(research, loop, events_pb2.Event(), context, self.config)
        return policy.decide(step)


__all__ = ["HANDLED", "IDEA_DUPLICATE_SIMILARITY", "Conductor"]

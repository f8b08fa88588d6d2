"""The research lifecycle behind the Lab API: storing researches, planning them when their events arrive,
human decisions, cancellation and watching. Plain Python over a StateStore and an event reader."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from google.protobuf.message import Message

from airlab import auth, domain
from airlab.blobs import ArtifactStore
from airlab.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from airlab.events import follow_up_id, make_event, now_timestamp, research_filter
from airlab.ids import check_id, check_token, new_id
from airlab.research_record import StoredResearch, research_at
from airlab.state import Change, StateStore
from airlab.v1 import events_pb2, lab_pb2, research_pb2
from airlab_manager.checks import check_enum, check_hints, check_owner, check_text, research_id_for_request
from airlab_manager.planner import Planner, PlanOutcome, PlanRequest
from airlab_manager.reports import read_report

State = research_pb2.ResearchState
TERMINAL_STATES = {
    research_pb2.RESEARCH_STATE_COMPLETED,
    research_pb2.RESEARCH_STATE_FAILED,
    research_pb2.RESEARCH_STATE_CANCELLED,
}
TERMINAL_EVENTS = {"research.completed", "research.failed", "research.cancelled"}
# Events after which the manager (re)plans a research.
PLAN_TRIGGERS = ("research.created", "research.answered")
ANSWER_KEYS = ("dataset", "metric", "baseline", "template")
PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX = 50, 500


class EventReader(Protocol):
    def read(
        self, subject_filter: str, *, from_sequence: int = 0, follow: bool = False
    ) -> AsyncIterator[events_pb2.Event]: ...


class Lab:
    def __init__(
        self,
        store: StateStore[StoredResearch],
        reader: EventReader,
        planner: Planner,
        *,
        source: str = "manager",
        artifacts: ArtifactStore | None = None,
    ) -> None:
        self.store = store
        self.reader = reader
        self.planner = planner
        self.source = source
        # Where the reviewer stores reports (GetReport reads them from there).
        self.artifacts = artifacts

    def _event(
        self, event_type: str, research_id: str, body: Message, event_id: str, cause: str = ""
    ) -> events_pb2.Event:
        return make_event(
            event_type, research_id, body, event_id=event_id, correlation_id=cause, source=self.source
        )

    def _announce(self, event_type: str, research_id: str, body: Message, cause_id: str) -> events_pb2.Event:
        """The event a person's command produces. Its id differs from the command's cause id, which marks
        the command applied on the record: handlers of the event must not find it applied already."""
        suffix = event_type.split(".", 1)[1]
        return self._event(event_type, research_id, body, follow_up_id(cause_id, suffix), cause_id)

    # -- commands -------------------------------------------------------------------------------------------

    async def start_research(self, request: lab_pb2.StartResearchRequest) -> research_pb2.Research:
        owner = auth.current.get().name
        self.planner.check(PlanRequest.of(request), owner)
        check_enum("gates", research_pb2.HumanGates, request.gates)
        if request.request_id:
            check_token("request_id", request.request_id)
        research_id = (
            research_id_for_request(owner, request.request_id) if request.request_id else new_id("r")
        )
        now = now_timestamp()
        research = research_pb2.Research(
            id=research_id,
            goal=request.goal.strip(),
            state=research_pb2.RESEARCH_STATE_CREATED,
            dataset_hint=request.dataset,
            metric_hint=request.metric,
            baseline_hint=request.baseline,
            requested_budget=request.budget,
            user_dataset=request.user_dataset,
            until_hint=request.until,
            template_hint=request.template,
            owner=owner,
            gates=request.gates or research_pb2.HUMAN_GATES_OFF,
            allow_defaults=request.allow_defaults,
            created_at=now,
            updated_at=now,
        )
        created = self._event(
            "research.created",
            research_id,
            events_pb2.ResearchCreated(goal=research.goal),
            f"{research_id}.created",
        )
        try:
            record = await self.store.create(research_id, StoredResearch(research), [created])
        except AlreadyExists:
            existing = await self.get_research(research_id)
            if existing.goal != research.goal:
                raise AlreadyExists(
                    f"request_id {request.request_id!r} already started research {research_id} "
                    "with another goal"
                ) from None
            return existing
        return research_at(record)

    async def get_research(self, research_id: str, field: str = "id") -> research_pb2.Research:
        """The research, if the caller may see it (PermissionDenied otherwise)."""
        check_id(field, research_id, "r")
        research = research_at(await self.store.get(research_id))
        check_owner(research)
        return research

    async def get_report(self, research_id: str, with_pdf: bool = False) -> lab_pb2.ResearchReport:
        """The report's files, read from the artifact store (the caller needs no access to it); the paper
        (report.pdf) too `with_pdf`."""
        research = await self.get_research(research_id)
        if not research.report_markdown_key:
            state = State.Name(research.state).removeprefix("RESEARCH_STATE_").lower()
            raise FailedPrecondition(
                f"research {research_id} has no report yet ({state}: {research.state_reason})"
            )
        if self.artifacts is None:
            raise FailedPrecondition("this manager has no artifact store to read reports from")
        return await asyncio.to_thread(read_report, self.artifacts, research, with_pdf=with_pdf)

    async def list_research(self, request: lab_pb2.ListResearchRequest) -> lab_pb2.ListResearchResponse:
        if request.page_size > PAGE_SIZE_MAX:
            raise InvalidArgument("page_size", f"must be 0..{PAGE_SIZE_MAX}, got {request.page_size}")
        check_enum("state", research_pb2.ResearchState, request.state)
        page_size = request.page_size or PAGE_SIZE_DEFAULT
        researches = []
        for key in await self.store.keys():
            record = await self.store.find(key)
            if record is not None:
                researches.append(research_at(record))
        if request.state:
            researches = [r for r in researches if r.state == request.state]
        caller = auth.current.get()
        researches = [r for r in researches if caller.may_see(r.owner)]
        researches.sort(key=lambda r: (r.created_at.ToNanoseconds(), r.id), reverse=True)
        start = 0
        if request.page_token:
            ids = [r.id for r in researches]
            if request.page_token not in ids:
                raise InvalidArgument(
                    "page_token", "is not a token this list returned (or its research is gone)"
                )
            start = ids.index(request.page_token) + 1
        page = researches[start : start + page_size]
        more = start + page_size < len(researches)
        return lab_pb2.ListResearchResponse(
            researches=page, next_page_token=page[-1].id if more and page else ""
        )

    async def _change(
        self,
        research_id: str,
        field: str,
        change: Callable[[research_pb2.Research], tuple[str, Message]],
    ) -> research_pb2.Research:
        """A person's change of a research (cancel, approve, reject): the research must exist and be the
        caller's; `change` edits it and names the event that announces it (or raises to refuse); one
        compare-and-set stores both."""
        await self.get_research(research_id, field)
        cause = new_id("c")

        def mutation(stored: StoredResearch) -> Change[StoredResearch]:
            research = stored.research
            event_type, body = change(research)
            research.updated_at.GetCurrentTime()
            event = self._announce(event_type, research.id, body, cause)
            return Change(stored, [event])

        record, _ = await self.store.mutate(research_id, mutation, cause_id=cause)
        return research_at(record)

    async def cancel_research(self, request: lab_pb2.CancelResearchRequest) -> research_pb2.Research:
        check_id("id", request.id, "r")
        check_text("reason", request.reason)

        def cancel(research: research_pb2.Research) -> tuple[str, Message]:
            if research.state in TERMINAL_STATES:
                raise FailedPrecondition(
                    f"research {research.id} is already {State.Name(research.state)} and cannot be cancelled"
                )
            research.state = research_pb2.RESEARCH_STATE_CANCELLED
            research.state_reason = f"cancelled: {request.reason or 'no reason given'}"
            return "research.cancelled", events_pb2.ResearchCancelled(reason=request.reason)

        return await self._change(request.id, "id", cancel)

    async def approve(self, request: lab_pb2.ApproveRequest) -> research_pb2.Research:
        check_id("research_id", request.research_id, "r")
        check_text("comment", request.comment)
        for key in request.answers:
            if key not in ANSWER_KEYS:
                raise InvalidArgument(
                    f"answers.{key}", f"unknown question key; expected one of {', '.join(ANSWER_KEYS)}"
                )
        answers = dict(request.answers)
        if answers.get("template", "") and answers["template"] not in domain.TEMPLATES:
            raise InvalidArgument(
                "answers.template", f"unknown job template; known: {', '.join(domain.TEMPLATES)}"
            )
        check_hints(
            self.planner.catalog,
            answers.get("dataset", ""),
            answers.get("metric", ""),
            answers.get("baseline", ""),
            prefix="answers.",
        )

        def approve(research: research_pb2.Research) -> tuple[str, Message]:
            self._check_subject(research, request.subject)
            if research.state == research_pb2.RESEARCH_STATE_NEEDS_HUMAN:
                missing = [q.key for q in research.questions if not answers.get(q.key)]
                if missing:
                    raise InvalidArgument(
                        f"answers.{missing[0]}", "is required to answer the manager's question"
                    )
                research.dataset_hint = answers.get("dataset", research.dataset_hint)
                research.metric_hint = answers.get("metric", research.metric_hint)
                research.baseline_hint = answers.get("baseline", research.baseline_hint)
                research.template_hint = answers.get("template", research.template_hint)
                check_hints(
                    self.planner.catalog,
                    research.dataset_hint,
                    research.metric_hint,
                    research.baseline_hint,
                    "answers.",
                )
                del research.questions[:]
                research.state = research_pb2.RESEARCH_STATE_CREATED
                research.state_reason = "answered by a person; planning again"
                return "research.answered", events_pb2.ResearchAnswered(
                    answers=answers, comment=request.comment
                )
            if research.awaiting in ("", "plan"):
                research.state = research_pb2.RESEARCH_STATE_PLANNED
                research.state_reason = "plan approved by a person"
                research.awaiting = ""
                return "research.approved", events_pb2.PersonDecision(subject="plan", comment=request.comment)
            # An idea under the every-experiment gate, or an escalation.
            subject, idea_id = research.awaiting, research.awaiting_idea_id
            research.state = research_pb2.RESEARCH_STATE_RUNNING
            research.state_reason = f"{subject} approved by a person"
            research.awaiting, research.awaiting_idea_id = "", ""
            body = events_pb2.PersonDecision(subject=subject, idea_id=idea_id, comment=request.comment)
            return "research.approved", body

        return await self._change(request.research_id, "research_id", approve)

    async def reject(self, request: lab_pb2.RejectRequest) -> research_pb2.Research:
        check_id("research_id", request.research_id, "r")
        check_text("reason", request.reason, required=True)

        def reject(research: research_pb2.Research) -> tuple[str, Message]:
            self._check_subject(research, request.subject)
            if research.awaiting in ("experiment", "continue"):
                subject, idea_id = research.awaiting, research.awaiting_idea_id
                research.state = research_pb2.RESEARCH_STATE_RUNNING
                research.state_reason = f"{subject} rejected by a person: {request.reason}"
                research.awaiting, research.awaiting_idea_id = "", ""
                body = events_pb2.PersonDecision(subject=subject, idea_id=idea_id, comment=request.reason)
            else:
                research.state = research_pb2.RESEARCH_STATE_CANCELLED
                research.state_reason = f"rejected by a person: {request.reason}"
                body = events_pb2.PersonDecision(subject=request.subject or "plan", comment=request.reason)
            return "research.rejected", body

        return await self._change(request.research_id, "research_id", reject)

    @staticmethod
    def _check_subject(research: research_pb2.Research, subject: str) -> None:
        waiting = {
            research_pb2.RESEARCH_STATE_NEEDS_HUMAN: "questions",
            research_pb2.RESEARCH_STATE_AWAITING_APPROVAL: research.awaiting or "plan",
        }
        if research.state not in waiting:
            raise FailedPrecondition(
                f"research {research.id} is {State.Name(research.state)}: "
                "nothing waits for a person's decision"
            )
        allowed = (waiting[research.state],) if research.awaiting else (waiting[research.state], "plan")
        if subject and subject not in allowed:
            raise InvalidArgument(
                "subject", f"{subject!r} does not wait for a decision; {waiting[research.state]!r} does"
            )

    # -- events ---------------------------------------------------------------------------------------------

    async def on_event(self, event: events_pb2.Event) -> None:
        """Plan a research when it is created or a person answered its questions. Idempotent by event id."""
        if event.type not in PLAN_TRIGGERS:
            return

        def plan(stored: StoredResearch) -> Change[StoredResearch] | None:
            research = stored.research
            if research.state != research_pb2.RESEARCH_STATE_CREATED:
                return None  # cancelled or already planned meanwhile
            outcome = self.planner.plan(
                PlanRequest(
                    goal=research.goal,
                    dataset=research.dataset_hint,
                    metric=research.metric_hint,
                    baseline=research.baseline_hint,
                    budget=research.requested_budget,
                    allow_defaults=research.allow_defaults,
                    user_dataset=research.user_dataset,
                    until=research.until_hint,
                    template=research.template_hint,
                )
            )
            return Change(stored, [self._apply_outcome(research, outcome, event)])

        await self.store.mutate(event.research_id, plan, cause_id=event.id)

    def _apply_outcome(
        self, research: research_pb2.Research, outcome: PlanOutcome, cause: events_pb2.Event
    ) -> events_pb2.Event:
        """Set the plan (or the questions) on `research`; the event that announces it."""
        research.updated_at.GetCurrentTime()
        del research.questions[:]
        if outcome.plan is None:
            research.state = research_pb2.RESEARCH_STATE_NEEDS_HUMAN
            research.state_reason = "the goal could not be pinned down: questions wait for a person"
            research.questions.extend(outcome.questions)
            event_type = "research.needs_human"
            body: Message = events_pb2.ResearchNeedsHuman(questions=outcome.questions)
        else:
            research.plan.CopyFrom(outcome.plan)
            gated = research.gates in (
                research_pb2.HUMAN_GATES_PLAN,
                research_pb2.HUMAN_GATES_EVERY_EXPERIMENT,
            )
            if gated:
                research.state = research_pb2.RESEARCH_STATE_AWAITING_APPROVAL
                research.state_reason = "the plan waits for a person's approval"
                research.awaiting = "plan"
                event_type = "research.awaiting_approval"
                body = events_pb2.ResearchAwaitingApproval(
                    subject="plan", plan=outcome.plan, reason=research.state_reason
                )
            else:
                research.state = research_pb2.RESEARCH_STATE_PLANNED
                research.state_reason = "planned"
                event_type = "research.planned"
                body = events_pb2.ResearchPlanned(plan=outcome.plan)
        return self._event(event_type, research.id, body, follow_up_id(cause, "planned"), cause.id)

    async def recover(self) -> int:
        """After a crash: publish every event that was committed but not yet published."""
        return await self.store.flush_all()

    # -- queries --------------------------------------------------------------------------------------------

    def preview_plan(self, request: PlanRequest) -> PlanOutcome:
        self.planner.check(request, auth.current.get().name)
        return self.planner.plan(request)

    async def watch(self, request: lab_pb2.WatchResearchRequest) -> AsyncIterator[events_pb2.Event]:
        await self.get_research(request.id)  # NOT_FOUND before streaming anything
        async for event in self.reader.read(
            research_filter(request.id), from_sequence=request.from_sequence, follow=request.follow
        ):
            yield event
            if request.follow and event.type in TERMINAL_EVENTS:
                return

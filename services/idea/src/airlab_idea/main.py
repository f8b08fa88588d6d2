"""Entrypoint of the idea service: `airlab-idea` (or `python -m airlab_idea`).

It answers `idea.requested` events with `idea.proposed`, and IdeaService.ProposeIdeas calls; both run
the same agent."""

from __future__ import annotations

import asyncio
import json
import logging

from airlab import bus_access, literature, records, techniques
from airlab.blobs import ArtifactStore, artifact_store_from, experiment_key
from airlab.events import body_of
from airlab.ids import check_id
from airlab.llm.factory import llm_for
from airlab.research_record import profiling_run
from airlab.service import ServiceContext, run_service
from airlab.v1 import events_pb2, idea_pb2, idea_pb2_grpc, research_pb2
from airlab_idea.agent import IdeaAgent

log = logging.getLogger(__name__)
(CONSUMER,) = bus_access.DURABLES["idea"]
REQUESTED = "idea.requested"


async def load_profile(
    artifacts: ArtifactStore, research_id: str, experiment_id: str
) -> techniques.DataProfile | None:
    """The data profile a baseline run wrote into its result.json; None (and a warning) when it has none
    or it cannot be read: ideas then come without it."""
    if not experiment_id:
        return None
    try:
        raw = await asyncio.to_thread(
            artifacts.get, experiment_key(research_id, experiment_id, "result.json")
        )
        found = json.loads(raw).get("profile")
        return techniques.DataProfile.model_validate(found) if found else None
    except Exception as exc:
        log.warning("no data profile: %s", exc, extra={"research_id": research_id})
        return None


class IdeaServicer(idea_pb2_grpc.IdeaServiceServicer):
    def __init__(self, agent: IdeaAgent, bus: records.Asker, artifacts: ArtifactStore) -> None:
        self.agent = agent
        self.bus = bus
        self.artifacts = artifacts

    async def ProposeIdeas(
        self, request: idea_pb2.ProposeIdeasRequest, context: object
    ) -> idea_pb2.ProposeIdeasResponse:
        check_id("research_id", request.research_id, "r")
        research, loop = await records.fetch(self.bus, request.research_id)
        # The same evidence as the loop's requests: the data profile, once the baseline measured it.
        profiled = profiling_run(research.plan, loop) if loop is not None else ""
        profile = await load_profile(self.artifacts, request.research_id, profiled)
        related = list(loop.related_work) if loop is not None else []
        ideas = await self.agent.propose(research, request.count, profile=profile, related=related)
        return idea_pb2.ProposeIdeasResponse(ideas=ideas)


class RelatedWork:
    """The related work of each research, searched once per research by this process (the search's own
    disk cache keeps answers across restarts): papers as the loop stores them, and the search's status."""

    def __init__(self, search: literature.Literature, keep: int = 256) -> None:
        self.search = search
        self.keep = keep
        self._found: dict[str, tuple[list[idea_pb2.Paper], str]] = {}

    async def of(self, research: research_pb2.Research) -> tuple[list[idea_pb2.Paper], str]:
        if research.id not in self._found:
            plan = research.plan
            query = literature.query_for(plan.task, plan.dataset, research.goal)
            found = await asyncio.to_thread(self.search.search, query)
            if found.problems:
                log.warning("literature search: %s", found.status, extra={"research_id": research.id})
            if len(self._found) >= self.keep:
                self._found.pop(next(iter(self._found)))
            self._found[research.id] = ([literature.to_proto(p) for p in found.papers], found.status)
        return self._found[research.id]


def setup(context: ServiceContext) -> None:
    agent = IdeaAgent(llm_for(context))
    settings = context.settings
    related_work = RelatedWork(
        literature.Literature(settings.literature, settings.workspace.resolve() / "cache" / "literature")
    )
    artifacts = artifact_store_from(context.settings)
    servicer = IdeaServicer(agent, context.bus, artifacts)
    context.host.add(idea_pb2_grpc.add_IdeaServiceServicer_to_server, servicer, "airlab.v1.IdeaService")

    async def propose(event: events_pb2.Event) -> tuple[str, events_pb2.IdeaProposed]:
        request: events_pb2.IdeaRequested = body_of(event)
        if not request.HasField("research"):
            return "idea.proposed", events_pb2.IdeaProposed(
                round=request.round, error="the request carries no research (sent by an older manager)"
            )
        profile = await load_profile(artifacts, event.research_id, request.profile_experiment)
        if request.measured:  # no LLM and no literature: the profile's measured steps alone
            answer = events_pb2.IdeaProposed(round=request.round)
            try:
                answer.ideas.extend(
                    agent.measured(request.research, request.tried, ids_from=event.id, profile=profile)
                )
            except Exception as exc:  # as a failed LLM call: the loop decides, no redelivery repeats it
                log.exception("the profile's idea failed", extra={"research_id": event.research_id})
                answer.error = f"{type(exc).__name__}: {exc}"
            if not answer.ideas and not answer.error:
                answer.error = "no feature idea from the data profile (no table, or fewer than two steps)"
            return "idea.proposed", answer
        # Literature is advice: its search says what happened and never fails the round.
        papers, status = await related_work.of(request.research)
        answer = events_pb2.IdeaProposed(round=request.round, related_work=papers, related_work_status=status)
        try:
            ideas = await agent.propose(
                request.research,
                request.count,
                request.tried,
                results=request.results,
                recalled=request.recalled,
                ids_from=event.id,
                profile=profile,
                related=papers,
            )
        except Exception as exc:  # the loop decides what a round without ideas means
            log.exception("proposing failed", extra={"research_id": event.research_id})
            answer.error = f"{type(exc).__name__}: {exc}"
            return "idea.proposed", answer
        answer.ideas.extend(ideas)
        return "idea.proposed", answer

    context.answer(CONSUMER, {REQUESTED: (propose, "proposed")})


def main() -> None:
    run_service("idea", setup)


if __name__ == "__main__":
    main()

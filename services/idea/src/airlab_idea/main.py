"""Entrypoint of the idea service: `airlab-idea` (or `python -m airlab_idea`)."""

from __future__ import annotations

from google.protobuf import json_format

from airlab.blobs import artifact_store_from
from airlab.ids import check_id
from airlab.llm.accounting import USAGE_BUCKET, ArtifactExchangeLog, KvUsageLedger
from airlab.llm.client import LLMClient
from airlab.llm.config import LLMConfig
from airlab.service import ServiceContext, run_service
from airlab.state import RESEARCH_BUCKET, StateStore
from airlab.v1 import idea_pb2, idea_pb2_grpc, research_pb2
from airlab_idea.agent import IdeaAgent


class IdeaServicer(idea_pb2_grpc.IdeaServiceServicer):
    def __init__(self, agent: IdeaAgent, researches: StateStore) -> None:
        self.agent = agent
        self.researches = researches

    async def ProposeIdeas(
        self, request: idea_pb2.ProposeIdeasRequest, context: object
    ) -> idea_pb2.ProposeIdeasResponse:
        check_id("research_id", request.research_id, "r")
        record = await self.researches.get(request.research_id)
        research = json_format.ParseDict(record.data, research_pb2.Research(), ignore_unknown_fields=True)
        return idea_pb2.ProposeIdeasResponse(ideas=await self.agent.propose(research, request.count))


def setup(context: ServiceContext) -> None:
    settings = context.settings
    researches = StateStore(context.bus, RESEARCH_BUCKET, kind="research")
    usage = StateStore(context.bus, USAGE_BUCKET, kind="usage")
    llm = LLMClient(
        LLMConfig.load().with_urls(settings.llm_urls),
        ledger=KvUsageLedger(usage),
        exchanges=ArtifactExchangeLog(artifact_store_from(settings)),
    )
    servicer = IdeaServicer(IdeaAgent(llm), researches)
    context.host.add(idea_pb2_grpc.add_IdeaServiceServicer_to_server, servicer, "airlab.v1.IdeaService")

    async def start() -> None:
        await researches.open()
        await usage.open()

    context.on_start(start)
    context.on_stop(llm.close)


def main() -> None:
    run_service("idea", setup)


if __name__ == "__main__":
    main()

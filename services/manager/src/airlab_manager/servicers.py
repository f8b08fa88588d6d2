"""gRPC adapters: each method hands the request to the Lab and returns its answer."""

from __future__ import annotations

from collections.abc import AsyncIterator

from airlab.errors import InvalidArgument
from airlab.ids import check_id
from airlab.v1 import events_pb2, lab_pb2, lab_pb2_grpc, manager_pb2, manager_pb2_grpc, research_pb2
from airlab_manager.conductor import Conductor
from airlab_manager.lab import Lab
from airlab_manager.planner import PlanRequest


class LabServicer(lab_pb2_grpc.LabServiceServicer):
    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    async def StartResearch(
        self, request: lab_pb2.StartResearchRequest, context: object
    ) -> research_pb2.Research:
        return await self.lab.start_research(request)

    async def GetResearch(
        self, request: lab_pb2.GetResearchRequest, context: object
    ) -> research_pb2.Research:
        return await self.lab.get_research(request.id)

    async def ListResearch(
        self, request: lab_pb2.ListResearchRequest, context: object
    ) -> lab_pb2.ListResearchResponse:
        return await self.lab.list_research(request)

    async def WatchResearch(
        self, request: lab_pb2.WatchResearchRequest, context: object
    ) -> AsyncIterator[events_pb2.Event]:
        async for event in self.lab.watch(request):
            yield event

    async def CancelResearch(
        self, request: lab_pb2.CancelResearchRequest, context: object
    ) -> research_pb2.Research:
        return await self.lab.cancel_research(request)

    async def Approve(self, request: lab_pb2.ApproveRequest, context: object) -> research_pb2.Research:
        return await self.lab.approve(request)

    async def Reject(self, request: lab_pb2.RejectRequest, context: object) -> research_pb2.Research:
        return await self.lab.reject(request)

    async def GetReport(self, request: lab_pb2.GetReportRequest, context: object) -> lab_pb2.ResearchReport:
        return await self.lab.get_report(request.id, with_pdf=request.pdf)


class ManagerServicer(manager_pb2_grpc.ManagerServiceServicer):
    def __init__(self, lab: Lab, conductor: Conductor) -> None:
        self.lab = lab
        self.conductor = conductor

    async def PlanResearch(
        self, request: manager_pb2.PlanResearchRequest, context: object
    ) -> manager_pb2.PlanResearchResponse:
        outcome = self.lab.preview_plan(PlanRequest.of(request))
        return manager_pb2.PlanResearchResponse(plan=outcome.plan, questions=outcome.questions)

    async def ReviewIdea(
        self, request: manager_pb2.ReviewIdeaRequest, context: object
    ) -> manager_pb2.IdeaReview:
        check_id("research_id", request.research_id, "r")
        if not request.idea.title.strip():
            raise InvalidArgument("idea.title", "is required")
        return await self.conductor.review(request.research_id, request.idea)

    async def Decide(self, request: manager_pb2.DecideRequest, context: object) -> manager_pb2.Decision:
        check_id("research_id", request.research_id, "r")
        kind, reason = await self.conductor.decision(request.research_id)
        return manager_pb2.Decision(research_id=request.research_id, kind=kind, reason=reason)

"""gRPC adapter of the runner: each method hands the request to the Runner."""

from __future__ import annotations

from collections.abc import AsyncIterator

from airlab.v1 import runner_pb2, runner_pb2_grpc
from airlab_runner.jobs import Runner


class RunnerServicer(runner_pb2_grpc.RunnerServiceServicer):
    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    async def Submit(self, request: runner_pb2.SubmitRequest, context: object) -> runner_pb2.Job:
        return await self.runner.submit(request.spec)

    async def GetJob(self, request: runner_pb2.GetJobRequest, context: object) -> runner_pb2.Job:
        return await self.runner.get(request.id)

    async def ListJobs(
        self, request: runner_pb2.ListJobsRequest, context: object
    ) -> runner_pb2.ListJobsResponse:
        return runner_pb2.ListJobsResponse(jobs=await self.runner.list(request.research_id))

    async def WatchJob(
        self, request: runner_pb2.WatchJobRequest, context: object
    ) -> AsyncIterator[runner_pb2.JobUpdate]:
        async for update in self.runner.watch(request.id):
            yield update

    async def CancelJob(self, request: runner_pb2.CancelJobRequest, context: object) -> runner_pb2.Job:
        return await self.runner.cancel(request.id)

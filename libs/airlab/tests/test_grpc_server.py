"""The service host in-process: health follows readiness, reflection, error mapping, UNIMPLEMENTED."""

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from airlab.errors import InvalidArgument, NotFound
from airlab.grpc_server import ServiceHost, not_yet_servicer
from airlab.settings import Settings
from airlab.v1 import idea_pb2, idea_pb2_grpc, lab_pb2, lab_pb2_grpc


class FakeLabServicer(lab_pb2_grpc.LabServiceServicer):
    """A fake Lab: raises the domain errors the real one raises, to check how the host maps them."""

    async def GetResearch(self, request, context):
        if request.id == "bad":
            raise InvalidArgument("id", "is malformed")
        raise NotFound(f"research {request.id} not found")

    async def WatchResearch(self, request, context):
        if request.id:
            raise NotFound("nothing to watch")
        yield lab_pb2.WatchResearchRequest()


@pytest.fixture
async def host(tmp_path):
    settings = Settings(grpc_host="127.0.0.1", grpc_port=0, port_file=tmp_path / "port", drain_seconds=1)
    service_host = ServiceHost("test", settings)
    service_host.add(lab_pb2_grpc.add_LabServiceServicer_to_server, FakeLabServicer(), "airlab.v1.LabService")
    idea = not_yet_servicer(idea_pb2_grpc.IdeaServiceServicer, "airlab.v1.IdeaService", "needs an LLM")
    service_host.add(idea_pb2_grpc.add_IdeaServiceServicer_to_server, idea, "airlab.v1.IdeaService")
    dependency = {"up": True}
    service_host.require(lambda: dependency["up"])
    service_host.dependency = dependency
    yield service_host
    await service_host.server.stop(0)


async def health(address, service=""):
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service)
        )
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def test_health_says_serving_only_when_started_and_dependencies_are_up(host, tmp_path):
    started = asyncio.Event()

    async def startup():
        await started.wait()

    async def shutdown():
        pass

    serving = asyncio.create_task(host.serve(startup, shutdown))
    for _ in range(100):
        if (tmp_path / "port").exists():
            break
        await asyncio.sleep(0.02)
    address = f"127.0.0.1:{int((tmp_path / 'port').read_text())}"
    assert await health(address) == "NOT_SERVING"
    async with grpc.aio.insecure_channel(address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await lab_pb2_grpc.LabServiceStub(channel).GetResearch(lab_pb2.GetResearchRequest(id="x"))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

    started.set()
    await asyncio.sleep(0.1)
    assert await health(address) == "SERVING"
    assert await health(address, "airlab.v1.LabService") == "SERVING"

    host.dependency["up"] = False
    await host.refresh_health()
    assert await health(address) == "NOT_SERVING"
    host.dependency["up"] = True
    await host.refresh_health()

    host.request_stop()
    await asyncio.wait_for(serving, 10)


async def test_errors_map_to_status_codes_and_reflection_lists_services(host):
    await host.start()
    host._started = True
    address = f"127.0.0.1:{host.port}"
    async with grpc.aio.insecure_channel(address) as channel:
        lab = lab_pb2_grpc.LabServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await lab.GetResearch(lab_pb2.GetResearchRequest(id="bad"))
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert bad.value.details() == "id: is malformed"
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await lab.GetResearch(lab_pb2.GetResearchRequest(id="r1"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as streamed:
            async for _ in lab.WatchResearch(lab_pb2.WatchResearchRequest(id="r1")):
                pass
        assert streamed.value.code() == grpc.StatusCode.NOT_FOUND

        with pytest.raises(grpc.aio.AioRpcError) as unimplemented:
            await idea_pb2_grpc.IdeaServiceStub(channel).ProposeIdeas(idea_pb2.ProposeIdeasRequest())
        assert unimplemented.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "needs an LLM" in unimplemented.value.details()

        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = {s.name async for reply in replies for s in reply.list_services_response.service}
    assert {"airlab.v1.LabService", "airlab.v1.IdeaService", "grpc.health.v1.Health"} <= names


async def test_client_channel_gives_unary_calls_a_default_deadline(tmp_path):
    """A server that never answers: the helper's channel gives up at its default deadline."""
    from airlab.grpc_client import channel

    settings = Settings(grpc_host="127.0.0.1", grpc_port=0, drain_seconds=0)
    hanging = ServiceHost("hang", settings)

    class Hangs(lab_pb2_grpc.LabServiceServicer):
        async def GetResearch(self, request, context):
            await asyncio.sleep(30)

    hanging.add(lab_pb2_grpc.add_LabServiceServicer_to_server, Hangs(), "airlab.v1.LabService")
    await hanging.start()
    hanging._started = True

    def call():
        with channel(f"127.0.0.1:{hanging.port}", default_timeout=0.3) as ch:
            lab_pb2_grpc.LabServiceStub(ch).GetResearch(lab_pb2.GetResearchRequest(id="r"))

    with pytest.raises(grpc.RpcError) as expired:
        await asyncio.to_thread(call)
    assert expired.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await hanging.server.stop(0)


async def test_corrupt_request_bytes_answer_invalid_argument_without_a_traceback(host, caplog):
    await host.start()
    host._started = True
    garbage = b"\xff\xff\xff\xff\x0f\x00corrupt"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        for method, streams in (
            ("/airlab.v1.LabService/GetResearch", False),
            ("/airlab.v1.LabService/WatchResearch", True),
        ):
            call = channel.unary_stream if streams else channel.unary_unary
            raw = call(method, request_serializer=None, response_deserializer=None)
            with pytest.raises(grpc.aio.AioRpcError) as corrupt:
                if streams:
                    async for _ in raw(garbage):
                        pass
                else:
                    await raw(garbage)
            assert corrupt.value.code() == grpc.StatusCode.INVALID_ARGUMENT, corrupt.value
            assert "could not be parsed" in corrupt.value.details()
            assert "Traceback" not in corrupt.value.details()
    assert not [r for r in caplog.records if r.exc_info], "a corrupt request logged a traceback"

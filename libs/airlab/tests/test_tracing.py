"""Trace context across the lab's seams, exported over OTLP/HTTP to a collector served by the test: a NATS
event's consumer, a job record's later run and a gRPC call each continue the trace they came from."""

import asyncio

import grpc
import pytest

from airlab import tracing
from airlab.events import make_event, type_filter
from airlab.grpc_client import channel
from airlab.grpc_server import ServiceHost
from airlab.ids import new_id
from airlab.settings import Settings
from airlab.testing import wait_until
from airlab.v1 import events_pb2, lab_pb2, lab_pb2_grpc, research_pb2


@pytest.fixture
def traced(otlp_collector):
    tracing.configure("test", otlp_collector.endpoint)
    yield otlp_collector
    tracing.shutdown()


def one(spans, name):
    (found,) = [s for s in spans if s.name == name]
    return found


def test_off_there_is_no_span_and_no_header():
    assert not tracing.enabled()
    assert tracing.carrier() == {} and tracing.headers_of([("traceparent", "00-ab-cd-01")]) == {}
    with tracing.span("anything") as span:
        assert span is None


async def test_an_event_carries_its_trace_to_the_consumer_and_a_stored_context_to_a_later_run(bus, traced):
    research_id = new_id("r")
    stored: list[dict[str, str]] = []

    async def handle(event):
        stored.append(tracing.carrier())  # what the runner keeps in a job's record

    await bus.consume("tracing-test", [type_filter("research.created")], handle)
    with tracing.span("root") as root:
        await bus.publish(make_event("research.created", research_id, events_pb2.ResearchCreated(goal="g")))
    for _ in range(500):
        if stored:
            break
        await asyncio.sleep(0.02)
    with tracing.span("run job", parent=stored[0]):  # later, outside the handler
        pass
    tracing.shutdown()  # sends what is batched

    spans = traced.received()
    root_span, handled, run = one(spans, "root"), one(spans, "handle research.created"), one(spans, "run job")
    assert root.get_span_context().trace_id == int(root_span.trace_id, 16)
    assert handled.trace_id == run.trace_id == root_span.trace_id
    assert handled.parent_id == root_span.span_id and run.parent_id == handled.span_id
    assert handled.attributes["airlab.research_id"] == research_id and handled.service == "airlab-test"


class FakeLabServicer(lab_pb2_grpc.LabServiceServicer):
    """A fake Lab that answers every GetResearch, to be called through the host's interceptors."""

    async def GetResearch(self, request, context):
        return research_pb2.Research(id=request.id)


async def test_a_grpc_call_continues_the_callers_trace(tmp_path, traced):
    settings = Settings(grpc_host="127.0.0.1", grpc_port=0, port_file=tmp_path / "port", drain_seconds=1)
    host = ServiceHost("test", settings)
    host.add(lab_pb2_grpc.add_LabServiceServicer_to_server, FakeLabServicer(), "airlab.v1.LabService")

    async def nothing():
        pass

    serving = asyncio.create_task(host.serve(nothing, nothing))
    await asyncio.to_thread(wait_until, lambda: (tmp_path / "port").exists(), 10)
    address = f"127.0.0.1:{int((tmp_path / 'port').read_text())}"

    def call() -> None:
        with tracing.span("caller"), channel(address) as lab_channel:
            lab_pb2_grpc.LabServiceStub(lab_channel).GetResearch(lab_pb2.GetResearchRequest(id="r1"))

    await asyncio.sleep(0.2)  # SERVING
    await asyncio.to_thread(call)
    await host.server.stop(0)
    serving.cancel()
    tracing.shutdown()

    spans = traced.received()
    caller, served = one(spans, "caller"), one(spans, "airlab.v1.LabService/GetResearch")
    assert served.trace_id == caller.trace_id and served.parent_id == caller.span_id
    assert served.attributes["rpc.grpc.status_code"] == grpc.StatusCode.OK.name

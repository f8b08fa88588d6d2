"""Measures the foundation on this machine, in one run: embedded stack start time (up -> all SERVING),
one event hop (publish -> handled -> ack confirmed) and one gRPC call on loopback, each over TLS (the
default) and in plain text side by side.

Usage: make bench   (or: .venv/bin/python scripts/bench_foundation.py [--rounds N])"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grpc_health.v1 import health_pb2, health_pb2_grpc

from airlab import bus_access, metrics, stack, tls, tracing
from airlab.bus import EventBus
from airlab.events import make_event, type_filter
from airlab.grpc_client import channel, client_token
from airlab.natsd import start_nats
from airlab.settings import Settings
from airlab.v1 import lab_pb2, lab_pb2_grpc


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return (
        f"p50 {pick(0.5):7.3f} ms   p90 {pick(0.9):7.3f} ms   p99 {pick(0.99):7.3f} ms   (n={len(ordered)})"
    )


def airlab(*args: str, plaintext: bool = False) -> None:
    env = {**os.environ, "AIRLAB_TLS__PLAINTEXT": "true"} if plaintext else None
    subprocess.run([sys.executable, "-m", "airlab.cli", *args], check=True, capture_output=True, env=env)


def bench_stack(rounds: int) -> tuple[list[float], Path]:
    """Times `airlab up` (CLI start included) `rounds` times; leaves the last stack running."""
    times = []
    for round_number in range(rounds):
        workspace = Path(tempfile.mkdtemp(prefix="airlab-bench-"))
        began = time.monotonic()
        airlab("up", "-w", str(workspace))
        times.append(time.monotonic() - began)
        if round_number < rounds - 1:
            airlab("down", "-w", str(workspace))
    return times, workspace


async def bench_event_hop(
    count: int, batch: int, secured: bool = False, with_tls: bool = False
) -> list[float]:
    """Publish -> handled -> acked, one event at a time. `secured`: nats-server with the lab's users and
    permissions (airlab.bus_access), the bus connected as the runner, whose event this is. `with_tls`:
    over mutual TLS too, as `airlab up` runs it."""
    with tempfile.TemporaryDirectory() as tmp:
        key = secrets.token_bytes(32)
        server_files = tls.issue(Path(tmp) / "tls", "nats") if with_tls else None
        client_files = tls.issue(Path(tmp) / "tls", "runner") if with_tls else None
        config = (
            bus_access.write_server_config(key, Path(tmp) / "auth.conf", server_files) if secured else None
        )
        server = start_nats(Path(tmp) / "nats", config=config)
        credentials = bus_access.credentials(key, "runner") if secured else None
        if secured:  # the manager sets the events stream up; the runner only uses it
            owner_files = tls.issue(Path(tmp) / "tls", "manager") if with_tls else None
            manager = EventBus(server.url, source="bench-manager", tls=owner_files,
                               credentials=bus_access.credentials(key, "manager"))  # fmt: skip
            await manager.connect()
            await manager.close()
        bus = EventBus(server.url, source="bench", credentials=credentials, tls=client_files)
        await bus.connect()
        sent: dict[str, float] = {}
        hops: list[float] = []
        settled = asyncio.Event()

        async def handle(event):  # the handler's own work is nil: this measures the bus
            return None

        def on_settled(event):
            hops.append(time.perf_counter() - sent[event.id])
            settled.set()

        await bus.consume(
            "bench", [type_filter("experiment.progress")], handle, batch=batch, on_settled=on_settled
        )
        for _ in range(count):
            event = make_event("experiment.progress")
            settled.clear()
            sent[event.id] = time.perf_counter()
            await bus.publish(event)
            await settled.wait()
        await bus.close()
        server.stop()
    return hops[10:]  # without warm-up


def bench_grpc(
    address: str, count: int, token: str, files: tls.TlsFiles | None = None
) -> tuple[list[float], list[float]]:
    with channel(address, token=token, tls=files) as lab_channel:
        lab = lab_pb2_grpc.LabServiceStub(lab_channel)
        health = health_pb2_grpc.HealthStub(lab_channel)
        research = lab.StartResearch(lab_pb2.StartResearchRequest(goal="bench on digits"))
        request = lab_pb2.GetResearchRequest(id=research.id)
        health_request = health_pb2.HealthCheckRequest()
        get_times, health_times = [], []
        for _ in range(count):
            began = time.perf_counter()
            lab.GetResearch(request, timeout=5)
            get_times.append(time.perf_counter() - began)
            began = time.perf_counter()
            health.Check(health_request, timeout=5)
            health_times.append(time.perf_counter() - began)
    return get_times[20:], health_times[20:]


def metrics_cost(rounds: int = 20_000) -> tuple[float, float]:
    """Seconds the lab's metrics (airlab.metrics) add to one handled event and to one gRPC call: the same
    recordings the consumer and the interceptor make, timed by themselves (the counters always count, so
    an event hop without them cannot be measured in the lab itself)."""
    began = time.perf_counter()
    for _ in range(rounds):
        start = time.perf_counter()
        metrics.CONSUMER_PENDING.labels("bench").set(0)
        metrics.EVENT_HANDLING.labels("bench", "experiment.progress").observe(time.perf_counter() - start)
        metrics.EVENTS_HANDLED.labels("bench", "experiment.progress", "acked").inc()
    per_event = (time.perf_counter() - began) / rounds
    began = time.perf_counter()
    for _ in range(rounds):
        start = time.perf_counter()
        metrics.GRPC_CALLS.labels("/airlab.v1.LabService/GetResearch", "OK").inc()
        metrics.GRPC_LATENCY.labels("/airlab.v1.LabService/GetResearch").observe(time.perf_counter() - start)
    return per_event, (time.perf_counter() - began) / rounds


COLLECTOR = (
    "import sys, time; from airlab.testing import OtlpCollector; c = OtlpCollector(); "
    "print(c.endpoint, flush=True); sys.stdin.read()"
)


def tracing_cost(rounds: int = 2000) -> tuple[float, float]:
    """Seconds airlab.tracing adds to one handled event that publishes one event, off (the default) and
    on (a span per event and its context in the published headers, batched and exported in the background
    to a collector in another process on loopback, within the SDK's queue of 2048 spans): the same calls
    the consumer and the publisher make."""

    def per_event() -> float:
        began = time.perf_counter()
        for _ in range(rounds):
            with tracing.handling("bench", "experiment.progress", "e", "r", {}):
                tracing.carrier()
        return (time.perf_counter() - began) / rounds

    off = per_event()
    collector = subprocess.Popen(
        [sys.executable, "-c", COLLECTOR], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert collector.stdout is not None and collector.stdin is not None
    tracing.configure("bench", collector.stdout.readline().strip())
    try:
        on = per_event()
    finally:
        tracing.shutdown()
        collector.stdin.close()
        collector.wait(timeout=10)
    return off, on


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3, help="stack starts")
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()

    starts, workspace = bench_stack(args.rounds)
    try:
        state = stack.load_state(workspace)
        assert state is not None
        token = client_token(Settings(workspace=workspace))
        plain_workspace = Path(tempfile.mkdtemp(prefix="airlab-bench-plain-"))
        airlab("up", "-w", str(plain_workspace), plaintext=True)
        plain = stack.load_state(plain_workspace)
        assert plain is not None and not plain.tls and state.tls
        plain_token = client_token(Settings(workspace=plain_workspace))
        # Over TLS, in plain text, over TLS again: the two side by side on the same machine's load.
        get_times, health_times = bench_grpc(
            state.address_of("manager"), args.calls, token, state.client_tls()
        )
        plain_times, _ = bench_grpc(plain.address_of("manager"), args.calls, plain_token)
        again, _ = bench_grpc(state.address_of("manager"), args.calls, token, state.client_tls())
        get_times += again
    finally:
        airlab("down", "-w", str(workspace))
        airlab("down", "-w", str(plain_workspace))
    hops_single = asyncio.run(bench_event_hop(args.events, batch=1))
    hops_batched = asyncio.run(bench_event_hop(args.events, batch=16))
    hops_secured = asyncio.run(bench_event_hop(args.events, batch=1, secured=True))
    hops_plain = asyncio.run(bench_event_hop(args.events, batch=1))  # again, after: the two side by side
    hops_tls = asyncio.run(bench_event_hop(args.events, batch=1, secured=True, with_tls=True))
    hops_secured += asyncio.run(bench_event_hop(args.events, batch=1, secured=True))

    runs = [round(t, 2) for t in starts]
    ratio = statistics.median(get_times) / statistics.median(health_times)
    print(f"stack start (airlab up -> 5 SERVING): median {statistics.median(starts):.2f} s, runs {runs}")
    print(f"event hop, fetch batch 1  (publish -> handled -> acked): {percentiles(hops_single)}")
    print(f"event hop, fetch batch 16 (the services' default):     {percentiles(hops_batched)}")
    bus_ratio = statistics.median(hops_secured) / statistics.median(hops_single + hops_plain)
    print(f"event hop, batch 1, bus users and permissions (runner): {percentiles(hops_secured)}")
    print(f"event hop, batch 1, no bus auth (run again after it):   {percentiles(hops_plain)}")
    print(f"bus auth / no bus auth event hop p50 ratio: {bus_ratio:.2f}")
    print(f"gRPC Lab.GetResearch (a KV read) on loopback:          {percentiles(get_times)}")
    print(f"gRPC Health.Check (no work) on loopback:               {percentiles(health_times)}")
    print(f"GetResearch / Health.Check p50 ratio: {ratio:.2f}")
    print(f"event hop, batch 1, bus users over mutual TLS (as up runs it): {percentiles(hops_tls)}")
    hop_ratio = statistics.median(hops_tls) / statistics.median(hops_secured)
    print(f"TLS / plain text event hop p50 ratio: {hop_ratio:.2f}")
    print(f"gRPC Lab.GetResearch, plain text (tls.plaintext stack):        {percentiles(plain_times)}")
    call_ratio = statistics.median(get_times) / statistics.median(plain_times)
    print(f"TLS / plain text Lab call p50 ratio: {call_ratio:.2f}")
    per_event, per_call = metrics_cost()
    event_share = per_event / statistics.median(hops_tls)
    call_share = per_call / statistics.median(get_times)
    print(
        f"metrics per event: {per_event * 1e6:.1f} us, {event_share:.2%} of the event hop p50 (as up runs it)"
    )
    print(f"metrics per gRPC call: {per_call * 1e6:.1f} us, {call_share:.2%} of the Lab call p50")
    traced_off, traced_on = tracing_cost()
    print(
        f"tracing per event, off (default): {traced_off * 1e6:.2f} us, "
        f"{traced_off / statistics.median(hops_tls):.3%} of the event hop p50"
    )
    print(
        f"tracing per event, on (OTLP export): {traced_on * 1e6:.1f} us, "
        f"{traced_on / statistics.median(hops_tls):.2%} of the event hop p50"
    )


if __name__ == "__main__":
    main()

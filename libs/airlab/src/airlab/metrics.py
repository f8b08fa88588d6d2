"""The lab's Prometheus metrics: one registry per process, served on `/metrics` by each service.

Names follow Prometheus conventions (units in the name, `_total` for counters) and every label has a
bounded set of values: consumers, event types, gRPC methods, agents and models, job states. No research
or experiment id is ever a label. Each service serves its registry on its own port: loopback and a free
port by default (`metrics_host`, `metrics_port`), written to run/<service>.metrics-port beside the gRPC
port file, so `airlab up` records it in stack.json and `airlab status` shows it. `metrics_port: -1`
turns the endpoint off (the counters still count, for nobody)."""

from __future__ import annotations

import logging
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
# Seconds from a few milliseconds (an event hop) to tens of minutes (an LLM call on a CPU, a training job).
SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

# -- events (airlab.bus) ---------------------------------------------------------------------------------
EVENTS_HANDLED = Counter(
    "airlab_events_handled_total",
    "Events a consumer's handler finished, by outcome (acked, retried, dead_lettered).",
    ["consumer", "event_type", "outcome"],
    registry=REGISTRY,
)
EVENT_HANDLING = Histogram(
    "airlab_event_handling_seconds",
    "Time a consumer's handler took for one event.",
    ["consumer", "event_type"],
    buckets=SECONDS,
    registry=REGISTRY,
)
REDELIVERIES = Counter(
    "airlab_event_redeliveries_total",
    "Events delivered to a consumer again (a handler failed, or its process died before the ack).",
    ["consumer"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "airlab_dead_letters_total",
    "Events a consumer gave up on and sent to the dead-letter subject.",
    ["consumer"],
    registry=REGISTRY,
)
CONSUMER_PENDING = Gauge(
    "airlab_consumer_pending_messages",
    "Events stored for a consumer that it has not yet been delivered (its lag).",
    ["consumer"],
    registry=REGISTRY,
)

# -- gRPC (airlab.grpc_server) ---------------------------------------------------------------------------
GRPC_CALLS = Counter(
    "airlab_grpc_calls_total",
    "gRPC calls a service answered, by method and status code.",
    ["method", "code"],
    registry=REGISTRY,
)
GRPC_LATENCY = Histogram(
    "airlab_grpc_call_seconds",
    "Time a service took to answer a gRPC call (a stream: until it ended).",
    ["method"],
    buckets=SECONDS,
    registry=REGISTRY,
)

# -- the LLM (airlab.llm.client) -------------------------------------------------------------------------
LLM_CALLS = Counter(
    "airlab_llm_calls_total",
    "Calls to an LLM server, by agent, served model and outcome (ok, error).",
    ["agent", "model", "outcome"],
    registry=REGISTRY,
)
LLM_TOKENS = Counter(
    "airlab_llm_tokens_total",
    "Tokens sent to (prompt) and received from (completion) an LLM.",
    ["agent", "model", "direction"],
    registry=REGISTRY,
)
LLM_LATENCY = Histogram(
    "airlab_llm_call_seconds",
    "Time an LLM call took, retries of one server included.",
    ["agent", "model"],
    buckets=SECONDS,
    registry=REGISTRY,
)
LLM_COST = Counter(
    "airlab_llm_cost_usd_total",
    "What LLM calls cost, at the prices the server's configuration gives.",
    ["agent", "model"],
    registry=REGISTRY,
)

# -- the runner ------------------------------------------------------------------------------------------
RUNNER_SLOTS = Gauge("airlab_runner_slots", "Jobs a runner may run at once.", registry=REGISTRY)
RUNNER_SLOTS_BUSY = Gauge("airlab_runner_slots_busy", "Jobs a runner is running now.", registry=REGISTRY)
RUNNER_QUEUE = Gauge(
    "airlab_runner_queue_length", "Jobs queued at a runner, waiting for a slot.", registry=REGISTRY
)
RUNNER_QUEUE_WAIT = Histogram(
    "airlab_runner_queue_wait_seconds",
    "Time a job waited in the runner's queue before it started.",
    buckets=SECONDS,
    registry=REGISTRY,
)
RUNNER_JOBS = Counter(
    "airlab_runner_jobs_total", "Jobs that ended, by their final state.", ["state"], registry=REGISTRY
)
RUNNER_JOB_RUN = Histogram(
    "airlab_runner_job_run_seconds",
    "Time a job ran (its attempts together), by backend.",
    ["backend"],
    buckets=SECONDS,
    registry=REGISTRY,
)
RUNNER_GPU_LEASES = Gauge("airlab_runner_gpu_leases", "GPUs a runner's jobs hold now.", registry=REGISTRY)

# -- researches (the manager) ----------------------------------------------------------------------------
RESEARCHES = Gauge(
    "airlab_researches", "Researches in the lab's store, by state.", ["state"], registry=REGISTRY
)


def port_file_beside(grpc_port_file: Path) -> Path:
    """Where a service's metrics port is written: beside its gRPC port file (run/manager.port ->
    run/manager.metrics-port), for `airlab up` and the tests' launcher alike."""
    return grpc_port_file.with_suffix(".metrics-port")


def serve(host: str, port: int, port_file: Path | None = None) -> int:
    """Serve the registry on http://host:port/metrics (0: a free port); returns the bound port, written to
    `port_file` when given. A port of -1 serves nothing and returns -1."""
    if port < 0:
        return -1
    server, _ = start_http_server(port, addr=host, registry=REGISTRY)
    bound = int(server.server_address[1])
    if port_file is not None:
        from airlab.grpc_server import write_port_file

        write_port_file(port_file, bound)
    log.info("metrics served", extra={"address": f"{host}:{bound}"})
    return bound

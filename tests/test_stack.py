"""`airlab up / status / down` as a user runs them, in a temporary workspace."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from airlab.cpus import CpuSettings, plan_cpus
from airlab.grpc_client import health_status, raw_channel
from airlab.stack import load_state
from airlab.testing import airlab_cli as airlab
from airlab.testing import wait_until
from airlab.v1 import (
    coder_pb2,
    idea_pb2,
    lab_pb2,
    manager_pb2,
    reviewer_pb2,
    runner_pb2,
)

CONTRACT_SERVICES = {
    "idea": {idea_pb2.DESCRIPTOR.services_by_name["IdeaService"].full_name},
    "manager": {
        lab_pb2.DESCRIPTOR.services_by_name["LabService"].full_name,
        manager_pb2.DESCRIPTOR.services_by_name["ManagerService"].full_name,
    },
    "coder": {coder_pb2.DESCRIPTOR.services_by_name["CoderService"].full_name},
    "reviewer": {reviewer_pb2.DESCRIPTOR.services_by_name["ReviewerService"].full_name},
    "runner": {runner_pb2.DESCRIPTOR.services_by_name["RunnerService"].full_name},
}


# A client that trusts the lab's authority but has no certificate of its own: the bus refuses it.
NATS_WITHOUT_CERTIFICATE = """
import asyncio, ssl, sys
import nats
async def main():
    context = ssl.create_default_context(cafile=sys.argv[2])
    try:
        connection = await nats.connect(sys.argv[1], tls=context, allow_reconnect=False, connect_timeout=3)
        await connection.flush(timeout=3)
        print("connected")
    except Exception as exc:
        print("refused", type(exc).__name__)
asyncio.run(main())
"""


def reflected_services(address: str, files) -> set[str]:
    with raw_channel(address, files) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        return {service.name for reply in replies for service in reply.list_services_response.service}


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def workspace(tmp_path):
    path = tmp_path / "ws"
    yield path
    airlab(path, "down")  # whatever a failed test left behind
    # The bus refused no service: each stayed within its permissions (airlab.bus_access).
    log = path / "logs" / "nats.log"
    assert not log.exists() or "Violation" not in log.read_text()


def test_up_serves_all_five_then_down_leaves_nothing(workspace):
    began = time.monotonic()
    started = airlab(workspace, "up")
    elapsed = time.monotonic() - began
    assert started.returncode == 0, started.stdout + started.stderr
    # Not a speed target (a shared machine's load decides it): only that `up` did not hang on a service.
    assert elapsed < 120, f"stack took {elapsed:.1f} s"
    assert workspace.stat().st_mode & 0o777 == 0o700  # private: no other local user reads its files

    state = json.loads((workspace / "run" / "stack.json").read_text())
    processes = {p["name"]: p for p in state["processes"]}
    assert set(processes) == {"nats", "llm", "supervisor", "dashboard", *CONTRACT_SERVICES}
    # Every hop over TLS: gRPC answers only over TLS checked against the workspace's own authority, the bus
    # wants a certificate of it from every client, the dashboard is https.
    assert state["tls"] is True and "every hop over TLS" in started.stdout
    client = load_state(workspace).client_tls()
    for name, services in CONTRACT_SERVICES.items():
        address = processes[name]["address"]
        assert health_status(address, tls=client) == "SERVING"
        assert health_status(address) == "UNREACHABLE"  # plain text gets no answer
        for service in services:
            assert health_status(address, service, tls=client) == "SERVING"
        assert services | {"grpc.health.v1.Health"} <= reflected_services(address, client)
    assert processes["dashboard"]["address"].startswith("https://127.0.0.1:")
    assert processes["nats"]["address"].startswith("tls://")
    refused = subprocess.run(
        [sys.executable, "-c", NATS_WITHOUT_CERTIFICATE, processes["nats"]["address"], str(client.ca)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "refused" in refused.stdout, refused.stdout + refused.stderr

    # The LLM server runs on cores of its own with one thread per core, and the runner is told how many
    # it holds, so experiments are pinned to the others.
    cpus = plan_cpus(CpuSettings(), local_llm=True)
    llm_pid = processes["llm"]["pid"]
    assert os.sched_getaffinity(llm_pid) == set(cpus.llm)
    command = Path(f"/proc/{llm_pid}/cmdline").read_bytes().split(b"\0")
    assert command[command.index(b"--n_threads") + 1] == str(len(cpus.llm)).encode()
    runner_env = Path(f"/proc/{processes['runner']['pid']}/environ").read_bytes().split(b"\0")
    assert f"AIRLAB_CPU__LLM_CORES={len(cpus.llm)}".encode() in runner_env

    status = airlab(workspace, "status")
    # The five services, the LLM and the dashboard.
    assert status.returncode == 0 and status.stdout.count("SERVING") == 7
    # Each service serves its Prometheus metrics on loopback, at the address stack.json records.
    for name in CONTRACT_SERVICES:
        url = processes[name]["metrics"]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics"), (name, url)
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        assert "# HELP airlab_grpc_calls_total" in text and "# HELP airlab_events_handled_total" in text
    llm = airlab(workspace, "llm", "check")
    assert llm.returncode == 0, llm.stdout + llm.stderr
    for agent in ("idea", "manager", "coder", "reviewer"):
        assert agent in llm.stdout
    assert processes["llm"]["address"] in llm.stdout

    again = airlab(workspace, "up")
    assert again.returncode == 1 and "already running" in again.stderr

    stopped = airlab(workspace, "down")
    assert stopped.returncode == 0
    deadline = time.monotonic() + 5
    while any(pid_alive(p["pid"]) for p in processes.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [name for name, p in processes.items() if pid_alive(p["pid"])] == []
    assert not (workspace / "run" / "stack.json").exists()
    assert airlab(workspace, "status").returncode == 1


def test_cli_reports_bad_input_with_exit_code_2(workspace):
    assert airlab(workspace, "up").returncode == 0
    bad_id = airlab(workspace, "status", "not-an-id")
    assert bad_id.returncode == 2 and "INVALID_ARGUMENT: id:" in bad_id.stderr
    unknown = airlab(workspace, "cancel", "r" + "0" * 26)
    assert unknown.returncode == 2 and "NOT_FOUND" in unknown.stderr
    bad_dataset = airlab(workspace, "research", "beat it", "--dataset", "imagenet")
    assert bad_dataset.returncode == 2 and "dataset: unknown dataset" in bad_dataset.stderr
    bad_answer = airlab(workspace, "approve", "r" + "0" * 26, "--answer", "no-equals-sign")
    assert bad_answer.returncode == 2
    started = airlab(workspace, "research", "beat the logistic-regression baseline on digits", "--no-follow")
    assert started.returncode == 0 and "started research r" in started.stdout
    research_id = started.stdout.split("started research ")[1].split()[0]
    # Into a pipe, even with a narrow COLUMNS, ids and addresses are never cut or wrapped.
    narrow = {**os.environ, "COLUMNS": "40"}

    def piped(name: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "airlab.cli", name, "--workspace", str(workspace)]
        return subprocess.run(command, capture_output=True, text=True, env=narrow)

    listed = piped("list")
    assert research_id in listed.stdout, listed.stdout
    status = piped("status")
    addresses = json.loads((workspace / "run" / "stack.json").read_text())["processes"]
    assert all(p["address"] in status.stdout for p in addresses if p["address"]), status.stdout
    wait_until(lambda: "dataset=digits" in airlab(workspace, "status", research_id).stdout, timeout=30)
    # Its loop is not what this test is about: stop it.
    assert airlab(workspace, "cancel", research_id, "--reason", "test").returncode == 0
    no_report = airlab(workspace, "report", research_id)
    assert no_report.returncode == 1 and "has no report yet (cancelled" in no_report.stderr + no_report.stdout

    saved = airlab(workspace, "backup", "first")
    assert saved.returncode == 0 and "'airlab_research': 1" in saved.stdout
    assert airlab(workspace, "backup", "first").returncode == 2  # names are not reused
    assert airlab(workspace, "backup", "bad name").returncode == 2
    refused = airlab(workspace, "restore", "first")
    assert refused.returncode == 2 and "not empty" in refused.stderr
    assert airlab(workspace, "restore", "missing").returncode == 2
    assert "first" in airlab(workspace, "backups").stdout


def test_the_supervisor_starts_crashed_processes_again_and_down_stops_what_runs_now(workspace):
    """kill -9 of nats-server and of every service: each runs again (same addresses), the services
    reconnect (with their bus users), `airlab status` shows the restarts, and `airlab down` stops the new
    processes too."""
    assert airlab(workspace, "up").returncode == 0
    before = {p["name"]: p for p in json.loads((workspace / "run" / "stack.json").read_text())["processes"]}
    killed = ("nats", *CONTRACT_SERVICES)
    for name in killed:
        os.kill(before[name]["pid"], signal.SIGKILL)

    client = load_state(workspace).client_tls()

    def recovered() -> bool:
        state = json.loads((workspace / "run" / "stack.json").read_text())["processes"]
        now = {p["name"]: p for p in state}
        return all(now[n]["restarts"] >= 1 and pid_alive(now[n]["pid"]) for n in killed) and all(
            health_status(now[n]["address"], tls=client) == "SERVING" for n in CONTRACT_SERVICES
        )

    wait_until(recovered, timeout=90, interval=0.5)
    after = {p["name"]: p for p in json.loads((workspace / "run" / "stack.json").read_text())["processes"]}
    for name in killed:
        assert after[name]["address"] == before[name]["address"], name
        assert after[name]["pid"] != before[name]["pid"], name
    status = airlab(workspace, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert str(after["idea"]["pid"]) in status.stdout
    # The restarted service answers a real call through the restarted bus.
    started = airlab(workspace, "research", "beat the logistic-regression baseline on wine", "--no-follow")
    assert started.returncode == 0, started.stdout + started.stderr

    assert airlab(workspace, "down").returncode == 0
    deadline = time.monotonic() + 5
    pids = [p["pid"] for p in after.values()]
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in pids if pid_alive(pid)] == []

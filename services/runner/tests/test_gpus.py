"""GPU leases in a real JetStream KV bucket against a simulated inventory, and vLLM sleep/wake calls."""

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from airlab.llm.vllm import VllmSleeper
from airlab_runner.gpus import LEASE_BUCKET, GpuLeases, detect_gpus

INVENTORY = ["0", "1"]


async def test_twenty_concurrent_jobs_never_double_book_two_gpus(bus):
    kv = await bus.key_value(LEASE_BUCKET, history=1)
    # Several runner processes (holders) compete, as on a host with more than one runner.
    holders = [GpuLeases(kv, INVENTORY, holder=f"runner-{n}", ttl=30) for n in range(4)]
    in_use: dict[str, str] = {}
    double_bookings = 0
    granted = 0

    async def job(n: int) -> None:
        nonlocal double_bookings, granted
        leases = holders[n % len(holders)]
        while True:
            gpus = await leases.try_acquire(f"job-{n}", 1)
            if gpus:
                break
            await asyncio.sleep(0.005)
        granted += 1
        for gpu in gpus:
            if gpu in in_use:
                double_bookings += 1
            in_use[gpu] = f"job-{n}"
        await asyncio.sleep(0.02)  # the job runs
        for gpu in gpus:
            in_use.pop(gpu, None)
        await leases.release(f"job-{n}", gpus)

    await asyncio.gather(*(job(n) for n in range(20)))
    assert (granted, double_bookings) == (20, 0)
    assert await holders[0].holders() == {}


async def test_a_crashed_holders_lease_expires_and_is_taken_over(bus):
    kv = await bus.key_value(LEASE_BUCKET, history=1)
    now = [1000.0]
    crashed = GpuLeases(kv, INVENTORY, holder="dead-runner", ttl=10, clock=lambda: now[0])
    alive = GpuLeases(kv, INVENTORY, holder="live-runner", ttl=10, clock=lambda: now[0])
    assert await crashed.try_acquire("j1", 2) == ["0", "1"]
    assert await alive.try_acquire("j2", 1) is None  # both held
    now[0] += 5
    await crashed.heartbeat("j1", ["0"])  # only GPU 0 is renewed
    now[0] += 6
    assert await alive.try_acquire("j2", 1) == ["1"]  # GPU 1's lease ran out
    assert set(await alive.holders()) == {"0", "1"}
    now[0] += 11
    assert await alive.try_acquire("j3", 1) == ["0"]
    try:
        await crashed.heartbeat("j1", ["0"])
    except LookupError as exc:
        assert "no longer leased" in str(exc)
    else:
        raise AssertionError("a lost lease must be reported")


async def test_asking_for_more_gpus_than_exist_fails_and_holds_nothing(bus):
    kv = await bus.key_value(LEASE_BUCKET, history=1)
    leases = GpuLeases(kv, INVENTORY, holder="r", ttl=10)
    assert await leases.try_acquire("a", 1) == ["0"]
    assert await leases.try_acquire("b", 2) is None
    assert list(await leases.holders()) == ["0"]


def test_the_configured_inventory_is_used_without_nvidia_smi(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert detect_gpus(["0", "1"]) == ["0", "1"]
    assert detect_gpus() == []


class FakeVllm(BaseHTTPRequestHandler):
    """A fake vLLM server: records the sleep / wake_up calls it gets."""

    calls: list[str] = []

    def do_POST(self):
        FakeVllm.calls.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({}).encode())

    def log_message(self, *args):
        pass


async def test_vllm_on_a_leased_gpu_sleeps_during_the_job_and_wakes_after():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeVllm)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    sleeper = VllmSleeper({"0": url})
    assert await sleeper.sleep(["1"]) == []  # no server on GPU 1
    slept = await sleeper.sleep(["0", "1"])
    await sleeper.wake(slept)
    server.shutdown()
    assert FakeVllm.calls == ["/sleep?level=1", "/wake_up"]

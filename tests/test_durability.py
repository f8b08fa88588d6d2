"""Kill the manager with SIGKILL while it works through a stream of researches, restart it, and count:
every research is planned exactly once (no lost and no doubled effects or events)."""

import asyncio
import collections

from airlab.research_record import StoredResearch, research_store
from airlab.settings import ResearchDefaults
from airlab.state import StateStore
from airlab.v1 import lab_pb2, research_pb2
from airlab_manager.catalog import DatasetCatalog
from airlab_manager.lab import Lab
from airlab_manager.main import PLANNER_CONSUMER as PLANNER
from airlab_manager.planner import Planner

N = 1000
# Fast redelivery of the messages the killed process held, so the test does not wait out the default.
FAST_REDELIVERY = {"AIRLAB_BUS__ACK_WAIT_SECONDS": "2"}


async def planned_count(store: StateStore[StoredResearch]) -> int:
    count = 0
    for key in await store.keys():
        record = await store.get(key)
        count += record.value.research.HasField("plan")  # planned (the loop may have started since)
    return count


async def wait_for_record(
    store: StateStore[StoredResearch], key: str, predicate, timeout: float = 60
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate(await store.get(key)):
        if loop.time() > deadline:
            raise TimeoutError(f"{key} did not settle")
        await asyncio.sleep(0.1)


async def wait_for_planned(store: StateStore, at_least: int, timeout: float = 60) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (count := await planned_count(store)) < at_least:
        if loop.time() > deadline:
            raise TimeoutError(f"only {count} planned")
        await asyncio.sleep(0.01)
    return count


async def wait_for_acked(bus, at_least: int, timeout: float = 60) -> int:
    """Events the planner consumer has acked: a cheap progress gauge while the manager works."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        info = await bus.js.consumer_info("AIRLAB", PLANNER)
        acked = N - info.num_pending - info.num_ack_pending
        if acked >= at_least:
            return acked
        if loop.time() > deadline:
            raise TimeoutError(f"only {acked} acked")
        await asyncio.sleep(0.002)


async def test_sigkill_mid_stream_loses_and_doubles_nothing(bus, services):
    store = await research_store(bus).open()
    lab = Lab(store, bus, Planner(DatasetCatalog.load(), ResearchDefaults()))
    # A first run creates the durable consumer; the work then piles up while no manager runs.
    assert services.start("manager").terminate() == 0
    ids = [
        (
            await lab.start_research(
                lab_pb2.StartResearchRequest(goal=f"beat the baseline on digits, try {n}")
            )
        ).id
        for n in range(N)
    ]
    manager = services.start("manager", env=FAST_REDELIVERY)
    kills = []
    for threshold in (N // 5, N // 2):
        await wait_for_acked(bus, threshold)
        manager.kill()
        kills.append(await planned_count(store))
        manager = services.start("manager", env=FAST_REDELIVERY, wait=False)
    assert all(k < N for k in kills), f"the kills came too late to interrupt the stream: {kills}"

    assert await wait_for_planned(store, N) == N
    await asyncio.sleep(3)  # let any redelivery that could double an effect arrive

    planned_events = collections.Counter()
    created_events = collections.Counter()
    async for event in bus.read("airlab.research.>"):
        if event.type == "research.planned":
            planned_events[event.research_id] += 1
        elif event.type == "research.created":
            created_events[event.research_id] += 1
    lost = [rid for rid in ids if planned_events[rid] == 0]
    doubled = [rid for rid, count in planned_events.items() if count > 1]
    assert (len(lost), len(doubled)) == (0, 0)
    assert sorted(planned_events) == sorted(ids) and sorted(created_events) == sorted(ids)
    for rid in ids:  # the loop's start (the step after planning) may still be catching up
        await wait_for_record(store, rid, lambda record: len(record.applied) >= 2 and not record.outbox)
    for rid in ids:
        record = await store.get(rid)
        research = record.value.research
        assert research.state == research_pb2.RESEARCH_STATE_RUNNING and research.HasField("plan")
        # The planning and the loop's start, and only they, were applied: each once.
        assert len(record.applied) == len(set(record.applied)) == 2
    info = await bus.js.consumer_info("AIRLAB", PLANNER)
    assert info.num_pending == 0 and info.num_ack_pending == 0
    assert manager.terminate() == 0
    print(f"killed at {kills} of {N} planned; 0 lost, 0 doubled")

"""Backup of KV state and memory into the artifact store, restored into a fresh stack."""

from contextlib import asynccontextmanager

import pytest

from airlab.backup import create_backup, list_backups, restore_backup
from airlab.blobs import LocalArtifactStore
from airlab.bus import EventBus
from airlab.errors import FailedPrecondition, NotFound
from airlab.events import make_event
from airlab.memory import LocalE5Embedder, open_memory
from airlab.natsd import start_nats
from airlab.research_record import StoredResearch, research_store
from airlab.state import JSON_OBJECTS, StateStore
from airlab.v1 import events_pb2, research_pb2


@pytest.fixture(scope="module")
def embedder():
    return LocalE5Embedder()


@asynccontextmanager
async def fresh_stack(tmp_path, embedder):
    """An empty stack to restore into: a new nats-server and a new memory."""
    fresh_nats = start_nats(tmp_path / "fresh-nats")
    fresh_bus = EventBus(fresh_nats.url, source="restore")
    await fresh_bus.connect()
    fresh_memory = open_memory(str(tmp_path / "fresh-memory"), embedder)
    try:
        yield fresh_bus, fresh_memory
    finally:
        fresh_memory.close()
        await fresh_bus.close()
        fresh_nats.stop()


async def kv_snapshot(bus):
    snapshot = {}
    for bucket in ("airlab_research", "airlab_jobs"):
        store = await StateStore(bus, bucket, JSON_OBJECTS).open()
        for key in await store.keys():
            record = await store.get(key)
            snapshot[(bucket, key)] = (record.value, record.applied)
    return snapshot


def memory_snapshot(memory):
    return {
        kind: sorted(
            (p["id"], p["payload"]["text"], tuple(round(v, 5) for v in p["vector"]))
            for p in memory.export(kind)
        )
        for kind in ("idea", "lesson")
    }


async def test_backup_then_restore_into_a_fresh_stack(bus, tmp_path, embedder):
    artifacts = LocalArtifactStore(tmp_path / "artifacts")
    memory = open_memory(str(tmp_path / "memory"), embedder)
    research = await StateStore(bus, "airlab_research", JSON_OBJECTS).open()
    jobs = await StateStore(bus, "airlab_jobs", JSON_OBJECTS).open()
    for n in range(5):
        await research.create(f"r{n}", {"goal": f"goal {n}", "state": "PLANNED"})
    await research.mutate("r1", lambda data: None, cause_id="evt-1")
    await jobs.create("j1", {"state": "QUEUED"})
    memory.remember_many("idea", [("use a CNN", {"research_id": "r1"}), ("tune C", {"research_id": "r2"})])
    memory.remember("lesson", "small data overfits deep nets", {"research_id": "r2"})
    before_kv, before_memory = await kv_snapshot(bus), memory_snapshot(memory)

    manifest = await create_backup(bus, memory, artifacts, "nightly")
    assert manifest.buckets == {"airlab_jobs": 1, "airlab_research": 5}
    assert manifest.memories == {"idea": 2, "experiment": 0, "review": 0, "lesson": 1}
    assert [m.name for m in list_backups(artifacts)] == ["nightly"]
    with pytest.raises(FailedPrecondition):
        await create_backup(bus, memory, artifacts, "nightly")
    with pytest.raises(FailedPrecondition, match="not empty"):
        await restore_backup(bus, memory, artifacts, "nightly")
    memory.close()

    async with fresh_stack(tmp_path, embedder) as (fresh_bus, fresh_memory):
        await restore_backup(fresh_bus, fresh_memory, artifacts, "nightly")
        assert await kv_snapshot(fresh_bus) == before_kv
        assert memory_snapshot(fresh_memory) == before_memory
        assert fresh_memory.recall("convolutional network", kinds=["idea"], k=1)[0].text == "use a CNN"
        with pytest.raises(NotFound):
            await restore_backup(fresh_bus, fresh_memory, artifacts, "missing")


async def test_a_tampered_backup_is_refused_before_anything_is_written(bus, tmp_path, embedder):
    artifacts = LocalArtifactStore(tmp_path / "artifacts")
    memory = open_memory(str(tmp_path / "memory"), embedder)
    research = await StateStore(bus, "airlab_research", JSON_OBJECTS).open()
    await research.create("r1", {"goal": "g"})
    memory.remember("idea", "use a CNN", {"research_id": "r1"})
    await create_backup(bus, memory, artifacts, "b1")
    memory.close()
    artifacts.put("backups/b1/memory/idea.jsonl", b'{"id": "x"}\n')  # not what the manifest recorded

    async with fresh_stack(tmp_path, embedder) as (fresh_bus, fresh_memory):
        with pytest.raises(FailedPrecondition, match="does not match"):
            await restore_backup(fresh_bus, fresh_memory, artifacts, "b1")
        assert await kv_snapshot(fresh_bus) == {}
        assert fresh_memory.count("idea") == 0


async def test_a_restore_sends_again_what_running_researches_await(bus, tmp_path, embedder):
    """The event stream is not in a backup: the requests a running research awaits are sent again, with
    their own ids, into the restored lab's bus; an ended research's are not. Live buckets (runner
    presence) are not saved."""
    artifacts = LocalArtifactStore(tmp_path / "artifacts")
    memory = open_memory(str(tmp_path / "memory"), embedder)
    researches = await research_store(bus).open()
    request = make_event(
        "experiment.requested", "r1", events_pb2.ExperimentRequested(experiment_id="x1"), event_id="e-run"
    )
    for rid, state in (
        ("r1", research_pb2.RESEARCH_STATE_RUNNING),
        ("r2", research_pb2.RESEARCH_STATE_COMPLETED),
    ):
        stored = StoredResearch(research_pb2.Research(id=rid, goal="g", state=state))
        stored.track(events_pb2.Event(), [request])
        await researches.create(rid, stored)
    presence = await bus.key_value("airlab_runners", history=1)
    await presence.put("host-a", b"alive")
    manifest = await create_backup(bus, memory, artifacts, "mid")
    assert "airlab_runners" not in manifest.buckets and manifest.buckets["airlab_research"] == 2
    memory.close()

    async with fresh_stack(tmp_path, embedder) as (fresh_bus, fresh_memory):
        # A fresh stack's runners already announced themselves: that does not make it "not empty".
        await (await fresh_bus.key_value("airlab_runners", history=1)).put("host-b", b"alive")
        restored = await restore_backup(fresh_bus, fresh_memory, artifacts, "mid")
        assert (restored.running, restored.requests_sent) == (["r1"], 1)
        sent = [e async for e in fresh_bus.read("airlab.>")]
        assert [(e.id, e.type, e.research_id) for e in sent] == [("e-run", "experiment.requested", "r1")]

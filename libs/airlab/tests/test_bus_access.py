"""The bus's users and permissions against a real nats-server started with the configuration `airlab up`
writes: no anonymous client, and each service publishes only its own events."""

import asyncio
import secrets

import nats
import nats.errors
import nats.js.errors
import pytest

from airlab import bus_access, records
from airlab.bus import BusRefused, EventBus
from airlab.errors import NotFound, Unavailable
from airlab.events import body_field, make_event, subject_for
from airlab.ids import new_id
from airlab.natsd import start_nats
from airlab.research_record import StoredResearch, research_store
from airlab.state import RESEARCH_BUCKET
from airlab.v1 import events_pb2, loop_pb2, research_pb2

KEY = secrets.token_bytes(32)
EVENT_TYPES = [
    field.name.replace("_", ".", 1)
    for field in events_pb2.Event.DESCRIPTOR.oneofs_by_name["body"].fields
    if field.name != "dead_letter"
]


def publishers_of(event_type: str) -> list[str]:
    aggregate = event_type.split(".", 1)[0]
    return [
        service
        for service, owned in bus_access.PUBLISHES.items()
        for pattern in owned
        if pattern in (event_type, f"{aggregate}.*")
    ] + [service for service in bus_access.PUBLISHES if event_type in bus_access.EVERY_SERVICE_PUBLISHES]


def test_every_event_type_of_the_contract_has_its_publishers():
    assert "research.completed" in EVENT_TYPES and "bus.undecodable" in EVENT_TYPES
    shared = {"experiment.requested": ["manager", "coder"]}  # the coder's smoke runs
    for event_type in EVENT_TYPES:
        assert body_field(event_type)  # a type the contract defines
        found = publishers_of(event_type)
        if event_type in bus_access.EVERY_SERVICE_PUBLISHES:
            assert found == list(bus_access.PUBLISHES)
        else:
            assert found == shared.get(event_type, found[:1]) and len(found) >= 1, (event_type, found)


def test_passwords_are_per_user_and_key():
    assert bus_access.password(KEY, "idea") != bus_access.password(KEY, "coder")
    assert bus_access.password(KEY, "idea") != bus_access.password(secrets.token_bytes(32), "idea")
    assert bus_access.credentials(None, "idea") is None
    with pytest.raises(ValueError, match="no bus user 'nobody'"):
        bus_access.credentials(KEY, "nobody")


@pytest.fixture
def secured_nats(tmp_path):
    config = bus_access.write_server_config(KEY, tmp_path / "auth" / "nats.conf")
    assert config.stat().st_mode & 0o777 == 0o600
    server = start_nats(tmp_path / "nats", log_file=tmp_path / "nats.log", config=config)
    yield server
    server.stop()


async def connect_as(
    url: str, user: str | None, password: str | None = None, errors: list[str] | None = None
):
    async def collect(exc: Exception) -> None:
        if errors is not None:
            errors.append(str(exc))

    return await nats.connect(
        url, user=user, password=password, allow_reconnect=False, connect_timeout=2, error_cb=collect
    )


async def test_a_client_without_the_right_password_is_refused(secured_nats):
    with pytest.raises(nats.errors.Error, match=r"(?i)authorization"):
        await connect_as(secured_nats.url, None)
    with pytest.raises(nats.errors.Error, match=r"(?i)authorization"):
        await connect_as(secured_nats.url, "manager", "not-the-password")
    # The lab's bus fails at once on a refused password instead of retrying until its timeout.
    bus = EventBus(secured_nats.url, source="idea", credentials=bus_access.BusCredentials("idea", "wrong"))
    with pytest.raises(BusRefused, match="refused user 'idea': wrong or missing credentials"):
        await asyncio.wait_for(bus.connect(timeout=20), timeout=10)


async def test_each_service_does_its_work_and_publishes_only_its_own_events(secured_nats):
    admin = EventBus(secured_nats.url, source="cli", credentials=bus_access.credentials(KEY, "admin"))
    await admin.connect(timeout=10)
    for service in bus_access.PUBLISHES:
        bus = EventBus(secured_nats.url, source=service, credentials=bus_access.credentials(KEY, service))
        await bus.connect(timeout=10)  # creates or checks the stream through JetStream's API
        own = bus_access.PUBLISHES[service][0].replace("*", "created")
        event = make_event(own, "r1", event_id=f"{service}-own")
        assert await bus.publish(event) > 0
        # Its consumers work: a durable pull consumer gets the event, and acks it.
        seen: list[str] = []

        async def handle(received: events_pb2.Event, seen: list[str] = seen) -> None:
            seen.append(received.id)

        await bus.consume(f"{service}-probe", [subject_for(own, "r1")], handle)
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.05)
        assert seen == [f"{service}-own"]
        # Its own buckets take writes; the research bucket opens to the manager alone.
        for bucket in bus_access.WRITES_BUCKETS[service]:
            kv = await bus.key_value(bucket)
            await kv.put(f"probe-{service}", b"1")
        research = await admin.key_value("airlab_research")
        await research.put("r1", b"record")
        if service == "manager":
            assert (await (await bus.key_value("airlab_research")).get("r1")).value == b"record"
        await bus.close()

    # What a service may not do, tried with a plain client so each refusal shows as the server's error.
    errors: list[str] = []
    idea = await connect_as(secured_nats.url, "idea", bus_access.password(KEY, "idea"), errors)
    js = idea.jetstream()
    with pytest.raises(nats.errors.TimeoutError):  # denied: the stream never answers
        await js.publish(subject_for("research.completed", "r1"), b"forged", timeout=1)
    with pytest.raises(nats.errors.TimeoutError):
        await js.publish("$KV.airlab_research.r1", b"overwritten", timeout=1)
    await idea.subscribe("airlab.>")  # reading raw event subjects
    await idea.subscribe(records.SUBJECTS)  # answering record requests in the manager's place
    with pytest.raises(nats.errors.TimeoutError):
        await idea.request("$JS.API.STREAM.PURGE.AIRLAB", b"", timeout=1)
    # Shrinking the stream, deleting or taking over the manager's consumer, reading stored events raw.
    refused_api = [
        "$JS.API.STREAM.UPDATE.AIRLAB",
        "$JS.API.CONSUMER.DELETE.AIRLAB.manager-conductor",
        "$JS.API.CONSUMER.CREATE.AIRLAB.manager-conductor.airlab.idea.requested.*",
        "$JS.API.CONSUMER.DURABLE.CREATE.AIRLAB.manager-planner",
        "$JS.API.STREAM.MSG.GET.AIRLAB",
        "$JS.API.DIRECT.GET.AIRLAB",
        # The manager's research records: opened, read by key, read by sequence, watched.
        "$JS.API.STREAM.INFO.KV_airlab_research",
        "$JS.API.DIRECT.GET.KV_airlab_research.$KV.airlab_research.r1",
        "$JS.API.STREAM.MSG.GET.KV_airlab_research",
        "$JS.API.CONSUMER.CREATE.KV_airlab_research",
    ]
    for subject in refused_api:
        with pytest.raises(nats.errors.TimeoutError):
            await idea.request(subject, b'{"max_msgs": 1}', timeout=1)
    await asyncio.sleep(0.3)
    await idea.close()
    violations = " | ".join(e.lower() for e in errors if "permissions violation" in e.lower())
    for subject in refused_api:
        assert f'publish to "{subject.lower()}"' in violations, (subject, errors)
    assert 'publish to "airlab.research.completed.r1"' in violations, errors
    assert 'publish to "$kv.airlab_research.r1"' in violations, errors
    assert 'subscription to "airlab.>"' in violations, errors
    assert f'subscription to "{records.SUBJECTS}"' in violations, errors
    assert 'publish to "$js.api.stream.purge.airlab"' in violations, errors
    info = await admin.js.stream_info("AIRLAB")
    assert info.config.max_msgs != 1  # the stream kept its configuration
    # Nothing forged reached the stream or the record.
    assert (await (await admin.key_value("airlab_research")).get("r1")).value == b"record"
    stored = [e.type async for e in admin.read("airlab.>")]
    assert "research.completed" not in stored
    await admin.close()


async def test_only_the_manager_sets_up_the_events_stream_and_the_others_wait_for_it(secured_nats):
    idea = EventBus(secured_nats.url, source="idea", credentials=bus_access.credentials(KEY, "idea"))
    waiting = asyncio.ensure_future(idea.connect(timeout=10))
    await asyncio.sleep(3)
    assert not waiting.done()  # its own attempt to create the stream was refused: it waits
    manager = EventBus(secured_nats.url, source="manager", credentials=bus_access.credentials(KEY, "manager"))
    await manager.connect(timeout=10)
    await asyncio.wait_for(waiting, timeout=10)
    assert await idea.publish(make_event("idea.proposed", "r1", event_id="after-wait")) > 0
    await idea.close()
    await manager.close()


async def test_services_get_research_records_from_the_manager_never_from_its_bucket(secured_nats):
    """The research bucket is the manager's: the agents ask it for a record over the bus, and the runner,
    which has no use for records, may not even ask."""
    assert bus_access.PRIVATE_BUCKETS == {RESEARCH_BUCKET: "manager"}
    manager = EventBus(secured_nats.url, source="manager", credentials=bus_access.credentials(KEY, "manager"))
    await manager.connect(timeout=10)
    store = await research_store(manager).open()
    research_id = new_id("r")
    loop = loop_pb2.ResearchLoop(round=3)
    research = research_pb2.Research(id=research_id, goal="beat the baseline")
    await store.create(research_id, StoredResearch(research, loop))
    await records.serve(manager, store)
    others = {}
    for service in [s for s in bus_access.PUBLISHES if s != "manager"]:
        others[service] = EventBus(
            secured_nats.url, source=service, credentials=bus_access.credentials(KEY, service)
        )
        await others[service].connect(timeout=10)
    for service in bus_access.ASKS_FOR_RECORDS:
        research, found_loop = await records.fetch(others[service], research_id)
        assert research.goal == "beat the baseline" and found_loop is not None and found_loop.round == 3
        with pytest.raises(NotFound, match="not found"):
            await records.fetch(others[service], new_id("r"))
    with pytest.raises(Unavailable, match="did not hand over"):
        await records.fetch(others["runner"], research_id, timeout=1)
    # No service but the manager opens the bucket (each is refused; the server never answers them).
    opened = await asyncio.gather(
        *(bus.js.key_value(RESEARCH_BUCKET) for bus in others.values()), return_exceptions=True
    )
    assert all(isinstance(result, (nats.errors.TimeoutError, nats.js.errors.Error)) for result in opened)
    for bus in others.values():
        await bus.close()
    await manager.close()

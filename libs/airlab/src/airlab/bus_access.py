"""Who may do what on the event bus: a NATS user per service, each publishing only its own events.

The lab's services already share one secret, the signing key of its gRPC tokens (airlab.auth). Each
service's NATS password is derived from it (HMAC-SHA256 of the service's name), so the bus needs no second
secret to distribute: whoever starts nats-server (`airlab up`, or the `nats-config` step of compose and k8s)
writes its users from the key, and each service computes its own password. A client without a password, or
with a wrong one, is refused; a service that publishes an event it does not own, subscribes to the raw event
subjects or deletes the stream gets a permissions violation from the server.

The `admin` user (the CLI's backups, tools, tests) has no limits. Experiments never see the key or any of
these passwords: the sandbox gives a job neither the network nor the lab's environment."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path

from airlab import auth, records
from airlab.events import DEAD_LETTER_AGGREGATE, SUBJECT_PREFIX
from airlab.settings import BusSettings, Settings
from airlab.tls import TlsFiles

ADMIN = "admin"

# The event types each service publishes (every type of the contract has a publisher: tested). Runs are
# requested by the manager and, for the smoke run of a draft, by the coder; dead letters by whichever
# service's consumer gave up; `bus.undecodable` by any reader.
PUBLISHES: dict[str, tuple[str, ...]] = {
    "manager": (
        "research.*",
        "idea.requested",
        "idea.reviewed",
        "code.requested",
        "experiment.requested",
        "evaluation.requested",
        "report.requested",
    ),
    "idea": ("idea.proposed",),
    "coder": ("code.ready", "code.failed", "experiment.requested"),
    "runner": (
        "experiment.queued",
        "experiment.started",
        "experiment.progress",
        "experiment.finished",
        "experiment.failed",
        "experiment.cancelled",
    ),
    "reviewer": ("evaluation.completed", "report.written"),
}
EVERY_SERVICE_PUBLISHES = (f"{DEAD_LETTER_AGGREGATE}.*", "bus.undecodable")

# Key-value buckets each service writes (every service may read them all: the records are the lab's state,
# and the agents' gRPC methods read research records).
WRITES_BUCKETS: dict[str, tuple[str, ...]] = {
    "manager": ("airlab_research", "airlab_llm_usage"),
    "idea": ("airlab_llm_usage",),
    "coder": ("airlab_llm_usage",),
    "reviewer": ("airlab_llm_usage",),
    "runner": (
        "airlab_jobs", "airlab_cancelled_researches", "airlab_gpu_leases", "airlab_research_storage",
        "airlab_runners",
    ),
}  # fmt: skip

# Buckets that only their owner opens. The research records are the manager's storage, in its format: the
# other services get what they need in their request events, or ask the manager (airlab.records).
RECORDS_KEEPER = "manager"
PRIVATE_BUCKETS: dict[str, str] = {"airlab_research": RECORDS_KEEPER}
# Who asks the manager for research records, on records.SUBJECTS (answered by the manager alone).
ASKS_FOR_RECORDS = ("idea", "coder", "reviewer")

# Who sets up the events stream (creates it, changes its configuration): the manager, and admin tools.
STREAM_OWNERS = ("manager", ADMIN)
EVENTS_STREAM: str = BusSettings.model_fields["stream"].default  # the settings' default stream

# Each service's durable consumers on the events stream, by name: no other service may create, change or
# delete them. (Each runner's cancellation consumer is named after its host, so it is not listed: see the
# note in permissions().)
DURABLES: dict[str, tuple[str, ...]] = {
    "manager": ("manager-planner", "manager-conductor"),
    "idea": ("idea",),
    "coder": ("coder",),
    "reviewer": ("reviewer", "reviewer-mlflow"),
    "runner": ("runner-requests",),
}

# JetStream's API as a service uses it (streams and consumers, key-value reads), less what destroys data.
_JETSTREAM = ["$JS.API.>", "$JS.ACK.>", "$JS.FC.>"]
_DESTRUCTIVE = [
    "$JS.API.STREAM.DELETE.>",
    "$JS.API.STREAM.PURGE.>",
    "$JS.API.STREAM.MSG.DELETE.>",
    "$JS.API.ACCOUNT.PURGE.>",
]
# No raw reads of stored events by sequence: a service reads events through consumers only.
_RAW_EVENT_READS = [
    f"$JS.API.STREAM.MSG.GET.{EVENTS_STREAM}",
    f"$JS.API.DIRECT.GET.{EVENTS_STREAM}",
    f"$JS.API.DIRECT.GET.{EVENTS_STREAM}.>",
]


@dataclass(frozen=True)
class BusCredentials:
    user: str
    password: str


def password(key: bytes, user: str) -> str:
    """`user`'s NATS password: derived from the lab's key, so every holder of the key can compute it."""
    return hmac.new(key, f"nats:{user}".encode(), hashlib.sha256).hexdigest()


def credentials(key: bytes | None, user: str) -> BusCredentials | None:
    """The credentials `user` connects with; None where the lab runs without a key (auth off)."""
    if key is None:
        return None
    if user not in PUBLISHES and user != ADMIN:
        raise ValueError(f"no bus user {user!r}: one of {', '.join([*PUBLISHES, ADMIN])}")
    return BusCredentials(user, password(key, user))


def credentials_for(settings: Settings, user: str) -> BusCredentials | None:
    """A service's (or, for "admin", a tool's) bus credentials from the settings' key; when the settings
    name none, the key `airlab up` wrote in the workspace, if any."""
    key = auth.lab_key(settings.auth.key, settings.auth.key_file, settings.workspace.resolve())
    return credentials(key, user)


def event_subjects(event_types: tuple[str, ...]) -> list[str]:
    return [f"{SUBJECT_PREFIX}.{event_type}.*" for event_type in event_types]


def _others_consumers(service: str) -> list[str]:
    """The API subjects that would create, change or delete another service's durable consumer."""
    names = [name for other, owned in DURABLES.items() if other != service for name in owned]
    subjects = []
    for name in names:
        for verb in ("CREATE", "DURABLE.CREATE"):
            subjects += [
                f"$JS.API.CONSUMER.{verb}.{EVENTS_STREAM}.{name}",
                f"$JS.API.CONSUMER.{verb}.{EVENTS_STREAM}.{name}.>",
            ]
    return subjects


def _others_private_buckets(service: str) -> list[str]:
    """The API subjects that would open, read, watch or change another service's private bucket."""
    subjects = []
    for bucket, owner in PRIVATE_BUCKETS.items():
        if owner == service:
            continue
        stream = f"KV_{bucket}"
        subjects += [
            *(f"$JS.API.STREAM.{verb}.{stream}" for verb in ("INFO", "CREATE", "UPDATE", "MSG.GET")),
            f"$JS.API.DIRECT.GET.{stream}",
            f"$JS.API.DIRECT.GET.{stream}.>",
            f"$JS.API.CONSUMER.CREATE.{stream}",
            f"$JS.API.CONSUMER.CREATE.{stream}.>",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.>",
            f"$KV.{bucket}.>",
        ]
    return subjects


def permissions(service: str) -> dict[str, object]:
    """The nats-server permissions of `service`'s user. Besides its own events and buckets: only the
    manager sets up the events stream; nobody but the manager deletes a consumer on it, and nobody creates
    or changes another service's durable consumer; nobody reads stored events raw (by sequence); nobody
    but its owner opens a private bucket, and only the manager answers record requests. Not yet
    enforced: which subjects a service's own consumers filter on (a consumer's filter travels in the
    request's body when it has several) and the runners' host-named cancellation consumers."""
    buckets = WRITES_BUCKETS[service]
    deny = [*_DESTRUCTIVE, *_RAW_EVENT_READS, *_others_consumers(service), *_others_private_buckets(service)]
    if service not in STREAM_OWNERS:
        deny += [
            f"$JS.API.STREAM.CREATE.{EVENTS_STREAM}",
            f"$JS.API.STREAM.UPDATE.{EVENTS_STREAM}",
            f"$JS.API.CONSUMER.DELETE.{EVENTS_STREAM}.>",
        ]
    asks = [records.SUBJECTS] if service in ASKS_FOR_RECORDS else []
    answers = [records.SUBJECTS] if service == RECORDS_KEEPER else []
    rules: dict[str, object] = {
        "publish": {
            "allow": [
                *event_subjects(PUBLISHES[service] + EVERY_SERVICE_PUBLISHES),
                *[f"$KV.{bucket}.>" for bucket in buckets],
                *_JETSTREAM,
                *asks,
            ],
            "deny": deny,
        },
        # Replies and pull deliveries come to the client's inbox; nothing reads raw event subjects.
        "subscribe": {"allow": ["_INBOX.>", *answers]},
    }
    if answers:
        rules["allow_responses"] = True  # its answers go to each asker's inbox
    return rules


def server_config(key: bytes, tls_files: TlsFiles | None = None) -> str:
    """The `authorization` block of nats-server's configuration (its format accepts JSON values), and
    with `tls_files` its `tls` block: every client must present a certificate of the lab's authority."""
    users: list[dict[str, object]] = [{"user": ADMIN, "password": password(key, ADMIN)}]
    users += [
        {"user": service, "password": password(key, service), "permissions": permissions(service)}
        for service in PUBLISHES
    ]
    config = "authorization " + json.dumps({"users": users}, indent=2) + "\n"
    if tls_files is not None:
        files = {"cert_file": tls_files.cert, "key_file": tls_files.key, "ca_file": tls_files.ca}
        block = {**{name: str(path) for name, path in files.items()}, "verify": True, "timeout": 5}
        config += "tls " + json.dumps(block, indent=2) + "\n"
    return config


def write_server_config(key: bytes, path: Path, tls_files: TlsFiles | None = None) -> Path:
    """Write the configuration 0600 (it holds every password)."""
    auth.write_private(path, server_config(key, tls_files).encode())
    return path

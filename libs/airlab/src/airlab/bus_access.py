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

from airlab import auth
from airlab.events import DEAD_LETTER_AGGREGATE, SUBJECT_PREFIX
from airlab.settings import Settings

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
    "runner": ("airlab_jobs", "airlab_cancelled_researches", "airlab_gpu_leases", "airlab_research_storage"),
}

# JetStream's API as a service uses it (streams and consumers, key-value reads), less what destroys data.
_JETSTREAM = ["$JS.API.>", "$JS.ACK.>", "$JS.FC.>"]
_DESTRUCTIVE = [
    "$JS.API.STREAM.DELETE.>",
    "$JS.API.STREAM.PURGE.>",
    "$JS.API.STREAM.MSG.DELETE.>",
    "$JS.API.ACCOUNT.PURGE.>",
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


def permissions(service: str) -> dict[str, object]:
    """The nats-server permissions of `service`'s user."""
    buckets = WRITES_BUCKETS[service]
    return {
        "publish": {
            "allow": [
                *event_subjects(PUBLISHES[service] + EVERY_SERVICE_PUBLISHES),
                *[f"$KV.{bucket}.>" for bucket in buckets],
                *_JETSTREAM,
            ],
            "deny": _DESTRUCTIVE,
        },
        # Replies and pull deliveries come to the client's inbox; nothing reads raw event subjects.
        "subscribe": {"allow": ["_INBOX.>"]},
    }


def server_config(key: bytes) -> str:
    """The `authorization` block of nats-server's configuration (its format accepts JSON values)."""
    users: list[dict[str, object]] = [{"user": ADMIN, "password": password(key, ADMIN)}]
    users += [
        {"user": service, "password": password(key, service), "permissions": permissions(service)}
        for service in PUBLISHES
    ]
    return "authorization " + json.dumps({"users": users}, indent=2) + "\n"


def write_server_config(key: bytes, path: Path) -> Path:
    """Write the configuration 0600 (it holds every password)."""
    auth.write_private(path, server_config(key).encode())
    return path

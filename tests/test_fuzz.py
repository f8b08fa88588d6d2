"""A bounded gRPC fuzzer over every method of every service: random and edge-case field values built from
the contract's descriptors, and corrupt bytes. No call may crash a service, hang, or answer UNKNOWN or
INTERNAL (the sign of an unhandled exception); every refusal is a status a caller can act on."""

from __future__ import annotations

import contextlib
import random

import grpc
import pytest
from google.protobuf import descriptor, message_factory

from airlab.grpc_client import health_status
from airlab.v1 import coder_pb2, idea_pb2, lab_pb2, manager_pb2, reviewer_pb2, runner_pb2

SERVICES = {
    "manager": [lab_pb2.DESCRIPTOR.services_by_name["LabService"],
                manager_pb2.DESCRIPTOR.services_by_name["ManagerService"]],
    "runner": [runner_pb2.DESCRIPTOR.services_by_name["RunnerService"]],
    "coder": [coder_pb2.DESCRIPTOR.services_by_name["CoderService"]],
    "idea": [idea_pb2.DESCRIPTOR.services_by_name["IdeaService"]],
    "reviewer": [reviewer_pb2.DESCRIPTOR.services_by_name["ReviewerService"]],
}  # fmt: skip
CALLS_PER_METHOD = 12
# Statuses that mean an exception escaped a handler.
UNHANDLED = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
STRINGS = ["", " ", "r" + "0" * 26, "i" + "0" * 26, "x" * 5000, "../../etc/passwd", "\x00", "é漢字🙂",
           "s3://bucket/../key.csv", "/etc/shadow", "-1", "NaN", "r" * 27]  # fmt: skip
INTS = [0, 1, -1, 2**31 - 1, -(2**31), 7, 1000]
FLOATS = [0.0, -1.0, 1e308, float("nan"), float("inf"), 0.5]
T = descriptor.FieldDescriptor


def value_for(field: descriptor.FieldDescriptor, rng: random.Random, depth: int) -> object:
    if field.type == T.TYPE_STRING:
        return rng.choice(STRINGS)
    if field.type == T.TYPE_BYTES:
        return rng.randbytes(rng.choice([0, 3, 100]))
    if field.type == T.TYPE_BOOL:
        return rng.random() < 0.5
    if field.type in (T.TYPE_DOUBLE, T.TYPE_FLOAT):
        return rng.choice(FLOATS)
    if field.type == T.TYPE_ENUM:
        return rng.choice([*(v.number for v in field.enum_type.values), 99])
    if field.type in (T.TYPE_UINT32, T.TYPE_UINT64, T.TYPE_FIXED32, T.TYPE_FIXED64):
        return abs(rng.choice(INTS))
    if field.type in (
        T.TYPE_INT32,
        T.TYPE_INT64,
        T.TYPE_SINT32,
        T.TYPE_SINT64,
        T.TYPE_SFIXED32,
        T.TYPE_SFIXED64,
    ):
        return rng.choice(INTS)
    raise TypeError(field.type)


def fill(msg, rng: random.Random, depth: int = 0) -> None:
    for field in msg.DESCRIPTOR.fields:
        if rng.random() < 0.4:
            continue
        if field.message_type is not None:
            if field.message_type.GetOptions().map_entry:
                key_field, value_field = (
                    field.message_type.fields_by_name["key"],
                    field.message_type.fields_by_name["value"],
                )
                for _ in range(rng.choice([1, 2])):
                    key = value_for(key_field, rng, depth)
                    if value_field.message_type is not None:
                        if depth < 3:
                            fill(getattr(msg, field.name)[key], rng, depth + 1)
                    else:
                        getattr(msg, field.name)[key] = value_for(value_field, rng, depth)
                continue
            if depth >= 3:
                continue
            if field.is_repeated:
                for _ in range(rng.choice([1, 3])):
                    fill(getattr(msg, field.name).add(), rng, depth + 1)
            else:
                fill(getattr(msg, field.name), rng, depth + 1)
            continue
        if field.is_repeated:
            getattr(msg, field.name).extend(value_for(field, rng, depth) for _ in range(rng.choice([1, 3])))
        else:
            # A value the field's type cannot hold (out of range) is skipped.
            with contextlib.suppress(ValueError):
                setattr(msg, field.name, value_for(field, rng, depth))


def call(channel: grpc.Channel, service, method, payload: bytes) -> grpc.StatusCode | None:
    path = f"/{service.full_name}/{method.name}"
    if method.server_streaming:
        stream = channel.unary_stream(path, request_serializer=None, response_deserializer=None)
        try:
            for _ in stream(payload, timeout=5):
                pass
        except grpc.RpcError as exc:
            return exc.code() if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED else None
        return grpc.StatusCode.OK
    unary = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
    try:
        unary(payload, timeout=10)
    except grpc.RpcError as exc:
        assert exc.code() not in UNHANDLED or "Traceback" not in (exc.details() or ""), exc.details()
        return exc.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("name", list(SERVICES))
def test_no_request_crashes_or_leaks_an_exception(services, name):
    process = services.start(name)
    rng = random.Random(f"fuzz-{name}")
    seen: dict[str, set[grpc.StatusCode | None]] = {}
    with grpc.insecure_channel(process.address) as channel:
        for service in SERVICES[name]:
            for method in service.methods:
                request_class = message_factory.GetMessageClass(method.input_type)
                payloads = [b"\xff\xfe\x00corrupt", b"\x0a\xff\xff\xff\xff\x0f"]
                for _ in range(CALLS_PER_METHOD):
                    request = request_class()
                    fill(request, rng)
                    payloads.append(request.SerializeToString())
                for payload in payloads:
                    code = call(channel, service, method, payload)
                    seen.setdefault(method.name, set()).add(code)
                    assert code not in UNHANDLED, (method.full_name, code, payload[:200])
    assert health_status(process.address) == "SERVING", f"{name} stopped serving after the fuzzing"
    assert all(codes - {None} for codes in seen.values()), seen

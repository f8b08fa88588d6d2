"""Who may call what, walked over the whole table: the five services started with the lab's key, every
method of the contract called over real gRPC by every kind of caller (an admin, a researcher, and a
token of each service). A caller the table names gets past the gate (its call may still be refused for
its content); any other gets PERMISSION_DENIED. The table names every method and nothing else."""

from __future__ import annotations

import json

import grpc
import pytest

from airlab import access, auth
from airlab.grpc_client import channel
from airlab.testing import FakeOpenAIServer
from airlab.v1 import coder_pb2, idea_pb2, lab_pb2, manager_pb2, reviewer_pb2, runner_pb2

CONTRACT = (lab_pb2, manager_pb2, idea_pb2, coder_pb2, reviewer_pb2, runner_pb2)
# Which process serves each service of the contract.
HOST = {
    "LabService": "manager",
    "ManagerService": "manager",
    "IdeaService": "idea",
    "CoderService": "coder",
    "ReviewerService": "reviewer",
    "RunnerService": "runner",
}
GATE = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)


def contract_methods() -> dict[str, object]:
    return {
        f"/{service.full_name}/{method.name}": method
        for module in CONTRACT
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }


def code_of_call(address: str, token: str, path: str, method) -> grpc.StatusCode:
    """The status of `path` called with an empty request (its gate comes before any content check)."""
    with channel(address, token=token) as ch:
        try:
            if method.server_streaming:
                call = ch.unary_stream(path, request_serializer=bytes, response_deserializer=bytes)
                for _ in call(b"", timeout=5):
                    break
            else:
                ch.unary_unary(path, request_serializer=bytes, response_deserializer=bytes)(b"", timeout=5)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def test_the_table_names_every_method_of_the_contract_and_nothing_else():
    assert set(access.CALLERS) == set(contract_methods())
    kinds = {"admin", "researcher", *(f"service:{name}" for name in auth.SERVICE_NAMES)}
    assert all(callers <= kinds for callers in access.CALLERS.values())
    # A service token never acts as a user.
    users_api = [callers for path, callers in access.CALLERS.items() if "/airlab.v1.LabService/" in path]
    assert users_api and all(callers <= access.USERS for callers in users_api)


def test_a_service_token_names_a_service_of_the_lab():
    with pytest.raises(ValueError, match="names one of the lab's services"):
        auth.issue(b"k" * 32, "my-tool", "service")


def test_every_method_takes_exactly_the_callers_its_row_names(services, tmp_path):
    key_file, admin = auth.ensure_credentials(tmp_path / "auth")
    key = auth.read_key(key_file)
    tokens = {
        "admin": admin,
        "researcher": auth.issue(key, "alice", "researcher"),
        **{f"service:{name}": auth.issue(key, name, "service") for name in auth.SERVICE_NAMES},
    }
    llm = FakeOpenAIServer()
    env = {
        "AIRLAB_AUTH__KEY_FILE": str(key_file),
        "AIRLAB_LLM_URLS": json.dumps({"local-cpu": llm.url}),
        "AIRLAB_WORKSPACE": str(tmp_path / "ws"),
    }
    try:
        # The manager first: it sets the bus's events stream up, the others wait for it.
        processes = {
            name: services.start(name, env=env) for name in dict.fromkeys(["manager", *HOST.values()])
        }
        for path, method in contract_methods().items():
            address = processes[HOST[method.containing_service.name]].address
            for kind, token in tokens.items():
                code = code_of_call(address, token, path, method)
                if kind in access.CALLERS[path]:
                    assert code not in GATE, (path, kind, code)
                else:
                    assert code == grpc.StatusCode.PERMISSION_DENIED, (path, kind, code)
    finally:
        llm.close()

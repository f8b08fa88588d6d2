"""Who may call the lab: a real manager process started with an auth key, called with signed tokens."""

import grpc
import pytest

from airlab import auth
from airlab.grpc_client import channel
from airlab.v1 import lab_pb2, lab_pb2_grpc, manager_pb2, manager_pb2_grpc, research_pb2

GOAL = "beat the logistic-regression baseline on digits"


@pytest.fixture
def keyed_manager(services, tmp_path):
    key_file, admin = auth.ensure_credentials(tmp_path / "auth")
    manager = services.start("manager", env={"AIRLAB_AUTH__KEY_FILE": str(key_file)})
    key = auth.read_key(key_file)
    return manager, {
        "admin": admin,
        "alice": auth.issue(key, "alice", "researcher"),
        "bob": auth.issue(key, "bob", "researcher"),
        "forged": auth.issue(b"not-the-lab-key-at-all-0123456789", "alice", "admin"),
    }


def lab_as(address: str, token: str):
    return lab_pb2_grpc.LabServiceStub(channel(address, token=token))


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return refused.value.code()


def test_calls_without_a_valid_token_are_unauthenticated(keyed_manager):
    manager, tokens = keyed_manager
    for token in ("", tokens["forged"], "garbage"):
        lab = lab_as(manager.address, token)
        assert code_of(lambda lab=lab: lab.ListResearch(lab_pb2.ListResearchRequest())) == (
            grpc.StatusCode.UNAUTHENTICATED
        )
        assert code_of(lambda lab=lab: lab.StartResearch(lab_pb2.StartResearchRequest(goal=GOAL))) == (
            grpc.StatusCode.UNAUTHENTICATED
        )
    # Health and reflection stay open: orchestrators probe them without a token.
    from airlab.grpc_client import health_status

    assert health_status(manager.address) == "SERVING"


def test_a_research_belongs_to_whoever_started_it(keyed_manager):
    manager, tokens = keyed_manager
    alice, bob, admin = (lab_as(manager.address, tokens[n]) for n in ("alice", "bob", "admin"))
    mine = alice.StartResearch(lab_pb2.StartResearchRequest(goal=GOAL))
    assert mine.owner == "alice"
    theirs = bob.StartResearch(lab_pb2.StartResearchRequest(goal=GOAL, gates=research_pb2.HUMAN_GATES_PLAN))
    # Each sees their own; an admin sees both.
    assert [r.id for r in alice.ListResearch(lab_pb2.ListResearchRequest()).researches] == [mine.id]
    assert {r.id for r in admin.ListResearch(lab_pb2.ListResearchRequest()).researches} == {
        mine.id,
        theirs.id,
    }
    # Nothing of another's: read, watch, cancel, approve, reject, review, decide.
    denied = grpc.StatusCode.PERMISSION_DENIED
    assert code_of(lambda: alice.GetResearch(lab_pb2.GetResearchRequest(id=theirs.id))) == denied
    assert code_of(lambda: list(alice.WatchResearch(lab_pb2.WatchResearchRequest(id=theirs.id)))) == denied
    assert code_of(lambda: alice.CancelResearch(lab_pb2.CancelResearchRequest(id=theirs.id))) == denied
    assert code_of(lambda: alice.Approve(lab_pb2.ApproveRequest(research_id=theirs.id))) == denied
    assert code_of(lambda: alice.Reject(lab_pb2.RejectRequest(research_id=theirs.id, reason="no"))) == denied
    manager_stub = manager_pb2_grpc.ManagerServiceStub(channel(manager.address, token=tokens["alice"]))
    assert code_of(lambda: manager_stub.Decide(manager_pb2.DecideRequest(research_id=theirs.id))) == denied
    # Bob's research is untouched; an admin may act on it.
    assert (
        bob.GetResearch(lab_pb2.GetResearchRequest(id=theirs.id)).state
        != research_pb2.RESEARCH_STATE_CANCELLED
    )
    cancelled = admin.CancelResearch(lab_pb2.CancelResearchRequest(id=theirs.id, reason="admin"))
    assert cancelled.state == research_pb2.RESEARCH_STATE_CANCELLED


def test_a_request_id_is_the_callers_own(keyed_manager):
    """Another user's same idempotency key starts a research of their own and learns nothing of the
    first (it used to answer with a message naming the other user's research)."""
    manager, tokens = keyed_manager
    alice, bob = (lab_as(manager.address, tokens[n]) for n in ("alice", "bob"))
    request = lab_pb2.StartResearchRequest(
        goal=GOAL, request_id="nightly-1", gates=research_pb2.HUMAN_GATES_PLAN
    )
    first = alice.StartResearch(request)
    assert alice.StartResearch(request).id == first.id  # a retry is the same research
    other = bob.StartResearch(request)
    assert other.id != first.id and other.owner == "bob"
    different = lab_pb2.StartResearchRequest(goal="digits", request_id="nightly-1")
    with pytest.raises(grpc.RpcError) as refused:
        bob.StartResearch(different)
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS and first.id not in refused.value.details()


def test_the_agents_own_services_are_for_the_lab_not_for_researchers(services, tmp_path):
    """A researcher works through the Lab API; the runner (arbitrary code in a sandbox) is not theirs."""
    from airlab.v1 import runner_pb2, runner_pb2_grpc

    key_file, admin = auth.ensure_credentials(tmp_path / "auth")
    services.start("manager", env={"AIRLAB_AUTH__KEY_FILE": str(key_file)})  # sets the bus's stream up
    runner = services.start("runner", env={"AIRLAB_AUTH__KEY_FILE": str(key_file)})
    researcher = auth.issue(auth.read_key(key_file), "alice", "researcher")
    stub = runner_pb2_grpc.RunnerServiceStub(channel(runner.address, token=researcher))
    assert code_of(lambda: stub.ListJobs(runner_pb2.ListJobsRequest())) == grpc.StatusCode.PERMISSION_DENIED
    admin_stub = runner_pb2_grpc.RunnerServiceStub(channel(runner.address, token=admin))
    assert admin_stub.ListJobs(runner_pb2.ListJobsRequest()).jobs is not None


def test_a_research_reads_its_own_users_uploads_and_nothing_else_of_the_workspace(keyed_manager, services):
    """Alice cannot train on Bob's upload (by its path, through a link of hers, or in the lab's bucket), nor
    on the workspace's runs, logs or keys; her own upload is fine. Each refusal names the field and stores
    nothing."""
    manager, tokens = keyed_manager
    alice, admin = lab_as(manager.address, tokens["alice"]), lab_as(manager.address, tokens["admin"])
    workspace = services.workdir
    uploads = workspace / "artifacts" / "uploads"
    for owner in ("alice", "bob"):
        table = uploads / owner / "d1" / "table.csv"
        table.parent.mkdir(parents=True)
        table.write_text("a,label\n1,0\n")
    link = workspace.parent / "my-table.csv"
    link.symlink_to(uploads / "bob" / "d1" / "table.csv")
    before = {r.id for r in admin.ListResearch(lab_pb2.ListResearchRequest()).researches}

    def start(source: str):
        dataset = research_pb2.UserDataset(source=source, target="label", task="classification")
        return alice.StartResearch(
            lab_pb2.StartResearchRequest(goal="beat the baseline", user_dataset=dataset)
        )

    for source, why in [
        (str(uploads / "bob" / "d1" / "table.csv"), "another user's upload"),
        (str(link), "another user's upload"),
        (str(workspace / "run" / "auth" / "key.csv"), "inside the lab's workspace"),
        (str(workspace / "runs" / "j1" / "work" / "result.csv"), "inside the lab's workspace"),
    ]:
        with pytest.raises(grpc.RpcError) as refused:
            start(source)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, source
        assert refused.value.details().startswith("user_dataset.source: ") and why in refused.value.details()
    assert {r.id for r in admin.ListResearch(lab_pb2.ListResearchRequest()).researches} == before
    mine = start(str(uploads / "alice" / "d1" / "table.csv"))
    assert mine.owner == "alice"


def test_airlab_token_revoke_refuses_a_users_tokens_on_the_next_call(keyed_manager, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from airlab.cli import app

    manager, tokens = keyed_manager
    alice = lab_as(manager.address, tokens["alice"])
    assert alice.ListResearch(lab_pb2.ListResearchRequest()).researches is not None
    monkeypatch.setenv("AIRLAB_AUTH__KEY_FILE", str(tmp_path / "auth" / auth.KEY_FILE))
    revoked = CliRunner().invoke(app, ["token", "revoke", "alice", "--workspace", str(tmp_path)])
    assert revoked.exit_code == 0 and "alice's tokens issued until now" in revoked.output, revoked.output
    with pytest.raises(grpc.RpcError) as refused:
        alice.ListResearch(lab_pb2.ListResearchRequest())
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in refused.value.details()
    bob = lab_as(manager.address, tokens["bob"])
    assert bob.ListResearch(lab_pb2.ListResearchRequest()).researches is not None  # only alice's
    unclear = CliRunner().invoke(app, ["token", "revoke", "--workspace", str(tmp_path)])
    assert unclear.exit_code == 2 and "say whose tokens to revoke" in unclear.output

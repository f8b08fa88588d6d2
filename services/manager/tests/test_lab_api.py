"""The Lab API of a real manager process, over a real gRPC channel, against a real nats-server."""

import time

import grpc
import pytest

from airlab.testing import wait_until
from airlab.v1 import lab_pb2, lab_pb2_grpc, manager_pb2, manager_pb2_grpc, research_pb2

UNKNOWN_ID = "r" + "0" * 26


@pytest.fixture
def manager(services):
    return services.start("manager")


@pytest.fixture
def lab(manager):
    with grpc.insecure_channel(manager.address) as channel:
        yield lab_pb2_grpc.LabServiceStub(channel)


def settled(lab, research_id, state):
    """Wait for `state`. A planned research goes on at once: the manager starts its loop (the baseline's
    code request, which nothing answers here), so PLANNED settles as RUNNING in the baseline phase."""
    if state == research_pb2.RESEARCH_STATE_PLANNED:
        state = research_pb2.RESEARCH_STATE_RUNNING
    wait_until(lambda: lab.GetResearch(lab_pb2.GetResearchRequest(id=research_id)).state == state)
    return lab.GetResearch(lab_pb2.GetResearchRequest(id=research_id))


def snapshot(lab):
    """Every stored research with its revision: a rejected call must leave this unchanged."""
    reply = lab.ListResearch(lab_pb2.ListResearchRequest(page_size=500))
    return {r.id: r.revision for r in reply.researches}


def test_a_goal_is_stored_planned_and_its_events_watchable(lab):
    started = lab.StartResearch(
        lab_pb2.StartResearchRequest(goal="beat the logistic-regression baseline on digits")
    )
    assert started.state == research_pb2.RESEARCH_STATE_CREATED
    planned = settled(lab, started.id, research_pb2.RESEARCH_STATE_PLANNED)
    assert planned.plan.dataset == "digits" and planned.plan.baseline == "logistic_regression"
    assert planned.revision > started.revision

    events = list(lab.WatchResearch(lab_pb2.WatchResearchRequest(id=started.id)))
    assert [e.type for e in events] == ["research.created", "research.planned", "code.requested"]
    assert planned.progress.phase == "baseline"
    assert all(e.research_id == started.id for e in events)
    assert events[1].correlation_id == events[0].id
    assert events[1].research_planned.plan.dataset == "digits"
    later = list(
        lab.WatchResearch(lab_pb2.WatchResearchRequest(id=started.id, from_sequence=events[1].sequence))
    )
    assert [e.id for e in later] == [events[1].id, events[2].id]


def test_follow_streams_until_the_research_ends(lab):
    started = lab.StartResearch(
        lab_pb2.StartResearchRequest(goal="digits", gates=research_pb2.HUMAN_GATES_PLAN)
    )
    settled(lab, started.id, research_pb2.RESEARCH_STATE_AWAITING_APPROVAL)
    stream = lab.WatchResearch(lab_pb2.WatchResearchRequest(id=started.id, follow=True), timeout=20)
    seen = [next(stream).type, next(stream).type]
    lab.CancelResearch(lab_pb2.CancelResearchRequest(id=started.id, reason="changed my mind"))
    seen += [event.type for event in stream]  # ends by itself after the terminal event
    assert seen == ["research.created", "research.awaiting_approval", "research.cancelled"]


def test_plan_gate_waits_for_approval(lab):
    started = lab.StartResearch(
        lab_pb2.StartResearchRequest(goal="wine", gates=research_pb2.HUMAN_GATES_PLAN)
    )
    waiting = settled(lab, started.id, research_pb2.RESEARCH_STATE_AWAITING_APPROVAL)
    assert waiting.plan.dataset == "wine"
    approved = lab.Approve(lab_pb2.ApproveRequest(research_id=started.id, subject="plan", comment="ok"))
    assert approved.state == research_pb2.RESEARCH_STATE_PLANNED

    other = lab.StartResearch(lab_pb2.StartResearchRequest(goal="wine", gates=research_pb2.HUMAN_GATES_PLAN))
    settled(lab, other.id, research_pb2.RESEARCH_STATE_AWAITING_APPROVAL)
    rejected = lab.Reject(lab_pb2.RejectRequest(research_id=other.id, reason="wrong dataset"))
    assert rejected.state == research_pb2.RESEARCH_STATE_CANCELLED
    assert "wrong dataset" in rejected.state_reason


def test_questions_are_answered_through_approve(lab):
    started = lab.StartResearch(lab_pb2.StartResearchRequest(goal="make it better"))
    asking = settled(lab, started.id, research_pb2.RESEARCH_STATE_NEEDS_HUMAN)
    assert [q.key for q in asking.questions] == ["dataset"]
    with pytest.raises(grpc.RpcError) as missing:
        lab.Approve(lab_pb2.ApproveRequest(research_id=started.id))
    assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert missing.value.details().startswith("answers.dataset:")
    lab.Approve(lab_pb2.ApproveRequest(research_id=started.id, answers={"dataset": "breast_cancer"}))
    planned = settled(lab, started.id, research_pb2.RESEARCH_STATE_PLANNED)
    assert planned.plan.dataset == "breast_cancer" and planned.plan.metric == "roc_auc"


def test_request_id_makes_start_idempotent(lab):
    request = lab_pb2.StartResearchRequest(goal="digits", request_id="client-42")
    first = lab.StartResearch(request)
    again = lab.StartResearch(request)
    assert first.id == again.id
    with pytest.raises(grpc.RpcError) as clash:
        lab.StartResearch(lab_pb2.StartResearchRequest(goal="wine", request_id="client-42"))
    assert clash.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert list(snapshot(lab)) == [first.id]


def test_list_pages_newest_first(lab):
    ids = [lab.StartResearch(lab_pb2.StartResearchRequest(goal=f"digits {n}")).id for n in range(5)]
    time.sleep(0.01)
    first = lab.ListResearch(lab_pb2.ListResearchRequest(page_size=3))
    second = lab.ListResearch(lab_pb2.ListResearchRequest(page_size=3, page_token=first.next_page_token))
    assert [r.id for r in first.researches] + [r.id for r in second.researches] == ids[::-1]
    assert second.next_page_token == ""


BAD_REQUESTS = [
    ("StartResearch", lab_pb2.StartResearchRequest(goal=""), "INVALID_ARGUMENT", "goal"),
    ("StartResearch", lab_pb2.StartResearchRequest(goal="g" * 5000), "INVALID_ARGUMENT", "goal"),
    (
        "StartResearch",
        lab_pb2.StartResearchRequest(goal="x", dataset="imagenet"),
        "INVALID_ARGUMENT",
        "dataset",
    ),
    (
        "StartResearch",
        lab_pb2.StartResearchRequest(goal="x", budget=research_pb2.Budget(max_experiments=100000)),
        "INVALID_ARGUMENT",
        "budget.max_experiments",
    ),
    ("StartResearch", lab_pb2.StartResearchRequest(goal="x", gates=99), "INVALID_ARGUMENT", "gates"),
    # A value a megabyte long is refused by name, not echoed into the status (metadata has a size limit).
    (
        "StartResearch",
        lab_pb2.StartResearchRequest(goal="x", baseline="b" * 1_000_000),
        "INVALID_ARGUMENT",
        "baseline",
    ),
    ("StartResearch", lab_pb2.StartResearchRequest(goal="a\u202eb"), "INVALID_ARGUMENT", "goal"),
    *(
        (
            "StartResearch",
            lab_pb2.StartResearchRequest(
                goal="x",
                user_dataset=research_pb2.UserDataset(source=source, target="y", task="classification"),
            ),
            "INVALID_ARGUMENT",
            "user_dataset.source",
        )
        for source in (
            "/etc/passwd",
            "/etc/shadow.csv",
            "/data/a\x00.csv",
            "s3://b/../k.csv",
            "/" + "a" * 100_000,
        )
    ),
    (
        "StartResearch",
        lab_pb2.StartResearchRequest(goal="x", request_id="a b"),
        "INVALID_ARGUMENT",
        "request_id",
    ),
    ("GetResearch", lab_pb2.GetResearchRequest(id="../etc"), "INVALID_ARGUMENT", "id"),
    ("GetResearch", lab_pb2.GetResearchRequest(id=UNKNOWN_ID), "NOT_FOUND", None),
    ("ListResearch", lab_pb2.ListResearchRequest(page_size=501), "INVALID_ARGUMENT", "page_size"),
    ("ListResearch", lab_pb2.ListResearchRequest(page_token="nope"), "INVALID_ARGUMENT", "page_token"),
    ("ListResearch", lab_pb2.ListResearchRequest(state=42), "INVALID_ARGUMENT", "state"),
    ("CancelResearch", lab_pb2.CancelResearchRequest(id=UNKNOWN_ID), "NOT_FOUND", None),
    ("CancelResearch", lab_pb2.CancelResearchRequest(id="", reason="x"), "INVALID_ARGUMENT", "id"),
    ("Approve", lab_pb2.ApproveRequest(research_id=UNKNOWN_ID), "NOT_FOUND", None),
    ("Reject", lab_pb2.RejectRequest(research_id=UNKNOWN_ID, reason=""), "INVALID_ARGUMENT", "reason"),
]


@pytest.mark.parametrize(("method", "request_message", "code", "field"), BAD_REQUESTS)
def test_bad_input_is_refused_naming_the_field_and_changes_nothing(lab, method, request_message, code, field):
    existing = lab.StartResearch(lab_pb2.StartResearchRequest(goal="digits"))
    settled(lab, existing.id, research_pb2.RESEARCH_STATE_PLANNED)
    before = snapshot(lab)
    with pytest.raises(grpc.RpcError) as refused:
        getattr(lab, method)(request_message)
    assert refused.value.code().name == code
    if field:
        assert refused.value.details().startswith(f"{field}: ")
    assert len(refused.value.details()) < 1000
    assert snapshot(lab) == before


def test_commands_on_a_research_in_the_wrong_state_fail_precondition_and_change_nothing(lab):
    started = lab.StartResearch(lab_pb2.StartResearchRequest(goal="digits"))
    settled(lab, started.id, research_pb2.RESEARCH_STATE_PLANNED)
    before = snapshot(lab)
    for call in (
        lambda: lab.Approve(lab_pb2.ApproveRequest(research_id=started.id)),
        lambda: lab.Approve(lab_pb2.ApproveRequest(research_id=started.id, answers={"dataset": "nope"})),
        lambda: lab.Reject(lab_pb2.RejectRequest(research_id=started.id, reason="no")),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            call()
        assert refused.value.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT)
    assert snapshot(lab) == before
    cancelled = lab.CancelResearch(lab_pb2.CancelResearchRequest(id=started.id))
    assert cancelled.state == research_pb2.RESEARCH_STATE_CANCELLED
    with pytest.raises(grpc.RpcError) as twice:
        lab.CancelResearch(lab_pb2.CancelResearchRequest(id=started.id))
    assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert snapshot(lab)[started.id] == cancelled.revision


def test_watch_of_an_unknown_research_is_not_found(lab):
    with pytest.raises(grpc.RpcError) as refused:
        list(lab.WatchResearch(lab_pb2.WatchResearchRequest(id=UNKNOWN_ID)))
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND


def test_plan_research_previews_without_storing(manager, lab):
    with grpc.insecure_channel(manager.address) as channel:
        stub = manager_pb2_grpc.ManagerServiceStub(channel)
        reply = stub.PlanResearch(manager_pb2.PlanResearchRequest(goal="lower rmse on diabetes"))
        assert reply.plan.dataset == "diabetes" and reply.plan.metric == "rmse"
        with pytest.raises(grpc.RpcError) as bad:
            stub.PlanResearch(manager_pb2.PlanResearchRequest(goal=""))
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert snapshot(lab) == {}

"""Who may call which gRPC method of the lab: the whole table, in one place. Every service's interceptor
(airlab.grpc_server) looks each call up here; a method missing from the table is refused to everyone.

Callers are named by kind: "admin", "researcher", or "service:<name>" for a service token, which names the
service it was issued to (`airlab token manager --role service`). A service token never acts as a user: the
users' API (LabService, the manager's previews) takes users only, and the agents' services take the
admin and the services that drive them (the manager drives the agents and the runner; the coder's smoke
runs go to the runner too)."""

from __future__ import annotations

from airlab.auth import Principal

USERS = frozenset({"admin", "researcher"})


def _admin_and(*services: str) -> frozenset[str]:
    return frozenset({"admin", *(f"service:{name}" for name in services)})


# Full method name ("/package.Service/Method") -> the kinds of caller it takes.
CALLERS: dict[str, frozenset[str]] = {
    # The users' API: each research's owner is checked by the Lab itself (a researcher's own only).
    **{
        f"/airlab.v1.LabService/{method}": USERS
        for method in (
            "StartResearch",
            "GetResearch",
            "ListResearch",
            "WatchResearch",
            "CancelResearch",
            "Approve",
            "Reject",
            "GetReport",
        )
    },
    **{f"/airlab.v1.ManagerService/{method}": USERS for method in ("PlanResearch", "ReviewIdea", "Decide")},
    "/airlab.v1.IdeaService/ProposeIdeas": _admin_and("manager"),
    "/airlab.v1.CoderService/ImplementIdea": _admin_and("manager"),
    "/airlab.v1.ReviewerService/EvaluateExperiment": _admin_and("manager"),
    "/airlab.v1.ReviewerService/WriteReport": _admin_and("manager"),
    **{
        f"/airlab.v1.RunnerService/{method}": _admin_and("manager", "coder")
        for method in ("Submit", "GetJob", "ListJobs", "WatchJob", "CancelJob")
    },
}


def caller_kind(principal: Principal) -> str:
    return f"service:{principal.name}" if principal.role == "service" else principal.role


def refusal(method: str, principal: Principal) -> str:
    """Why `principal` may not call `method` ("" when it may)."""
    allowed = CALLERS.get(method)
    if allowed is None:
        return f"{method} is not in the lab's access table: no one may call it"
    if caller_kind(principal) in allowed:
        return ""
    takes = ", ".join(sorted(allowed))
    hint = " (researchers use the Lab API)" if principal.role == "researcher" else ""
    if principal.role == "service" and allowed <= USERS:
        hint = " (a service token never acts as a user)"
    return f"{principal.name} ({principal.role}) may not call {method}: it takes {takes}{hint}"

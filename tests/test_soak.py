"""A short soak (airlab.soak) on the embedded stack with two runners: three researches at once while
random processes of the stack are SIGKILLed; every research completes, no experiment is lost or run
twice; a backup taken halfway restores into a fresh stack whose researches complete. `make soak` runs the
long one."""

from airlab.soak import SoakConfig, run


def test_a_short_soak_with_two_runners_and_random_kills_loses_nothing(tmp_path):
    config = SoakConfig(
        researches=3, runners=2, kills=10, minutes=1.5, grace_minutes=5, budget=6, workspace=tmp_path / "ws"
    )
    summary = run(config)
    print("\n".join(summary.lines()))
    assert summary.holds, summary.lines()
    assert summary.started >= 3 and summary.requested >= summary.started * 3
    assert sum(summary.kills.values()) >= 5, summary.kills  # the faults did land while researches ran
    assert sum(summary.restarts.values()) >= sum(summary.kills.values())
    assert summary.restore is not None and summary.restore.running >= 1, summary.restore

"""The loop's end: stop with a reason (the reviewer gets everything it needs to write the report), and
the research's final state once the report is written."""

from __future__ import annotations

from airlab.v1 import events_pb2, loop_pb2, research_pb2
from airlab_manager.loop.step import Step, find_idea


def stop(step: Step, reason: str, *, failed: bool = False) -> None:
    loop = step.loop
    loop.phase = loop_pb2.LOOP_PHASE_REPORTING
    loop.stop_reason = reason
    loop.failed = failed
    for idea_id in loop.queue:
        idea = find_idea(loop, idea_id)
        if idea is not None:
            idea.status = loop_pb2.IDEA_STATUS_NOT_RUN
    del loop.queue[:]
    step.research.state_reason = f"writing the report: {reason}"
    request = events_pb2.ReportRequested(stop_reason=reason, failed=failed, research=step.research, loop=loop)
    request.research.ClearField("progress")  # the report recomputes everything from the loop
    step.emit("report.requested", request)


def reported(step: Step, written: events_pb2.ReportWritten) -> bool:
    loop, research = step.loop, step.research
    if loop.phase != loop_pb2.LOOP_PHASE_REPORTING:
        return False
    loop.phase = loop_pb2.LOOP_PHASE_DONE
    research.report_markdown_key = written.markdown_key
    research.report_html_key = written.html_key
    research.state = (
        research_pb2.RESEARCH_STATE_FAILED if loop.failed else research_pb2.RESEARCH_STATE_COMPLETED
    )
    research.state_reason = loop.stop_reason
    ended = events_pb2.ResearchEnded(
        reason=research.state_reason,
        report_markdown_key=research.report_markdown_key,
        report_html_key=research.report_html_key,
    )
    if loop.HasField("best"):
        ended.best.CopyFrom(loop.best)
    if loop.HasField("baseline"):
        ended.baseline.CopyFrom(loop.baseline)
    step.emit("research.failed" if loop.failed else "research.completed", ended)
    return True

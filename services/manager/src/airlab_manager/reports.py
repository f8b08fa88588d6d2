"""A research's report as GetReport returns it, read from the artifact store where the reviewer wrote it."""

from __future__ import annotations

import json

from airlab.blobs import ArtifactStore, report_key, research_prefix
from airlab.v1 import lab_pb2, research_pb2


def read_report(
    artifacts: ArtifactStore, research: research_pb2.Research, *, with_pdf: bool = False
) -> lab_pb2.ResearchReport:
    """The Markdown and HTML reports, summary.json, the plots, the paper's status and (`with_pdf`) the
    paper itself."""
    report = lab_pb2.ResearchReport(
        research_id=research.id,
        markdown=artifacts.get(research.report_markdown_key).decode(errors="replace"),
    )
    if research.report_html_key:
        report.html = artifacts.get(research.report_html_key).decode(errors="replace")
    summary = report_key(research.id, "summary.json")
    if artifacts.exists(summary):
        report.summary_json = artifacts.get(summary).decode(errors="replace")
        paper = json.loads(report.summary_json).get("paper") or {}
        report.paper_status = paper.get("status", "")
    pdf = report_key(research.id, "report.pdf")
    if with_pdf and artifacts.exists(pdf):
        report.pdf = artifacts.get(pdf)
    for info in artifacts.list(f"{research_prefix(research.id)}reports/"):
        name = info.key.rsplit("/", 1)[-1]
        if name.endswith(".png"):
            report.plots[name] = artifacts.get(info.key)
    return report

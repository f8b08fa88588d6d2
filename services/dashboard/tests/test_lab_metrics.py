"""The lab page's figures, read from a real metrics endpoint serving the lab's own metrics
(airlab.metrics), summed across services, with a service that does not answer named."""

import prometheus_client

from airlab import metrics
from airlab.llm.local import free_port
from airlab_dashboard import lab_metrics


async def test_the_lab_figures_come_from_the_services_metrics_pages():
    server, _ = prometheus_client.start_http_server(0, addr="127.0.0.1", registry=metrics.REGISTRY)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        before = await lab_metrics.read({"runner": url})
        metrics.RUNNER_SLOTS.set(4)
        metrics.RUNNER_SLOTS_BUSY.set(3)
        metrics.RUNNER_QUEUE.set(2)
        metrics.RUNNER_QUEUE_WAIT.observe(1.5)
        metrics.RUNNER_QUEUE_WAIT.observe(0.5)
        metrics.LLM_TOKENS.labels("idea", "m", "completion").inc(120)
        metrics.LLM_LATENCY.labels("idea", "m").observe(4.0)
        metrics.RESEARCHES.labels("running").set(2)
        unreachable = f"http://127.0.0.1:{free_port()}/metrics"
        lab = await lab_metrics.read({"runner": url, "coder": unreachable})
    finally:
        server.shutdown()
    assert lab.unreachable == ["coder"]
    assert (lab.slots, lab.slots_busy, lab.occupancy, lab.queue) == (4, 3, 0.75, 2)
    assert lab.queue_waits - before.queue_waits == 2
    assert lab.queue_wait_seconds - before.queue_wait_seconds == 2.0
    assert lab.tokens["completion"] - before.tokens.get("completion", 0) == 120
    assert lab.llm_seconds - before.llm_seconds == 4.0
    assert lab.researches["running"] == 2


def test_two_runners_add_up():
    page = "# TYPE airlab_runner_slots gauge\nairlab_runner_slots 2.0\n"
    page += "# TYPE airlab_runner_slots_busy gauge\nairlab_runner_slots_busy 1.0\n"
    lab = lab_metrics.parse([page, page])
    assert (lab.slots, lab.slots_busy, lab.occupancy) == (4, 2, 0.5)
    assert lab_metrics.LabMetrics().occupancy is None and lab_metrics.LabMetrics().tokens_per_second is None

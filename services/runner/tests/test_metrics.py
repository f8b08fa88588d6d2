"""The runner's Prometheus endpoint, scraped over HTTP while it works: slots, jobs by state, run time, and
gRPC calls by method and status code, with no research or job id among the labels."""

import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from airlab.v1 import runner_pb2

from .conftest import GOOD_JOB, needs_sandbox, run_to_end, spec

pytestmark = needs_sandbox


def scrape(url: str) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return text, samples


def test_the_runner_serves_its_slots_jobs_and_calls_as_prometheus_metrics(runner, stub):
    _, before = scrape(runner.metrics_url)
    assert before[("airlab_runner_slots", ())] >= 1
    assert before[("airlab_runner_slots_busy", ())] == 0
    final, _, _ = run_to_end(stub, spec(GOOD_JOB, "measured", research="rmetrics"))
    assert final.state == runner_pb2.JOB_STATE_SUCCEEDED
    with pytest.raises(grpc.RpcError):  # refused: no entrypoint
        stub.Submit(runner_pb2.SubmitRequest(spec=runner_pb2.ExperimentSpec(research_id="rmetrics")))
    text, after = scrape(runner.metrics_url)
    assert after[("airlab_runner_jobs_total", (("state", "succeeded"),))] == 1
    assert after[("airlab_runner_job_run_seconds_count", (("backend", "local"),))] == 1
    assert after[("airlab_runner_queue_wait_seconds_count", ())] == 1
    assert after[("airlab_runner_slots_busy", ())] == 0
    submit = "/airlab.v1.RunnerService/Submit"
    assert after[("airlab_grpc_calls_total", (("code", "OK"), ("method", submit)))] == 1
    assert after[("airlab_grpc_calls_total", (("code", "INVALID_ARGUMENT"), ("method", submit)))] == 1
    assert after[("airlab_grpc_call_seconds_count", (("method", submit),))] == 2
    # Bounded labels: the research and the job are never named.
    assert "rmetrics" not in text and final.id not in text

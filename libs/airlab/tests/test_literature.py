"""Literature search against a local server with the APIs' recorded answers: merged and de-duplicated
results, the cache, and every failure (429 then success, 500s until the breaker opens, a timeout, malformed
answers, offline mode) ending in a status, never an exception."""

from pathlib import Path

import pytest

from airlab.literature import Literature, LiteratureSettings, Paper, merge, prompt_lines
from airlab.settings import Settings, described
from airlab.testing import LiteratureServer

RECORDED = Path(__file__).parent / "data" / "literature"
QUERY = "digits classification"


@pytest.fixture
def server():
    served = LiteratureServer(RECORDED, stall=1.5)
    yield served
    served.close()


def no_sleep(_: float) -> None:
    pass


def test_results_are_merged_by_doi_and_arxiv_id_and_cached_by_query(server, tmp_path):
    search = Literature(server.settings(), tmp_path / "cache", sleep=no_sleep)
    found = search.search(QUERY)
    titles = [p.title for p in found.papers]
    # XGBoost (OpenAlex and arXiv, same DOI) and Random Forests (OpenAlex and Semantic Scholar, the DOI
    # in another case) are found once each, first: two sources found them.
    assert titles[:2] == ["Random Forests", "XGBoost: A Scalable Tree Boosting System"]
    assert len(titles) == len(set(titles)) == 5
    xgboost = next(p for p in found.papers if p.title.startswith("XGBoost"))
    assert xgboost.arxiv_id == "1603.02754" and xgboost.doi == "10.1145/2939672.2939785"
    assert xgboost.sources == ["arxiv", "openalex"] and "sparsity-aware" in xgboost.abstract
    lecun = next(p for p in found.papers if p.title.startswith("Gradient-based"))
    assert lecun.abstract.startswith("Convolutional networks trained") and lecun.year == 1998
    assert found.status == "5 papers from openalex, arxiv, semantic_scholar" and not found.problems
    assert server.requests == {"openalex": 1, "arxiv": 1, "semantic_scholar": 1}

    again = Literature(server.settings(offline=True), tmp_path / "cache").search(QUERY)
    assert [p.title for p in again.papers] == titles  # from the cache, without the network
    assert server.requests == {"openalex": 1, "arxiv": 1, "semantic_scholar": 1}


def test_a_429_is_retried_then_succeeds(server, tmp_path):
    server.faults["openalex"] = [429, 429]
    waits: list[float] = []
    found = Literature(server.settings(sources=["openalex"]), None, sleep=waits.append).search(QUERY)
    assert len(found.papers) == 3 and server.requests["openalex"] == 3 and not found.problems
    assert waits == [0.5, 1.0]  # exponential backoff between tries


def test_500s_open_the_breaker_and_the_search_goes_on_without_that_source(server):
    server.faults["semantic_scholar"] = [500] * 10
    search = Literature(server.settings(tries=3, breaker_failures=3), None, sleep=no_sleep)
    first = search.search(QUERY)
    assert first.papers and "semantic_scholar: HTTP 500 after 3 tries" in first.problems
    second = search.search("another query")
    assert server.requests["semantic_scholar"] == 3  # not asked again while the breaker is open
    assert any("semantic_scholar: not asked" in p for p in second.problems)


def test_a_timeout_and_a_malformed_answer_are_said_and_the_rest_is_used(server):
    server.faults["arxiv"] = ["timeout"]
    server.faults["openalex"] = ["malformed"]
    settings = server.settings(tries=1, request_seconds=0.5)
    found = Literature(settings, None, sleep=no_sleep).search(QUERY)
    assert [p.title for p in found.papers] == ["Random Forests", "Scikit-learn: Machine Learning in Python"]
    assert "arxiv: timed out" in found.problems
    assert any(p.startswith("openalex: malformed answer") for p in found.problems)


def test_every_source_down_or_offline_says_so(server, tmp_path):
    for name in server.faults:
        server.faults[name] = [503] * 5
    down = Literature(server.settings(tries=1), None).search(QUERY)
    assert down.papers == [] and down.status.startswith("not available (openalex: HTTP 503")
    offline = Literature(server.settings(offline=True), tmp_path / "empty-cache").search(QUERY)
    assert offline.status == "not available (offline)" and offline.papers == []
    off = Literature(server.settings(enabled=False), None).search(QUERY)
    assert off.status == "not available (literature search is off)"


def test_a_machine_without_a_network_is_offline():
    """Names that never resolve (RFC 2606's .invalid), as on a machine with no network: offline, at once."""
    hosts = {f"{n}_url": f"http://{n}.invalid" for n in ("openalex", "arxiv", "semantic_scholar")}
    found = Literature(LiteratureSettings(**hosts), None).search(QUERY)
    assert found.status == "not available (offline)" and len(found.problems) == 3


def test_the_time_budget_bounds_the_whole_search(server):
    for name in server.faults:
        server.faults[name] = ["timeout"] * 3
    settings = server.settings(budget_seconds=1.0, request_seconds=5.0, tries=3)
    found = Literature(settings, None, sleep=no_sleep).search(QUERY)
    assert found.papers == [] and any("time budget" in p for p in found.problems), found.problems


def test_papers_for_a_prompt_and_bibtex():
    papers = merge([[Paper(title="A" * 50, year=2020, abstract="word " * 200, authors=["Ada Lovelace"])]])
    (line,) = prompt_lines(papers, max_chars=300)
    assert line.startswith("[1] " + "A" * 50 + " (2020): word") and len(line) <= 300
    bib = papers[0].bibtex()
    assert bib.startswith("@article{lovelace2020") and "year = {2020}" in bib


def test_the_api_key_is_a_setting_shown_masked(monkeypatch):
    monkeypatch.setenv("AIRLAB_LITERATURE__SEMANTIC_SCHOLAR_API_KEY", "s2-secret")
    monkeypatch.setenv("AIRLAB_LITERATURE__OFFLINE", "false")
    rows = {key: value for key, value, _ in described(Settings())}
    assert rows["literature.semantic_scholar_api_key"] == "**********"
    assert rows["literature.offline"] == "False"

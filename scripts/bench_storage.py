"""Measures storage on this machine, in one run: memory recall latency with 10,000 stored memories in
Qdrant's embedded local mode, and 50 MB write/read throughput through each artifact backend (local
directory, S3 via moto's server and the minio SDK), beside a plain file copy of the same bytes.

Usage: make bench-storage   (or: .venv/bin/python scripts/bench_storage.py [--memories N])"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from airlab.blobs import open_artifact_store
from airlab.memory import LocalE5Embedder, open_memory

MODELS = [
    "logistic regression",
    "an MLP",
    "gradient boosted trees",
    "a random forest",
    "an SVM",
    "a CNN",
    "kNN",
]
CHANGES = [
    "tune the learning rate", "add dropout", "standardize features", "use early stopping",
    "add L2 regularization", "ensemble five seeds", "search the depth", "augment with noise",
]  # fmt: skip
DATASETS = ["digits", "wine", "breast_cancer", "diabetes"]


def p50_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def bench_memory(count: int, queries: int) -> None:
    rng = random.Random(0)
    embedder = LocalE5Embedder()
    items = [
        (
            f"{rng.choice(CHANGES)} for {rng.choice(MODELS)} on {rng.choice(DATASETS)}, variant {n}",
            {
                "research_id": f"r{n % 50}",
                "dataset": rng.choice(DATASETS),
                "outcome": rng.choice(["improved", "no_gain"]),
            },
        )
        for n in range(count)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        memory = open_memory(str(Path(tmp) / "memory"), embedder)
        began = time.perf_counter()
        memory.remember_many("idea", items)
        stored_in = time.perf_counter() - began
        texts = [f"{rng.choice(CHANGES)} with {rng.choice(MODELS)}" for _ in range(queries)]
        embed_times, recall_times, filtered_times = [], [], []
        for text in texts:
            began = time.perf_counter()
            embedder.query(text)
            embed_times.append(time.perf_counter() - began)
            began = time.perf_counter()
            memory.recall(text, kinds=["idea"], k=5)
            recall_times.append(time.perf_counter() - began)
            began = time.perf_counter()
            memory.recall(text, kinds=["idea"], k=5, filters={"dataset": "wine", "outcome": "improved"})
            filtered_times.append(time.perf_counter() - began)
        assert memory.count("idea") == count
        memory.close()
    print(
        f"memory: stored {count} ideas in {stored_in:.1f} s ({count / stored_in:.0f}/s, embedding included)"
    )
    recall, embedding = p50_ms(recall_times), p50_ms(embed_times)
    print(f"  recall p50 with {count} stored: {recall:.1f} ms (query embedding alone {embedding:.1f} ms)")
    print(f"  recall p50 with a dataset+outcome filter: {p50_ms(filtered_times):.1f} ms")


def throughput(action, size: int, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return size / statistics.median(times) / 1e6


def bench_artifacts(size_mb: int, rounds: int) -> None:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per S3 request otherwise

    size = size_mb * 1024 * 1024
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.bin"
        source.write_bytes(os.urandom(size))
        copy = Path(tmp) / "copy.bin"
        baseline_write = throughput(lambda: shutil.copyfile(source, copy), size, rounds)
        baseline_read = throughput(lambda: copy.read_bytes(), size, rounds)
        print(f"artifacts, {size_mb} MB objects, median of {rounds} (MB/s):")
        print(f"  plain file copy / read:   write {baseline_write:7.0f}   read {baseline_read:7.0f}")
        backends = {
            "local directory": open_artifact_store(str(Path(tmp) / "artifacts")),
            "S3 (moto + minio SDK)": open_artifact_store(
                f"s3+http://{host}:{port}/bench", access_key="bench", secret_key="bench"
            ),
        }
        for name, store in backends.items():
            write = throughput(lambda s=store: s.put_file("bench/model.bin", source), size, rounds)
            read = throughput(lambda s=store: s.get("bench/model.bin"), size, rounds)
            print(
                f"  {name:<24} write {write:7.0f}   read {read:7.0f}   "
                f"(x{write / baseline_write:.2f} / x{read / baseline_read:.2f} of the plain file)"
            )
    server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--size-mb", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    bench_artifacts(args.size_mb, args.rounds)
    bench_memory(args.memories, args.queries)


if __name__ == "__main__":
    main()

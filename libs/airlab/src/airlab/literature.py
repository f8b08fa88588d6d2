"""Related work from the literature: OpenAlex, arXiv and Semantic Scholar searched for a research's task
and dataset, merged and de-duplicated (by DOI, then arXiv id, then title), cached on disk by query.

Literature is advice, never a dependency. Each source retries 429 and 5xx answers with backoff (honouring
a short Retry-After), a circuit breaker stops asking a source after repeated failures, the whole search
has a time budget, and offline mode reads the cache only. Whatever fails, `search` returns what it found
and a status that says what happened ("not available (offline)", "arxiv: HTTP 429 after 3 tries", ...);
it never raises, so a research goes on without literature and its report says so."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import socket
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr

from airlab.v1 import idea_pb2

log = logging.getLogger(__name__)
SOURCES = ("openalex", "arxiv", "semantic_scholar")
ABSTRACT_CHARS = 400
ATOM = {"atom": "http://www.w3.org/2005/Atom", "arxiv": "http://arxiv.org/schemas/atom"}


class LiteratureSettings(BaseModel):
    # Off: no search at all. Offline: the on-disk cache only (no network), and "not available (offline)"
    # for a query it does not hold.
    enabled: bool = True
    offline: bool = False
    sources: list[str] = Field(default_factory=lambda: list(SOURCES))
    openalex_url: str = "https://api.openalex.org"
    arxiv_url: str = "https://export.arxiv.org/api"
    semantic_scholar_url: str = "https://api.semanticscholar.org/graph/v1"
    # Optional: Semantic Scholar's key (higher rate limits); OpenAlex's polite pool wants a contact address.
    semantic_scholar_api_key: SecretStr = SecretStr("")
    openalex_email: str = ""
    papers: int = Field(default=5, ge=1, le=25)
    # Seconds for one research's whole search (every source, every retry), and for one request.
    budget_seconds: float = Field(default=20.0, gt=0)
    request_seconds: float = Field(default=8.0, gt=0)
    tries: int = Field(default=3, ge=1, le=10)
    # Consecutive failed requests after which a source is not asked again for `breaker_seconds`.
    breaker_failures: int = Field(default=3, ge=1)
    breaker_seconds: float = Field(default=300.0, ge=0)


class Paper(BaseModel):
    title: str
    year: int | None = None
    authors: list[str] = Field(default_factory=list)
    abstract: str = ""
    venue: str = ""
    doi: str = ""
    arxiv_id: str = ""
    url: str = ""
    sources: list[str] = Field(default_factory=list)

    def key(self) -> str:
        if self.doi:
            return f"doi:{self.doi.lower()}"
        if self.arxiv_id:
            return f"arxiv:{self.arxiv_id.lower()}"
        return "title:" + re.sub(r"[^a-z0-9]+", " ", self.title.lower()).strip()

    def cite_key(self) -> str:
        """A BibTeX key: first author's surname, year, first title word."""
        surname = re.sub(r"[^a-z]", "", (self.authors[0].split()[-1] if self.authors else "anon").lower())
        word = next((w for w in re.findall(r"[a-z]+", self.title.lower()) if len(w) > 3), "paper")
        return f"{surname or 'anon'}{self.year or ''}{word}"

    def bibtex(self) -> str:
        fields = {
            "title": self.title,
            "author": " and ".join(self.authors) or "Anonymous",
            "year": str(self.year or ""),
            "journal": self.venue or ("arXiv" if self.arxiv_id else ""),
            "doi": self.doi,
            "url": self.url,
        }
        body = ",\n".join(f"  {k} = {{{_bib_escape(v)}}}" for k, v in fields.items() if v)
        return f"@article{{{self.cite_key()},\n{body},\n}}\n"


def _bib_escape(text: str) -> str:
    return re.sub(r"[{}\\]", "", text)


@dataclass
class Found:
    """A search's papers, best first, and what happened."""

    papers: list[Paper] = field(default_factory=list)
    status: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def available(self) -> bool:
        return bool(self.papers)


class SourceError(Exception):
    """A source answered badly (a status, malformed data) or not at all."""

    def __init__(
        self, message: str, *, retry: bool = False, wait: float = 0.0, offline: bool = False
    ) -> None:
        super().__init__(message)
        self.retry = retry
        self.wait = wait
        self.offline = offline  # the source's host name does not resolve: this machine has no network


# -- each source's request and answer ----------------------------------------------------------------------


def _openalex(settings: LiteratureSettings, query: str) -> tuple[str, dict[str, str], dict[str, str]]:
    params = {"search": query, "per-page": str(settings.papers)}
    if settings.openalex_email:
        params["mailto"] = settings.openalex_email
    return f"{settings.openalex_url.rstrip('/')}/works", params, {}


def _parse_openalex(body: bytes) -> list[Paper]:
    papers = []
    for work in json.loads(body)["results"]:
        index = work.get("abstract_inverted_index") or {}
        words = sorted((position, word) for word, positions in index.items() for position in positions)
        doi = (work.get("doi") or "").removeprefix("https://doi.org/")
        source = ((work.get("primary_location") or {}).get("source") or {}).get("display_name") or ""
        papers.append(
            Paper(
                title=work.get("display_name") or work.get("title") or "",
                year=work.get("publication_year"),
                authors=[a["author"]["display_name"] for a in work.get("authorships") or []],
                abstract=" ".join(w for _, w in words),
                venue=source,
                doi=doi,
                url=(f"https://doi.org/{doi}" if doi else work.get("id") or ""),
                sources=["openalex"],
            )
        )
    return papers


def _arxiv(settings: LiteratureSettings, query: str) -> tuple[str, dict[str, str], dict[str, str]]:
    params = {"search_query": f"all:{query}", "max_results": str(settings.papers), "start": "0"}
    return f"{settings.arxiv_url.rstrip('/')}/query", params, {}


def _parse_arxiv(body: bytes) -> list[Paper]:
    root = ElementTree.fromstring(body)
    if root.tag != f"{{{ATOM['atom']}}}feed":
        raise ValueError(f"not an Atom feed: <{root.tag}>")
    papers = []
    for entry in root.findall("atom:entry", ATOM):
        abs_url = (entry.findtext("atom:id", "", ATOM) or "").strip()
        arxiv_id = re.sub(r"v\d+$", "", abs_url.rsplit("/abs/", 1)[-1]) if "/abs/" in abs_url else ""
        published = entry.findtext("atom:published", "", ATOM) or ""
        papers.append(
            Paper(
                title=" ".join((entry.findtext("atom:title", "", ATOM) or "").split()),
                year=int(published[:4]) if published[:4].isdigit() else None,
                authors=[a.findtext("atom:name", "", ATOM) or "" for a in entry.findall("atom:author", ATOM)],
                abstract=" ".join((entry.findtext("atom:summary", "", ATOM) or "").split()),
                doi=(entry.findtext("arxiv:doi", "", ATOM) or "").strip(),
                arxiv_id=arxiv_id,
                url=abs_url,
                venue="arXiv",
                sources=["arxiv"],
            )
        )
    return papers


def _semantic_scholar(settings: LiteratureSettings, query: str) -> tuple[str, dict[str, str], dict[str, str]]:
    params = {
        "query": query,
        "limit": str(settings.papers),
        "fields": "title,year,authors,abstract,externalIds,url,venue",
    }
    key = settings.semantic_scholar_api_key.get_secret_value()
    headers = {"x-api-key": key} if key else {}
    return f"{settings.semantic_scholar_url.rstrip('/')}/paper/search", params, headers


def _parse_semantic_scholar(body: bytes) -> list[Paper]:
    papers = []
    for item in json.loads(body).get("data") or []:
        ids = item.get("externalIds") or {}
        papers.append(
            Paper(
                title=item.get("title") or "",
                year=item.get("year"),
                authors=[a.get("name", "") for a in item.get("authors") or []],
                abstract=item.get("abstract") or "",
                venue=item.get("venue") or "",
                doi=ids.get("DOI") or "",
                arxiv_id=ids.get("ArXiv") or "",
                url=item.get("url") or "",
                sources=["semantic_scholar"],
            )
        )
    return papers


Request = Callable[[LiteratureSettings, str], tuple[str, dict[str, str], dict[str, str]]]
Parser = Callable[[bytes], list[Paper]]
CLIENTS: dict[str, tuple[Request, Parser]] = {
    "openalex": (_openalex, _parse_openalex),
    "arxiv": (_arxiv, _parse_arxiv),
    "semantic_scholar": (_semantic_scholar, _parse_semantic_scholar),
}


# -- the search --------------------------------------------------------------------------------------------


@dataclass
class Breaker:
    """Stops asking a source after `failures` failed requests in a row, for `seconds`."""

    failures: int
    seconds: float
    clock: Callable[[], float] = time.monotonic
    _failed: int = 0
    _opened_at: float | None = None

    def open(self) -> bool:
        if self._opened_at is None:
            return False
        if self.clock() - self._opened_at >= self.seconds:
            self._opened_at, self._failed = None, 0  # half open: the next request decides
            return False
        return True

    def record(self, ok: bool) -> None:
        if ok:
            self._failed, self._opened_at = 0, None
            return
        self._failed += 1
        if self._failed >= self.failures:
            self._opened_at = self.clock()


class Literature:
    """The search, with its cache and one breaker per source (kept across researches)."""

    def __init__(
        self,
        settings: LiteratureSettings,
        cache_dir: Path | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.cache_dir = cache_dir
        self.clock = clock
        self.sleep = sleep
        self.breakers = {
            name: Breaker(settings.breaker_failures, settings.breaker_seconds, clock) for name in SOURCES
        }

    def search(self, query: str) -> Found:
        """Papers for `query`, merged across sources, best first; never raises."""
        query = " ".join(query.split())[:300]
        if not self.settings.enabled:
            return Found(status="not available (literature search is off)")
        deadline = self.clock() + self.settings.budget_seconds
        found = Found()
        lists: list[list[Paper]] = []
        answered: list[str] = []
        offline: list[bool] = []  # per source that failed: for want of a network?
        for name in [s for s in self.settings.sources if s in CLIENTS]:
            cached = self._cached(name, query)
            if cached is not None:
                lists.append(cached)
                answered.append(name)
                continue
            if self.settings.offline:
                continue
            if self.breakers[name].open():
                found.problems.append(f"{name}: not asked (it failed {self.settings.breaker_failures} times)")
                continue
            try:
                papers = self._ask(name, query, deadline)
            except SourceError as exc:
                found.problems.append(f"{name}: {exc}")
                offline.append(exc.offline)
                continue
            self._store(name, query, papers)
            lists.append(papers)
            answered.append(name)
        found.papers = merge(lists)[: self.settings.papers]
        if found.papers:
            found.status = f"{len(found.papers)} papers from {', '.join(answered)}"
        elif self.settings.offline or (offline and all(offline)):
            found.status = "not available (offline)"
        elif found.problems:
            found.status = "not available (" + "; ".join(found.problems) + ")"
        else:
            found.status = "no papers found"
        return found

    def _ask(self, name: str, query: str, deadline: float) -> list[Paper]:
        request, parse = CLIENTS[name]
        url, params, headers = request(self.settings, query)
        breaker = self.breakers[name]
        problem = "not asked"
        for attempt in range(1, self.settings.tries + 1):
            left = deadline - self.clock()
            if left <= 0.05:
                raise SourceError(f"{problem}; the search's time budget ran out")
            try:
                body = self._get(url, params, headers, min(self.settings.request_seconds, left))
                papers = parse(body)
            except SourceError as exc:
                breaker.record(ok=False)
                problem = str(exc)
                if not exc.retry or attempt == self.settings.tries or breaker.open():
                    told = f"{problem} after {attempt} tries" if attempt > 1 else problem
                    raise SourceError(told, offline=exc.offline) from None
                wait = min(exc.wait or 0.5 * 2 ** (attempt - 1), 5.0, max(deadline - self.clock(), 0))
                self.sleep(wait)
                continue
            except (ValueError, KeyError, TypeError, ElementTree.ParseError) as exc:
                breaker.record(ok=False)
                raise SourceError(f"malformed answer ({type(exc).__name__}: {str(exc)[:120]})") from None
            breaker.record(ok=True)
            return papers
        raise SourceError(problem)

    def _get(self, url: str, params: dict[str, str], headers: dict[str, str], timeout: float) -> bytes:
        import httpx  # only when a search runs: the settings import this module

        try:
            response = httpx.get(url, params=params, headers=headers, timeout=timeout, follow_redirects=True)
        except httpx.TimeoutException:
            raise SourceError("timed out", retry=True) from None
        except httpx.ConnectError as exc:
            if _unresolved(exc):
                raise SourceError("offline (its host name does not resolve)", offline=True) from None
            raise SourceError(f"unreachable ({type(exc).__name__})", retry=True) from None
        except httpx.HTTPError as exc:
            raise SourceError(f"unreachable ({type(exc).__name__})", retry=True) from None
        if response.status_code == 429 or response.status_code >= 500:
            wait = _retry_after(response.headers.get("retry-after"))
            raise SourceError(f"HTTP {response.status_code}", retry=True, wait=wait)
        if response.status_code != 200:
            raise SourceError(f"HTTP {response.status_code}")
        return response.content

    def _cache_file(self, name: str, query: str) -> Path | None:
        if self.cache_dir is None:
            return None
        digest = hashlib.sha256(query.lower().encode()).hexdigest()[:32]
        return self.cache_dir / f"{name}-{digest}.json"

    def _cached(self, name: str, query: str) -> list[Paper] | None:
        path = self._cache_file(name, query)
        if path is None or not path.is_file():
            return None
        try:
            return [Paper.model_validate(p) for p in json.loads(path.read_text())["papers"]]
        except (ValueError, KeyError, OSError):
            return None  # a damaged cache entry is asked for again

    def _store(self, name: str, query: str, papers: list[Paper]) -> None:
        path = self._cache_file(name, query)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            document = {"query": query, "papers": [p.model_dump() for p in papers]}
            path.write_text(json.dumps(document))
        except OSError:
            log.warning("could not cache literature", extra={"path": str(path)})


def _unresolved(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _retry_after(value: str | None) -> float:
    try:
        return max(float(value or 0), 0.0)
    except ValueError:
        return 0.0


def merge(lists: list[list[Paper]]) -> list[Paper]:
    """One list, each paper once (by DOI, arXiv id or title): papers more sources found first, then by
    their best rank in any source; a paper found again keeps every source's details."""
    merged: dict[str, Paper] = {}
    best: dict[str, int] = {}
    for papers in lists:
        for position, paper in enumerate(papers):
            if not paper.title:
                continue
            key = _match(merged, paper)
            if key in merged:
                kept = merged[key]
                kept.sources = sorted({*kept.sources, *paper.sources})
                kept.doi = kept.doi or paper.doi
                kept.arxiv_id = kept.arxiv_id or paper.arxiv_id
                kept.abstract = kept.abstract or paper.abstract
                kept.year = kept.year or paper.year
                best[key] = min(best[key], position)
            else:
                merged[key] = paper.model_copy()
                best[key] = position
    order = sorted(merged, key=lambda key: (-len(merged[key].sources), best[key]))
    return [merged[key] for key in order]


def _match(merged: dict[str, Paper], paper: Paper) -> str:
    """The key under which `paper` is (or goes) in `merged`: any of its ids or its title matches."""
    keys = [paper.key()]
    if paper.doi and paper.arxiv_id:
        keys.append(f"arxiv:{paper.arxiv_id.lower()}")
    title = Paper(title=paper.title).key()
    for key, kept in merged.items():
        if (
            key in keys
            or (paper.doi and kept.doi.lower() == paper.doi.lower())
            or (paper.arxiv_id and kept.arxiv_id.lower() == paper.arxiv_id.lower())
            or Paper(title=kept.title).key() == title
        ):
            return key
    return keys[0]


def to_proto(paper: Paper) -> idea_pb2.Paper:
    return idea_pb2.Paper(
        title=paper.title, year=paper.year or 0, authors=paper.authors[:10],
        abstract=paper.abstract[:ABSTRACT_CHARS], venue=paper.venue, doi=paper.doi,
        arxiv_id=paper.arxiv_id, url=paper.url,
    )  # fmt: skip


def from_proto(paper: idea_pb2.Paper) -> Paper:
    return Paper(
        title=paper.title, year=paper.year or None, authors=list(paper.authors), abstract=paper.abstract,
        venue=paper.venue, doi=paper.doi, arxiv_id=paper.arxiv_id, url=paper.url,
    )  # fmt: skip


def methods_named(text: str, papers: Sequence[idea_pb2.Paper]) -> list[int]:
    """The places (1-based) of the papers whose method `text` names: the short name before a title's colon
    ("XGBoost: A Scalable ..."), or a short title itself ("Random Forests" names a random forest)."""
    words = _words(text)
    named = []
    for place, paper in enumerate(papers, start=1):
        method = _words(paper.title.split(":", 1)[0])
        if method and len(method) <= 4 and method <= words:
            named.append(place)
    return named


def _words(text: str) -> set[str]:
    """Lower-case words, a plural's s dropped."""
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in re.findall(r"[a-z0-9]+", text.lower())}


def prompt_lines(papers: list[Paper], *, max_chars: int = 1200) -> list[str]:
    """The papers for an LLM prompt, numbered for citing, within `max_chars`."""
    lines, used = [], 0
    for number, paper in enumerate(papers, start=1):
        abstract = paper.abstract
        if len(abstract) > ABSTRACT_CHARS:  # cut at a word
            abstract = abstract[:ABSTRACT_CHARS].rsplit(" ", 1)[0] + " ..."
        line = f"[{number}] {paper.title} ({paper.year or 'n.d.'}): {abstract}".strip()
        if used + len(line) > max_chars:
            line = line[: max(max_chars - used, 0)]
        if not line:
            break
        lines.append(line)
        used += len(line)
    return lines


def query_for(task: str, dataset: str, goal: str) -> str:
    """What to search for: the goal's own words about its task and data."""
    words = " ".join(part for part in (dataset.replace("_", " "), task) if part)
    return words or goal


__all__ = ["Found", "Literature", "LiteratureSettings", "Paper", "merge", "prompt_lines", "query_for"]

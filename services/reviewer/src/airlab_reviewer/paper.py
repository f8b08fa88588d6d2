"""The research as a paper: report.pdf, typeset by Typst (its Python package: no TeX, works offline, fonts
built in) and then checked before it is published.

Every number, table and figure comes from the report's records (summary.json, which the reviewer
recomputes from the runs' stored results): `paper_data` formats them into display strings that a fixed
Typst template (templates/paper.typ) lays out, so no model writes a number. The checker then reads the
PDF's text back, finds every number in it and looks each up in the records (the numbers in summary.json,
those in its texts, and the references' bibliography), at the precision the paper prints it. A paper with
a number that matches no record is not published: the report says which number failed, and the Markdown
and HTML reports stand."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from airlab import literature

TEMPLATES = Path(__file__).parent / "templates"
# A number as the paper prints it: not part of a word, an id or a version ("r3k2", "0.15.2"), an optional
# sign (Typst sets a minus as U+2212), digits and an optional fraction.
MINUS = "\u2212"
NUMBER = re.compile(rf"(?<![\w.\-{MINUS}/:])([+\-{MINUS}]?\d+(?:\.\d+)?)(?![\w]|\.\d)")


@dataclass
class Paper:
    pdf: bytes | None = None
    numbers: int = 0  # numbers found in the PDF's text and checked
    unmatched: list[str] = field(default_factory=list)  # "0.9731 (page 2)"
    pages: int = 0
    seconds: float = 0.0  # typesetting
    error: str = ""  # why there is no paper

    @property
    def published(self) -> bool:
        return self.pdf is not None and not self.unmatched and not self.error

    def status(self) -> str:
        if self.error:
            return f"not written: {self.error}"
        if self.unmatched:
            shown = ", ".join(self.unmatched[:5]) + (" ..." if len(self.unmatched) > 5 else "")
            return (
                f"not published: {len(self.unmatched)} of {self.numbers} numbers in the typeset paper match "
                f"no record of the run ({shown})"
            )
        return (
            f"report.pdf, {self.pages} pages: all {self.numbers} numbers in it checked against the run's "
            f"records (typeset in {self.seconds:.2f} s)"
        )

    def view(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "status": self.status(),
            "numbers_checked": self.numbers,
            "unmatched": self.unmatched,
            "pages": self.pages,
            "typeset_seconds": round(self.seconds, 3),
        }


# -- the numbers -------------------------------------------------------------------------------------------


def numbers_in(text: str) -> list[str]:
    """The numbers in `text` as written (a U+2212 minus read as "-")."""
    return [m.group(1).replace(MINUS, "-") for m in NUMBER.finditer(text)]


def record_numbers(records: Any) -> set[Decimal]:
    """Every number in `records` (nested JSON values): the numbers themselves and those written in its
    texts."""
    found: set[Decimal] = set()
    stack = [records]
    while stack:
        value = stack.pop()
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float):
            try:
                found.add(Decimal(repr(float(value))) if isinstance(value, float) else Decimal(value))
            except InvalidOperation:  # nan, inf: never printed as a number
                continue
        elif isinstance(value, str):
            found.update(Decimal(n) for n in numbers_in(value))
        elif isinstance(value, Mapping):
            stack.extend(value.values())
            stack.extend(k for k in value if isinstance(k, str))
        elif isinstance(value, Iterable):
            stack.extend(value)
    return found


def matches(printed: str, records: set[Decimal]) -> bool:
    """Whether a printed number is some record rounded to the printed precision."""
    value = Decimal(printed)
    places = -value.as_tuple().exponent if "." in printed else 0  # type: ignore[operator]
    half = Decimal(5) * Decimal(10) ** (-(places + 1))
    return any(abs(record - value) <= half for record in records)


def check(pages: Sequence[str], records: set[Decimal]) -> tuple[int, list[str]]:
    """How many numbers the pages' text holds, and those that match no record ("<number> (page N)")."""
    checked, unmatched = 0, []
    for page, text in enumerate(pages, start=1):
        for printed in numbers_in(text):
            checked += 1
            if not matches(printed, records):
                unmatched.append(f"{printed} (page {page})")
    return checked, unmatched


def pdf_pages(pdf: bytes) -> list[str]:
    """The text of each page of a PDF."""
    import pypdfium2

    document = pypdfium2.PdfDocument(pdf)
    try:
        return [page.get_textpage().get_text_range() for page in document]
    finally:
        document.close()


# -- the paper's content -----------------------------------------------------------------------------------


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


NONE = ("-", "-", "-")  # the baseline's gain, p and claim


def _fmt(value: Any, places: int = 4, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{float(value):{'+' if sign else ''}.{places}f}"


def paper_data(summary: Mapping[str, Any], goal: str, plots: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    """What the template lays out: display strings formatted from the records (summary.json), the plots'
    files and titles."""
    plan = summary["plan"]
    metric = summary["metric"]
    baseline = summary.get("baseline")
    ideas = summary.get("ideas", [])
    evaluated = [i for i in ideas if i.get("evaluation")]
    ran = [i for i in ideas if i.get("trials") or i.get("evaluation")]
    better = "higher" if summary.get("maximize", True) else "lower"
    rule = summary["verdict_rule"]
    counts = summary["counts"]
    baseline_words = (
        f"the baseline ({plan['baseline']}) scores {_fmt(baseline['mean'])} ± {_fmt(baseline['std'])} "
        f"over {baseline['seeds']} seeds"
        if baseline
        else "the baseline produced no result"
    )
    abstract = (
        f"We report an automated study of the goal “{goal}”. On the {plan['dataset']} dataset "
        f"({plan['task']}; {metric}, {better} is better), {baseline_words}. The lab proposed "
        f"{_count(len(ideas), 'idea')} and evaluated {len(evaluated)} of them against the baseline on the "
        f"same seeds and a held-out test split, within a budget of "
        f"{plan['budget']['max_experiments']} experiments. Outcome: {summary['verdict']}."
    )
    results = [
        [
            idea["title"],
            idea["origin"],
            f"{_fmt(idea['evaluation']['mean'])} ± {_fmt(idea['evaluation']['std'])}",
            _fmt(idea["evaluation"]["gain"], sign=True),
            _fmt(idea["evaluation"]["adjusted_p"]),
            "yes"
            if idea["evaluation"]["significant"]
            else "suggestive"
            if idea["evaluation"]["suggestive"]
            else "no",
        ]
        for idea in evaluated
    ]
    method = []
    keys = cite_keys(summary)
    for idea in ran:
        line = f"{idea['title']} ({idea['origin']}; code: {idea['code_origin']}): {idea['change']}"
        if idea.get("steps"):
            line += f" Steps: {'; '.join(idea['steps'])}."
        if idea.get("evidence"):
            line += f" Evidence: {idea['evidence']}"
        cites = [keys[n - 1] for n in idea.get("cites", []) if 0 < n <= len(keys)]
        method.append({"text": line, "cites": cites})
    negative = [
        f"{i['title']}: {i['status']}"
        + (
            f", {_fmt(i['evaluation']['gain'], sign=True)} against the baseline, not significant"
            if i.get("evaluation")
            else ""
        )
        for i in ideas
        if not (i.get("evaluation") or {}).get("significant")
    ]
    devices = summary.get("devices") or {}
    baseline_runs = summary.get("baseline_experiments") or {}
    related = summary.get("related_work") or {}
    return {
        "title": goal[:1].upper() + goal[1:],
        "byline": f"airlab, automated research {summary['research_id']}",
        "written": summary.get("written_at", ""),
        "abstract": abstract,
        "introduction": [
            f"The goal, as a researcher typed it: “{goal}”. The lab planned the study "
            f"({plan['dataset']}, {metric}, baseline {plan['baseline']}), proposed ideas, wrote and ran "
            "their code in sandboxes, compared each against the baseline and wrote this paper from the "
            "stored results. Every number in it is read from those results.",
            f"It stopped because: {summary['stop_reason'] or 'the loop ended'}.",
        ],
        "related_status": related.get("status", "not searched"),
        "related": [
            {"key": key, "text": f"{paper['title']} ({paper.get('year') or 'n.d.'})"}
            for key, paper in zip(cite_keys(summary), related.get("papers", []), strict=True)
        ],
        "method": method or [{"text": "No idea reached its experiments.", "cites": []}],
        "setup": [
            f"Data: {plan['dataset']} ({plan['task']}); a held-out test split of {plan['test_percent']}% of "
            "the data, fixed for the whole research; the search compares validation scores only.",
            f"Seeds: {', '.join(str(s) for s in plan['seeds'])}. Budget: "
            f"{plan['budget']['max_experiments']} experiments, {plan['budget']['max_wall_seconds']} s.",
            "Hardware: "
            + (", ".join(f"{d} ({n} runs)" for d, n in devices.items()) or "no finished runs")
            + ".",
            f"Experiments: {counts['finished']} finished, {counts['failed']} failed, of "
            f"{counts['requested']} requested.",
        ],
        "results_header": ["idea", "proposed by", f"{metric} (mean ± std)", "gain", "adjusted p", "claim"],
        "results": results,
        "baseline_row": (
            [plan["baseline"], "baseline", f"{_fmt(baseline['mean'])} ± {_fmt(baseline['std'])}", *NONE]
            if baseline
            else []
        ),
        "figures": [{"file": p["file"], "caption": p["title"]} for p in plots],
        "significance": (
            f"Each comparison's p is the larger of a paired t-test over seeds and a bootstrap over test "
            f"examples. Holm's method adjusts it over the research's planned family of "
            f"{rule['family_size']} comparisons, so that the chance that the research as a whole claims a "
            f"false win stays at most {rule['alpha']}. A claim needs an adjusted p below "
            f"{rule['first_look_level']} on the plan's seeds; a borderline idea may get more seeds and a "
            f"second look below {rule['second_look_level']}."
        ),
        "verdict": summary["verdict"],
        "negative": negative or ["none"],
        "failures": summary.get("failures") or ["none"],
        "reproduce": [
            f"The lab's version: airlab {summary.get('lab_version', '')}.".replace(" .", "."),
            f"Every run's code, logs, metrics and result are stored under research/{summary['research_id']}/ "
            "in the lab's artifact store.",
            "The Python client's Lab.download copies them; airlab report --out copies the report, this "
            "paper and summary.json. The baseline's runs are "
            + ", ".join(f"seed {s}: {x}" for s, x in sorted(baseline_runs.items()))
            + ".",
            f"To run the study again: airlab research “{goal}” --max-experiments "
            f"{plan['budget']['max_experiments']} (the plan fixes the data, the split and the seeds).",
        ],
    }


# -- typesetting -------------------------------------------------------------------------------------------


def cite_keys(summary: Mapping[str, Any]) -> list[str]:
    """The BibTeX key of each related-work paper, in its place (unique: a repeat gets a letter)."""
    keys: list[str] = []
    for paper in (summary.get("related_work") or {}).get("papers", []):
        key = _as_paper(paper).cite_key()
        while key in keys or key in ("holm1979", "efron1993", "bergstra2011"):
            key += "a"
        keys.append(key)
    return keys


def _as_paper(view: Mapping[str, Any]) -> literature.Paper:
    return literature.Paper(
        title=view["title"], year=view.get("year"), authors=view.get("authors") or [],
        venue=view.get("venue") or "", doi=view.get("doi") or "", arxiv_id=view.get("arxiv_id") or "",
        url=view.get("url") or "",
    )  # fmt: skip


def bibliography(summary: Mapping[str, Any]) -> str:
    """The paper's references: the methods the lab uses, and the research's related work."""
    papers = (summary.get("related_work") or {}).get("papers", [])
    entries = [
        _as_paper(paper).bibtex().replace(_as_paper(paper).cite_key(), key, 1)
        for key, paper in zip(cite_keys(summary), papers, strict=True)
    ]
    return "\n".join([references_text(), *entries])


def typeset(data: Mapping[str, Any], plots: Mapping[str, bytes], references: str) -> bytes:
    """The PDF of `data` through templates/paper.typ, with the plots' PNG files and the references beside
    it."""
    import typst

    with tempfile.TemporaryDirectory(prefix="airlab-paper-") as folder:
        root = Path(folder)
        shutil.copy(TEMPLATES / "paper.typ", root / "paper.typ")
        (root / "references.bib").write_text(references)
        (root / "paper.json").write_text(json.dumps(data))
        for name, content in plots.items():
            (root / name).write_bytes(content)
        # System fonts are ignored: the fonts built into Typst make the same PDF on every machine.
        return typst.compile(str(root / "paper.typ"), root=str(root), ignore_system_fonts=True)


def references_text() -> str:
    return (TEMPLATES / "references.bib").read_text()


def reference_numbers(bibliography: str) -> set[Decimal]:
    """Every number in the references: runs of digits (years, volumes, each end of a page range) and the
    numbers as written (a DOI's "10.1145")."""
    return {Decimal(n) for n in re.findall(r"\d+", bibliography)} | record_numbers(bibliography)


def write_paper(
    summary: Mapping[str, Any], goal: str, plots: Sequence[Mapping[str, str]], images: Mapping[str, bytes]
) -> Paper:
    """Typeset the paper and check it. Never raises: a paper that cannot be written says why."""
    paper = Paper()
    began = time.perf_counter()
    references = bibliography(summary)
    try:
        pdf = typeset(paper_data(summary, goal, plots), images, references)
    except Exception as exc:  # the Markdown and HTML reports stand without it
        paper.error = f"typesetting failed: {type(exc).__name__}: {str(exc)[:300]}"
        return paper
    paper.seconds = time.perf_counter() - began
    pages = pdf_pages(pdf)
    paper.pages = len(pages)
    # The records: summary.json and the references the paper lists; and the paper's own numbering (pages,
    # figures, tables, citations).
    records = record_numbers(summary) | reference_numbers(references)
    numbered = max(len(pages), len(plots) + 1, references.count("\n@") + 1)
    records |= {Decimal(n) for n in range(1, numbered + 1)}
    paper.numbers, paper.unmatched = check(pages, records)
    paper.pdf = pdf
    return paper

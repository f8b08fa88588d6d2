"""The report from a typed loop and stored results, without servers: what it says about each idea."""

import json
from decimal import Decimal
from pathlib import Path

import pypdfium2

from airlab.blobs import LocalArtifactStore, experiment_key
from airlab.job_templates import template_source
from airlab.llm.accounting import ResearchUsage
from airlab.v1 import idea_pb2, loop_pb2, manager_pb2, research_pb2
from airlab_reviewer.agent import Reviewer
from airlab_reviewer.paper import (
    bibliography,
    check,
    numbers_in,
    pdf_pages,
    record_numbers,
    reference_numbers,
)

RID = "r" + "b" * 26
SHOTS = Path(__file__).parents[3] / "build" / "screenshots"
IDEA = "i" + "c" * 26


def result(store, experiment, seed, value, targets, predictions, **extra):
    doc = {"metrics": {"accuracy": value, "val_accuracy": value}, "seed": seed, "duration_seconds": 1,
           "test_targets": targets, "test_predictions": predictions, **extra}  # fmt: skip
    store.put(experiment_key(RID, experiment, "result.json"), json.dumps(doc).encode())


def report_on_digits(store, loop, goal: str):
    """The report of a research on digits (accuracy, seeds 0-2, a budget of 16 experiments)."""
    plan = research_pb2.Plan(
        dataset="digits", metric="accuracy", direction=research_pb2.METRIC_DIRECTION_MAXIMIZE,
        seeds=[0, 1, 2], budget=research_pb2.Budget(max_experiments=16),
    )  # fmt: skip
    research = research_pb2.Research(id=RID, goal=goal, plan=plan)
    return Reviewer(store).write_report(research, loop, ResearchUsage({}))


def test_the_report_credits_origins_and_shows_seeds_parameters_decisions_and_the_code_diff(tmp_path):
    store = LocalArtifactStore(tmp_path)
    template = template_source("sklearn_train_template.py")
    store.put("code/baseline/train.py", template.encode())
    store.put("code/idea/train.py", template.replace("MODELS[settings()", "MODELS[ settings()").encode())
    targets = [0, 1] * 50
    loop = loop_pb2.ResearchLoop(
        schema=2, baseline_code="code/baseline/", stop_reason="experiment budget spent"
    )
    for seed in (0, 1, 2):
        base, cand = f"xb{seed}", f"xi{seed}"
        result(store, base, seed, 0.80, targets, [0] * 60 + [1] * 40)
        result(store, cand, seed, 0.95, targets, targets[:95] + [1 - t for t in targets[95:]])
        loop.experiments.add(id=base, kind=loop_pb2.EXPERIMENT_KIND_BASELINE, name="baseline", seed=seed,
                             state=loop_pb2.EXPERIMENT_STATE_FINISHED, test=0.8)  # fmt: skip
        loop.experiments.add(id=cand, kind=loop_pb2.EXPERIMENT_KIND_EVALUATION, name=IDEA, seed=seed,
                             state=loop_pb2.EXPERIMENT_STATE_FINISHED, test=0.95)  # fmt: skip
        loop.baseline.experiments[seed] = base
    idea = loop.ideas.add(
        idea=idea_pb2.Idea(id=IDEA, title="Hist gradient boosting (portfolio)"),
        status=loop_pb2.IDEA_STATUS_EVALUATED,
        origin=loop_pb2.IDEA_ORIGIN_PORTFOLIO,
        code_origin=loop_pb2.CODE_ORIGIN_REGISTRY,
        code_ref="code/idea/",
        review=manager_pb2.IdeaReview(approved=True),
        evaluations={0: "xi0", 1: "xi1", 2: "xi2"},
    )
    idea.best_params["max_iter"].integer = 120
    idea.code_sha256 = "c0de"
    twin = loop.ideas.add()
    twin.CopyFrom(idea)
    twin.idea.title, twin.origin = "Gradient boosting on histograms", loop_pb2.IDEA_ORIGIN_LLM
    twin.code_origin, twin.code_attempts = loop_pb2.CODE_ORIGIN_LLM, 2
    twin.code_repairs.append(
        "`ensemble.HistGradientBoosting` does not exist: used ensemble.HistGradientBoostingClassifier"
    )
    loop.ideas.add(
        idea=idea_pb2.Idea(id="i" + "d" * 26, title="Random forest"),
        status=loop_pb2.IDEA_STATUS_NOT_RUN,
        origin=loop_pb2.IDEA_ORIGIN_LLM,
        code_origin=loop_pb2.CODE_ORIGIN_REGISTRY_FALLBACK,
        code_problems=["attempt 1: build_model calls load_digits()"],
        review=manager_pb2.IdeaReview(approved=True),
    )
    # An idea whose search ended behind the best on validation, one of its two trials stopped early.
    behind = "i" + "e" * 26
    for n, stopped in ((0, 3), (1, 0)):
        loop.experiments.add(id=f"xt{n}", kind=loop_pb2.EXPERIMENT_KIND_TRIAL, name=behind, seed=0,
                             state=loop_pb2.EXPERIMENT_STATE_FINISHED, validation=0.7,
                             stopped_at_epoch=stopped)  # fmt: skip
    loop.ideas.add(
        idea=idea_pb2.Idea(id=behind, title="Wider CNN"),
        status=loop_pb2.IDEA_STATUS_NOT_BETTER,
        origin=loop_pb2.IDEA_ORIGIN_LLM,
        code_origin=loop_pb2.CODE_ORIGIN_LLM,
        code_attempts=1,
        trials=["xt0", "xt1"],
        failure="its best trial (0.7000 on validation) is not ahead of the best idea so far",
        review=manager_pb2.IdeaReview(approved=True),
    )
    # A feature idea whose steps were added to the best's at its turn (research.build_on_best).
    loop.ideas.add(
        idea=idea_pb2.Idea(
            id="i" + "f" * 26,
            title="Debt to income",
            family="hist_gradient_boosting",
            steps=[idea_pb2.FeatureStep(technique=idea_pb2.TECHNIQUE_RATIO, columns=["debt", "income"])],
        ),
        status=loop_pb2.IDEA_STATUS_NOT_BETTER,
        origin=loop_pb2.IDEA_ORIGIN_LLM,
        built_on="i" + "d" * 26,
        review=manager_pb2.IdeaReview(approved=True),
    )
    loop.ideas[-1].idea.notes.append(
        "started in the slots 'Wider CNN' left free as it ended (two ideas in flight)"
    )
    for _ in range(3):
        loop.decisions.add(round=1, kind=manager_pb2.DECISION_KIND_CONTINUE, reason="12 experiments left")
    research = research_pb2.Research(
        id=RID,
        goal="beat the baseline",
        plan=research_pb2.Plan(
            dataset="digits",
            metric="accuracy",
            direction=research_pb2.METRIC_DIRECTION_MAXIMIZE,
            seeds=[0, 1, 2],
        ),
    )
    md_key, _, summary = Reviewer(store).write_report(research, loop, ResearchUsage({}))
    markdown = store.get(md_key).decode()
    assert "| Hist gradient boosting (portfolio) | portfolio | template registry |" in markdown
    assert "| Random forest | idea agent (LLM) | registry fallback (LLM drafts failed) |" in markdown
    assert '`{"max_iter": 120}`' in markdown  # a whole number stays whole
    assert "seed 0: 0.9500 (baseline 0.8000)" in markdown
    assert "round 1: continue (3 times): 12 experiments left" in markdown
    assert "DECISION_KIND" not in markdown and "IDEA_STATUS" not in markdown
    assert "```diff" in markdown and "+++ best/train.py" in markdown
    assert "code draft rejected: attempt 1: build_model calls load_digits()" in markdown
    assert summary["ideas"][0]["origin"] == "portfolio"
    # The LLM's code, and what the coder changed in it, in the table, its own section and summary.json.
    assert (
        "| Gradient boosting on histograms | idea agent (LLM) | LLM (attempt 2, 1 repair by the coder) |"
        in markdown
    )
    assert "- **Gradient boosting on histograms**: `ensemble.HistGradientBoosting` does not exist" in markdown
    assert summary["ideas"][1]["code_repairs"] == list(twin.code_repairs)
    # What the lab changed in an idea or how it ran it (its notes), in a section of its own.
    assert "### What the lab changed in an idea, or how it ran it" in markdown
    assert "- **Debt to income**: started in the slots 'Wider CNN' left free as it ended" in markdown
    assert "same code and parameters as 'Hist gradient boosting (portfolio)': one experiment" in markdown
    assert (
        "| Wider CNN | idea agent (LLM) | LLM (attempt 1) | approved | not better | 2 (1 stopped early) |"
        in markdown
    )
    assert (
        "not better: its best trial (0.7000 on validation) is not ahead of the best idea so far" in markdown
    )
    assert summary["ideas"][3]["stopped_early"] == 1
    assert (
        "- **Debt to income**: ratio of debt and income, feeding a hist gradient boosting (built on the best "
        "idea at its turn, Random forest)" in markdown
    )
    assert summary["ideas"][4]["built_on"] == "Random forest"


def test_a_null_research_says_its_baseline_does_not_beat_chance_and_shows_raw_and_adjusted_p(tmp_path):
    """Shuffled labels: the baseline below chance, a candidate above it by a hair. No claim, both p-values
    in the table, the rule and the chance model in summary.json."""
    store = LocalArtifactStore(tmp_path)
    template = template_source("sklearn_train_template.py")
    store.put("code/baseline/train.py", template.encode())
    store.put("code/idea/train.py", template.encode())
    targets = [n % 4 for n in range(200)]  # 4 balanced classes: chance 0.25
    loop = loop_pb2.ResearchLoop(schema=2, baseline_code="code/baseline/", stop_reason="budget spent")
    for seed, (base_hits, cand_hits) in enumerate(((44, 60), (46, 58), (45, 61))):
        base, cand = f"xb{seed}", f"xi{seed}"
        wrong = [(t + 1) % 4 for t in targets]
        notes = ["column 'customer_id' dropped: an identifier (each of its values is distinct)"]
        result(store, base, seed, base_hits / 200, targets, targets[:base_hits] + wrong[base_hits:],
               column_notes=notes)  # fmt: skip
        result(store, cand, seed, cand_hits / 200, targets, targets[:cand_hits] + wrong[cand_hits:])
        loop.baseline.experiments[seed] = base
        loop.experiments.add(id=cand, kind=loop_pb2.EXPERIMENT_KIND_EVALUATION, name=IDEA, seed=seed,
                             state=loop_pb2.EXPERIMENT_STATE_FINISHED, test=cand_hits / 200)  # fmt: skip
    loop.ideas.add(
        idea=idea_pb2.Idea(id=IDEA, title="Hist gradient boosting (portfolio)"),
        status=loop_pb2.IDEA_STATUS_EVALUATED,
        origin=loop_pb2.IDEA_ORIGIN_PORTFOLIO,
        code_origin=loop_pb2.CODE_ORIGIN_REGISTRY,
        code_ref="code/idea/",
        review=manager_pb2.IdeaReview(approved=True),
        evaluations={0: "xi0", 1: "xi1", 2: "xi2"},
    )
    md_key, _, summary = report_on_digits(store, loop, "beat the baseline")
    markdown = store.get(md_key).decode()
    assert summary["verdict"].startswith("no significant gain over the baseline")
    assert "the baseline does not beat chance (the most frequent class: 0.2500)" in summary["verdict"]
    assert "**The baseline does not beat chance.**" in markdown
    assert "| p (raw / adjusted) | significant |" in markdown
    evaluation = summary["ideas"][0]["evaluation"]
    assert evaluation["family_size"] == 4 and not evaluation["significant"]
    assert evaluation["adjusted_p"] >= evaluation["combined_p"]
    assert f"{evaluation['combined_p']:.4f} / {evaluation['adjusted_p']:.4f}" in markdown
    assert summary["chance"]["baseline_beats_chance"] is False
    assert summary["verdict_rule"]["family_size"] == 4 and summary["verdict_rule"]["first_look_level"] == 0.01
    assert "Holm over a planned family of 4 comparisons" in markdown
    assert "The table's columns: column 'customer_id' dropped: an identifier" in markdown
    assert summary["column_notes"] == notes


def test_a_better_mean_that_missed_significance_is_said_beside_the_significant_claim(tmp_path):
    """A steady small gain is the claim; an idea with a better mean but a seed far below is not, and the
    verdict says its mean and adjusted p too (a goal for the best the budget buys may want it)."""
    store = LocalArtifactStore(tmp_path)
    store.put("code/baseline/train.py", template_source("sklearn_train_template.py").encode())
    targets = [0, 1] * 200
    flipped = [1 - t for t in targets]
    loop = loop_pb2.ResearchLoop(schema=2, baseline_code="code/baseline/", stop_reason="budget spent")
    runs = {"steady": (0.90, 0.89, 0.90), "spiky": (0.99, 0.99, 0.75)}
    for seed in (0, 1, 2):
        result(store, f"xb{seed}", seed, 0.80, targets, targets[:320] + flipped[320:])
        loop.baseline.experiments[seed] = f"xb{seed}"
    for n, (title, scores) in enumerate(runs.items()):
        idea_id = "i" + str(n) * 26
        store.put(f"code/{title}/train.py", template_source("sklearn_train_template.py").encode())
        for seed, score in enumerate(scores):
            hits = round(score * len(targets))
            result(store, f"x{title}{seed}", seed, score, targets, targets[:hits] + flipped[hits:])
            loop.experiments.add(id=f"x{title}{seed}", kind=loop_pb2.EXPERIMENT_KIND_EVALUATION,
                                 name=idea_id, seed=seed, state=loop_pb2.EXPERIMENT_STATE_FINISHED,
                                 test=score)  # fmt: skip
        loop.ideas.add(
            idea=idea_pb2.Idea(id=idea_id, title=title),
            status=loop_pb2.IDEA_STATUS_EVALUATED,
            origin=loop_pb2.IDEA_ORIGIN_LLM,
            code_ref=f"code/{title}/",
            review=manager_pb2.IdeaReview(approved=True),
            evaluations={seed: f"x{title}{seed}" for seed in (0, 1, 2)},
        )
    _, _, summary = report_on_digits(store, loop, "get the best accuracy you can")
    steady, spiky = (idea["evaluation"] for idea in summary["ideas"])
    assert steady["significant"] and not spiky["significant"] and spiky["gain"] > steady["gain"]
    assert summary["verdict"].startswith("'steady' beat the baseline significantly: 0.8967")
    assert summary["verdict"].endswith(
        f"; the best mean, 'spiky' 0.9100 ± {spiky['std']:.4f}, is not significant (adjusted p = "
        f"{spiky['adjusted_p']:.4f})"
    )
    assert summary["best_idea_id"] == "i" + "0" * 26


def test_an_evaluation_run_that_did_not_finish_is_left_out_of_the_comparison_not_fatal(tmp_path):
    """Found by the soak: a runner died twice under an evaluation run, which failed with no result. The
    loop judged the idea on its finished runs; the report does the same instead of failing to be written."""
    store = LocalArtifactStore(tmp_path)
    targets = [0, 1] * 50
    loop = loop_pb2.ResearchLoop(schema=2, stop_reason="experiment budget spent")
    for seed in (0, 1, 2):
        result(store, f"xb{seed}", seed, 0.80, targets, [0] * 60 + [1] * 40)
        loop.experiments.add(id=f"xb{seed}", kind=loop_pb2.EXPERIMENT_KIND_BASELINE, name="baseline",
                             seed=seed, state=loop_pb2.EXPERIMENT_STATE_FINISHED, test=0.8)  # fmt: skip
        loop.baseline.experiments[seed] = f"xb{seed}"
        ended = loop_pb2.EXPERIMENT_STATE_FINISHED if seed < 2 else loop_pb2.EXPERIMENT_STATE_FAILED
        if seed < 2:
            result(store, f"xi{seed}", seed, 0.95, targets, targets)
        loop.experiments.add(id=f"xi{seed}", kind=loop_pb2.EXPERIMENT_KIND_EVALUATION, name=IDEA, seed=seed,
                             state=ended)  # fmt: skip
    loop.ideas.add(
        idea=idea_pb2.Idea(id=IDEA, title="Random forest"),
        status=loop_pb2.IDEA_STATUS_EVALUATED,
        origin=loop_pb2.IDEA_ORIGIN_LLM,
        review=manager_pb2.IdeaReview(approved=True),
        evaluations={0: "xi0", 1: "xi1", 2: "xi2"},
    )
    research = research_pb2.Research(
        id=RID,
        goal="beat the baseline",
        plan=research_pb2.Plan(
            dataset="digits",
            metric="accuracy",
            seeds=[0, 1, 2],
            direction=research_pb2.METRIC_DIRECTION_MAXIMIZE,
        ),
    )
    _, _, summary = Reviewer(store).write_report(research, loop, ResearchUsage({}))
    (idea,) = summary["ideas"]
    assert idea["evaluation"]["candidate"] == {0: "xi0", 1: "xi1"}
    assert idea["evaluation"]["seeds"] == [0, 1]


def test_the_paper_is_typeset_from_the_records_and_every_number_in_it_is_checked(tmp_path):
    """report.pdf beside the reports: its text has the results, and every number in it is one of the
    run's records; the checker refuses a paper whose text holds a number no record has."""
    store = LocalArtifactStore(tmp_path)
    template = template_source("sklearn_train_template.py")
    store.put("code/baseline/train.py", template.encode())
    store.put("code/idea/train.py", template.encode())
    targets = [0, 1] * 50
    loop = loop_pb2.ResearchLoop(schema=2, baseline_code="code/baseline/", stop_reason="budget spent")
    for seed, (base_value, cand_value) in enumerate(((0.80, 0.95), (0.81, 0.94), (0.79, 0.96))):
        base, cand = f"xb{seed}", f"xi{seed}"
        result(store, base, seed, base_value, targets, [0] * 60 + [1] * 40)
        result(store, cand, seed, cand_value, targets, targets[:95] + [1 - t for t in targets[95:]])
        loop.baseline.experiments[seed] = base
        loop.experiments.add(id=base, kind=loop_pb2.EXPERIMENT_KIND_BASELINE, name="baseline", seed=seed,
                             state=loop_pb2.EXPERIMENT_STATE_FINISHED, test=base_value)  # fmt: skip
        loop.experiments.add(id=cand, kind=loop_pb2.EXPERIMENT_KIND_EVALUATION, name=IDEA, seed=seed,
                             state=loop_pb2.EXPERIMENT_STATE_FINISHED, test=cand_value)  # fmt: skip
    loop.related_work_status = "2 papers from openalex, arxiv"
    loop.related_work.add(
        title="Gradient-based learning applied to document recognition",
        year=1998,
        authors=["Yann LeCun"],
        doi="10.1109/5.726791",
        venue="Proceedings of the IEEE",
    )
    loop.related_work.add(
        title="Random Forests",
        year=2001,
        authors=["Leo Breiman"],
        doi="10.1023/A:1010933404324",
        url="https://doi.org/10.1023/A:1010933404324",
    )
    loop.ideas.add(
        idea=idea_pb2.Idea(id=IDEA, title="Random forest with 300 trees", change="a forest", cites=[2]),
        status=loop_pb2.IDEA_STATUS_EVALUATED,
        origin=loop_pb2.IDEA_ORIGIN_LLM,
        code_origin=loop_pb2.CODE_ORIGIN_LLM,
        code_attempts=1,
        code_ref="code/idea/",
        review=manager_pb2.IdeaReview(approved=True),
        evaluations={0: "xi0", 1: "xi1", 2: "xi2"},
    )
    research = research_pb2.Research(
        id=RID,
        goal="beat the logistic-regression baseline on digits",
        plan=research_pb2.Plan(
            dataset="digits", task="classification", metric="accuracy", baseline="logistic_regression",
            direction=research_pb2.METRIC_DIRECTION_MAXIMIZE, seeds=[0, 1, 2], test_fraction=0.25,
            budget=research_pb2.Budget(max_experiments=12, max_wall_seconds=600),
        ),
    )  # fmt: skip
    md_key, _, summary = Reviewer(store).write_report(research, loop, ResearchUsage({}))
    paper = summary["paper"]
    assert paper["published"], paper
    assert paper["numbers_checked"] >= 20 and paper["unmatched"] == []
    assert paper["typeset_seconds"] < 5
    pdf = store.get(md_key.replace("report.md", "report.pdf"))
    pages = pdf_pages(pdf)
    text = " ".join(pages)
    for words in ("Abstract", "Results", "Significance", "Reproducibility", "References", "Holm"):
        assert words in text, words
    # The plots are in it as figures; its first page, rendered, is kept for a look.
    document = pypdfium2.PdfDocument(pdf)
    images = [o for page in document for o in page.get_objects(filter=[pypdfium2.raw.FPDF_PAGEOBJ_IMAGE])]
    assert len(images) >= 2, len(images)  # the experiments and the comparison plots
    SHOTS.mkdir(parents=True, exist_ok=True)
    document[0].render(scale=1.5).to_pil().save(SHOTS / "paper-page-1.png")
    document[len(document) - 1].render(scale=1.5).to_pil().save(SHOTS / "paper-last-page.png")
    assert "0.9500 ± 0.0100" in text and "0.8000 ± 0.0100" in text  # the idea's and the baseline's scores
    markdown = store.get(md_key).decode()
    assert "Paper: report.pdf" in markdown
    # The related work, linked, and the idea that follows it.
    assert "2. [Random Forests](https://doi.org/10.1023/A:1010933404324) (2001)" in markdown
    assert "- **Random forest with 300 trees** cites [2]" in markdown
    assert "Random Forests" in text.split("References")[-1] and "LeCun" in text

    # The checker on the same text with one number changed: that number, and only it, matches no record.
    records = record_numbers(summary) | reference_numbers(bibliography(summary))
    records |= {Decimal(n) for n in range(1, 10)}
    checked, unmatched = check(pages, records)
    assert checked == len([n for p in pages for n in numbers_in(p)]) and unmatched == []
    tampered = [p.replace("0.9500 ± 0.0100", "0.9731 ± 0.0100") for p in pages]
    unmatched = check(tampered, records)[1]
    assert unmatched and {u.split()[0] for u in unmatched} == {"0.9731"}, unmatched

"""The report's plots, drawn with matplotlib from the loop's records and the runs' stored files, each kept as
a PNG beside the report and inlined into its HTML."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from airlab.blobs import report_key
from airlab.v1 import loop_pb2
from airlab_reviewer.stored import StoredRuns


def report_plots(
    stored: StoredRuns,
    research_id: str,
    loop: loop_pb2.ResearchLoop,
    metric: str,
    maximize: bool,
    baseline: dict[str, Any] | None,
    evaluated: list[dict[str, Any]],
) -> list[dict[str, str]]:
    runs = list(loop.experiments)
    titles = {i.idea.id: i.idea.title or i.idea.id for i in loop.ideas}
    baseline_validation = loop.baseline.validation if loop.baseline.HasField("validation") else None
    plots = []

    def keep(name: str, title: str, figure: plt.Figure) -> None:
        buffer = io.BytesIO()
        figure.tight_layout()
        figure.savefig(buffer, format="png", dpi=90)
        plt.close(figure)
        png = buffer.getvalue()
        stored.artifacts.put(report_key(research_id, name), png, content_type="image/png")
        plots.append({"file": name, "title": title, "base64": base64.b64encode(png).decode()})

    # Validation score of every experiment, in the order they were asked for.
    figure, axis = plt.subplots(figsize=(8, 3.6))
    names = sorted({e.name for e in runs})
    for name in names:
        points = [
            (n, e.validation) for n, e in enumerate(runs) if e.name == name and e.HasField("validation")
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            axis.scatter(xs, ys, label=titles.get(name, name)[:40], s=22)
    if baseline_validation is not None:
        axis.axhline(baseline_validation, color="grey", linestyle="--", label="baseline (validation)")
    axis.set_xlabel("experiment")
    axis.set_ylabel(f"validation {metric}")
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=7, loc="best")
    keep("experiments.png", f"Validation {metric} of every experiment", figure)

    # Best validation score so far over the search trials.
    figure, axis = plt.subplots(figsize=(8, 3.2))
    best_so_far, series = None, []
    for e in runs:
        if e.kind == loop_pb2.EXPERIMENT_KIND_TRIAL and e.HasField("validation"):
            value = e.validation
            best_so_far = value if best_so_far is None else (max if maximize else min)(best_so_far, value)
            series.append(best_so_far)
    if series:
        axis.plot(range(1, len(series) + 1), series, marker="o")
    if baseline_validation is not None:
        axis.axhline(baseline_validation, color="grey", linestyle="--", label="baseline")
        axis.legend(fontsize=7)
    axis.set_xlabel("search trial")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel(f"best validation {metric}")
    keep("best_so_far.png", "Best validation score so far", figure)

    # Learning curves (validation score against training samples) of the baseline and evaluated ideas.
    curves: list[tuple[str, Mapping[int, str]]] = [("baseline", loop.baseline.experiments)]
    curves += [(i["title"][:40], i["evaluation"]["candidate"]) for i in evaluated]

    logged: dict[str, list[dict[str, Any]]] = {}  # each run's metrics.jsonl, read once for every curve

    def mean_curve(ids: Mapping[int, str], x_key: str, y_key: str) -> tuple[list[int], list[float]]:
        """y against x, mean over the runs (seeds), from the lines that log both."""
        by_x: dict[int, list[float]] = {}
        for experiment_id in ids.values():
            if experiment_id not in logged:
                logged[experiment_id] = stored.metric_rows(research_id, experiment_id)
            for row in logged[experiment_id]:
                if x_key in row and y_key in row:
                    by_x.setdefault(int(row[x_key]), []).append(float(row[y_key]))
        xs = sorted(by_x)
        return xs, [sum(by_x[x]) / len(by_x[x]) for x in xs]

    figure, axis = plt.subplots(figsize=(8, 3.6))
    for label, ids in curves:
        sizes, values = mean_curve(ids, "train_samples", f"val_{metric}")
        if sizes:
            axis.plot(sizes, values, marker="o", label=label)
    if axis.get_legend_handles_labels()[0]:
        axis.set_xlabel("training samples")
        axis.set_ylabel(f"validation {metric}")
        axis.legend(fontsize=7, loc="best")
        keep(
            "learning_curves.png",
            "Learning curves (the baseline's mean over seeds, an idea's first evaluation seed)",
            figure,
        )
    else:
        plt.close(figure)

    # Networks: training loss and validation score per epoch (mean over seeds).
    figure, (loss_axis, score_axis) = plt.subplots(1, 2, figsize=(9, 3.4))
    for label, ids in curves:
        epochs, losses = mean_curve(ids, "epoch", "train_loss")
        if epochs:
            loss_axis.plot(epochs, losses, label=label)
        epochs, scores = mean_curve(ids, "epoch", f"val_{metric}")
        if epochs:
            score_axis.plot(epochs, scores, label=label)
    if loss_axis.get_legend_handles_labels()[0]:
        for axis, what in ((loss_axis, "training loss"), (score_axis, f"validation {metric}")):
            axis.set_xlabel("epoch")
            axis.set_ylabel(what)
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        loss_axis.set_yscale("log")
        score_axis.legend(fontsize=7, loc="best")
        keep("loss_curves.png", "Training loss and validation score per epoch (mean over seeds)", figure)
    else:
        plt.close(figure)

    # Segmentation: a few test images, their true masks, and the baseline's and best idea's predictions.
    best = max(evaluated, key=lambda i: i["evaluation"]["gain"], default=None)
    base_ids, best_ids = list(loop.baseline.experiments.values()), []
    if best is not None:
        best_ids = list(best["evaluation"]["candidate"].values())
    base_masks = stored.masks(research_id, base_ids[0]) if base_ids else None
    best_masks = stored.masks(research_id, best_ids[0]) if best_ids else None
    if base_masks is not None:
        rows = [("image", base_masks["images"], "gray"), ("truth", base_masks["truth"], "tab10")]
        rows.append(("baseline", base_masks["predicted"], "tab10"))
        if best_masks is not None and best is not None:
            rows.append((best["title"][:24], best_masks["predicted"], "tab10"))
        shown = len(base_masks["images"])
        figure, axes = plt.subplots(len(rows), shown, figsize=(2 * shown, 2 * len(rows)), squeeze=False)
        for r, (label, arrays, colours) in enumerate(rows):
            for c in range(shown):
                cell = axes[r][c]
                if colours == "gray":
                    cell.imshow(arrays[c], cmap=colours)
                else:
                    cell.imshow(arrays[c], cmap=colours, vmin=0, vmax=9, interpolation="nearest")
                cell.set_xticks([])
                cell.set_yticks([])
            axes[r][0].set_ylabel(label, fontsize=8)
        keep("masks.png", "Test images: true masks and predicted masks (first seed)", figure)

    # Test score of the baseline and each evaluated idea, mean ± std over seeds.
    if baseline is not None:
        figure, axis = plt.subplots(figsize=(8, 3.2))
        labels = ["baseline"] + [i["title"][:30] for i in evaluated]
        means = [baseline["mean"]] + [i["evaluation"]["mean"] for i in evaluated]
        stds = [baseline["std"]] + [i["evaluation"]["std"] for i in evaluated]
        colors = ["grey"] + [
            "tab:green" if i["evaluation"]["significant"] else "tab:orange" for i in evaluated
        ]
        axis.bar(range(len(labels)), means, yerr=stds, color=colors, capsize=4)
        axis.set_xticks(range(len(labels)), labels, rotation=15, fontsize=7)
        low = min(m - s for m, s in zip(means, stds, strict=True))
        high = max(m + s for m, s in zip(means, stds, strict=True))
        bottom = low - (high - low) * 0.5 - 1e-6
        axis.set_ylim(bottom, high + (high - low) * 0.3 + 1e-6)
        # The axis does not start at 0 (the differences would not show): say so on it.
        axis.set_ylabel(f"test {metric} (axis from {bottom:.3g}, not 0)")
        keep(
            "comparison.png",
            f"Held-out test {metric}: baseline and evaluated ideas (green: significant)",
            figure,
        )
    return plots

"""Job templates: complete, runnable experiments the coder edits into new ones. Each follows the
experiment contract (metrics.jsonl while it runs, result.json at the end, models/ and plots/)."""

from __future__ import annotations

from importlib import resources

TEMPLATES = ("pytorch_train_template.py", "sklearn_train_template.py")


def template_source(name: str) -> str:
    if name not in TEMPLATES:
        raise KeyError(f"unknown job template {name!r}; known: {', '.join(TEMPLATES)}")
    return resources.files(__package__).joinpath(name).read_text()

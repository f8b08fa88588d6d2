"""Prompts live in versioned jinja2 files, one per agent task: airlab/prompts/<agent>/<task>.j2.

A file defines a `system` and a `user` block and starts with `{# version: N #}`; the version is recorded
with every exchange, so an audit shows which wording an agent was given."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import jinja2

_VERSION = re.compile(r"\{#\s*version:\s*([\w.-]+)\s*#\}")
_environment = jinja2.Environment(
    loader=jinja2.PackageLoader("airlab", "prompts"),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
    autoescape=False,  # prompts are plain text for a model, not HTML
)


@dataclass
class Prompt:
    name: str
    version: str
    system: str
    user: str

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]


def render(name: str, **context: Any) -> Prompt:
    """Render prompts/<name>.j2 (e.g. "idea/propose") with `context`; a missing variable is an error."""
    template = _environment.get_template(f"{name}.j2")
    source = _environment.loader.get_source(_environment, f"{name}.j2")[0]  # type: ignore[union-attr]
    match = _VERSION.search(source)
    if not match:
        raise ValueError(f"prompt {name} has no '{{# version: N #}}' header")
    blocks = {}
    for block in ("system", "user"):
        if block not in template.blocks:
            raise ValueError(f"prompt {name} has no {block} block")
        blocks[block] = "".join(template.blocks[block](template.new_context(context))).strip()
    return Prompt(name, match.group(1), blocks["system"], blocks["user"])

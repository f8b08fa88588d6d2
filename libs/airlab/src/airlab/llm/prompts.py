"""Prompts live in versioned jinja2 files, one per agent task: airlab/prompts/<agent>/<task>.j2.

A file defines a `system` and a `user` block and starts with `{# version: N #}`; the version is recorded
with every exchange, so an audit shows which wording an agent was given. An optional `examples` block
holds worked examples as earlier turns of the chat (small models follow a shown exchange far better than
a rule): turns begin with a line `--- user ---` or `--- assistant ---`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
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


TURN = re.compile(r"^--- (user|assistant) ---$", flags=re.MULTILINE)


@dataclass
class Prompt:
    name: str
    version: str
    system: str
    user: str
    # (role, content) turns between the system message and the user's.
    examples: list[tuple[str, str]] = field(default_factory=list)

    def messages(self) -> list[dict[str, str]]:
        shown = [{"role": role, "content": content} for role, content in self.examples]
        return [{"role": "system", "content": self.system}, *shown, {"role": "user", "content": self.user}]


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
    examples: list[tuple[str, str]] = []
    if "examples" in template.blocks:
        text = "".join(template.blocks["examples"](template.new_context(context)))
        parts = TURN.split(text)[1:]  # [role, content, role, content, ...]
        examples = [(role, content.strip()) for role, content in zip(parts[::2], parts[1::2], strict=True)]
    return Prompt(name, match.group(1), blocks["system"], blocks["user"], examples)

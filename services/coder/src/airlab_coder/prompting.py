"""The coder's requests to its LLM: the first draft, a repair with the problems, an improve step's request
with the best code and its results, and a missing class or forward() asked for alone."""

from __future__ import annotations

import asyncio

from airlab import domain, experiments
from airlab.blobs import ArtifactStore
from airlab.llm.client import LLMClient
from airlab.llm.prompts import Prompt, render
from airlab_coder.checking import class_named, code_block
from airlab_coder.network_parts import classes_without_forward, missing_classes, with_method
from airlab_coder.tasks import CodeTask
from airlab_coder.templates import (
    BEGIN,
    END,
    INPUT_SHAPES,
    MODULES,
    OUTPUTS,
    SKLEARN,
    NetworkExamples,
    rules_for,
)

# A repair's second try when the first gave the same code back.
REPEAT_TEMPERATURE = 0.8


class Prompter:
    """Asks the coder's LLM for a task's code: what to ask (implement, repair, improve, a missing part) and
    the first code block of each reply."""

    def __init__(
        self, llm: LLMClient | None, artifacts: ArtifactStore, network_examples: NetworkExamples
    ) -> None:
        self.llm = llm
        self.artifacts = artifacts
        self.network_examples = network_examples

    async def improve_prompt(self, task: CodeTask) -> Prompt:
        """The improve step's first request: the best code's marked region and its results."""
        assert task.idea is not None
        rules, config = rules_for(task.request.job_config), task.request.job_config
        source = (
            await asyncio.to_thread(self.artifacts.get, task.request.base_code_ref + experiments.CODE_FILE)
        ).decode()
        start, end = source.index(BEGIN) + len(BEGIN), source.index(END)
        imports = (
            f"The script already imports numpy as np and these scikit-learn modules: {MODULES}."
            if rules is SKLEARN
            else "The script already imports numpy as np, torch, `from torch import nn` and `from torch.nn "
            "import functional`, and defines conv_block, MLP, CNN and UNet."
        )
        return render(
            "coder/improve",
            signature=f"def build_model({', '.join(rules.args)})",
            returns=rules.returns,
            metric=config.metric,
            maximize=domain.maximize(config.metric) if config.metric in domain.METRICS else True,
            param_names=", ".join(task.idea.search_space) or "(none)",
            imports=imports,
            title=task.idea.title,
            code=source[start:end].strip(),
            results=list(task.request.base_results) or ["(no results recorded)"],
        )

    async def define_missing(self, task: CodeTask, draft: str) -> tuple[str, list[str]]:
        """A network draft that calls a class it never wrote: ask for that class alone (the smallest
        request), its constructor's arguments given. The draft with what was written, and notes."""
        template = domain.template_of(task.request.job_config.template)
        if task.idea is None or self.llm is None or template != "pytorch":
            return draft, []
        notes = []
        shape, poolings = INPUT_SHAPES.get(task.request.job_config.dataset, ((), 0))
        for missing in missing_classes(draft)[:2]:
            prompt = render(
                "coder/define_class",
                output=OUTPUTS.get(task.request.job_config.task, ""),
                input_shape=shape,
                poolings=poolings,
                title=task.idea.title,
                change=task.idea.change,
                code=draft.strip(),
                class_name=missing.name,
                arguments=", ".join(missing.arguments),
            )
            written = class_named(await self.ask(task, prompt, f"class {missing.name}"), missing.name)
            if written:
                draft = f"{draft.rstrip()}\n\n\n{written}\n"
                notes.append(f"class {missing.name} (used by build_model) written by the LLM on request")
        for name in classes_without_forward(draft)[:2]:
            prompt = render(
                "coder/define_forward",
                output=OUTPUTS.get(task.request.job_config.task, ""),
                code=class_named(draft, name),
                class_name=name,
            )
            completed = with_method(draft, name, await self.ask(task, prompt, f"forward of {name}"))
            if completed != draft:
                draft = completed
                notes.append(f"forward() of {name}, which had none, written by the LLM on request")
        return draft, notes

    async def draft(self, task: CodeTask, previous: str, problems: str) -> str:
        assert self.llm is not None and task.idea is not None
        idea = task.idea
        space = idea.search_space
        rules, config = rules_for(task.request.job_config), task.request.job_config
        output = OUTPUTS.get(config.task, "")
        shape, poolings = INPUT_SHAPES.get(config.dataset, ((), 0))
        if task.request.base_code_ref and not (previous or problems):
            prompt = await self.improve_prompt(task)
        elif previous or problems:
            prompt = render(
                rules.repair_prompt,
                output=output,
                input_shape=shape,
                poolings=poolings,
                modules=MODULES,
                param_names=", ".join(space) or "(none)",
                title=idea.title,
                change=idea.change,
                code=previous or "(none)",
                problems=problems[-3000:],
            )
        else:
            prompt = render(
                rules.implement_prompt,
                output=output,
                input_shape=shape,
                poolings=poolings,
                modules=MODULES,
                task=config.task,
                dataset=config.dataset,
                metric=config.metric,
                title=idea.title,
                change=idea.change,
                params=space,
                network_examples=self.network_examples.value,
            )
        # Plain text, not JSON: small models write code far more reliably in a code block than escaped
        # inside a JSON string.
        draft = await self.ask(task, prompt, f"code {task.request.name}")
        if previous and draft.strip() == previous.strip():
            # A repair that gives the same code back changes nothing: ask once more, less predictably.
            again = f"code {task.request.name} (again: the repair was unchanged)"
            draft = await self.ask(task, prompt, again, temperature=REPEAT_TEMPERATURE)
        return draft

    async def ask(
        self, task: CodeTask, prompt: Prompt, purpose: str, temperature: float | None = None
    ) -> str:
        """One request to the coder's LLM for the task; the first code block of its reply."""
        assert self.llm is not None
        reply = await self.llm.complete(
            "coder",
            prompt,
            research_id=task.research_id,
            purpose=purpose,
            budget=task.budget,
            temperature=temperature,
        )
        return code_block(reply.text)

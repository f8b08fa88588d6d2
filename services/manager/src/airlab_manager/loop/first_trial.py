"""Where an idea's search starts: its first trial's point, before TPE has anything to go on."""

from __future__ import annotations

from airlab import experiments
from airlab.v1 import loop_pb2
from airlab_manager.loop.step import FINISHED, Step, experiments_of


def point(step: Step, idea: loop_pb2.LoopIdea) -> dict[str, experiments.Param]:
    """The first trial's parameters: a feature idea's warm start when asked for and its family has run,
    otherwise the middle of each range (a portfolio network's epochs at the top)."""
    start = warm_start(step, idea)
    return start if start is not None else default_point(step, idea)


def default_point(step: Step, idea: loop_pb2.LoopIdea) -> dict[str, experiments.Param]:
    """An idea's first search trial: the middle of each range, but a portfolio network's epochs at the top
    of their range (`Strategy.full_epochs_first`), said in its notes. Only the portfolio's: its ranges are
    the lab's own, bounded so that a full run stays short; an LLM idea's epochs may reach far."""
    space = idea.idea.search_space
    params = experiments.default_params(space)
    epochs = space.get("epochs")
    if epochs is None or idea.origin != loop_pb2.IDEA_ORIGIN_PORTFOLIO or not step.strategy.full_epochs_first:
        return params
    params["epochs"] = round(epochs.high) if epochs.integer else epochs.high
    idea.idea.notes.append(
        f"its first trial trains for {params['epochs']:g} epochs, the top of its range (the middle of the "
        "others)"
    )
    return params


def warm_start(step: Step, idea: loop_pb2.LoopIdea) -> dict[str, experiments.Param] | None:
    """A feature idea's first trial: the best point found so far for its model family (by validation, a
    trial that trained to the end, over the same hyperparameters), so that trial measures what its
    features add to the model the research already tuned; said in its notes. None for any other idea, or
    when its family has not run."""
    if not idea.idea.steps or not idea.family or not step.strategy.warm_start:
        return None
    space = set(idea.idea.search_space)
    ran = [
        (other, x)
        for other in step.loop.ideas
        if other.family == idea.family and other.idea.id != idea.idea.id
        for x in experiments_of(step.loop, other.trials)
        if x.state == FINISHED and x.HasField("validation") and not x.stopped_at_epoch
        and set(x.params) == space
    ]  # fmt: skip
    if not ran:
        return None
    pick = max if step.maximize else min
    source, best = pick(ran, key=lambda found: found[1].validation)
    idea.idea.notes.append(
        f"its first trial starts from the best point found so far for its model, in "
        f"{source.idea.title!r} ({best.validation:.4f} on validation)"
    )
    return experiments.plain_params(best.params)

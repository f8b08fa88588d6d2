"""How a research spends its experiment budget: the research loop's policy knobs, in one typed setting
with named presets (`research.strategy` and `research.preset` in the settings).

The default preset is what `make bench-research` measured best; every other preset is one of that
bench's ablations, each turning one part of the policy off, so that part's worth can be measured side by
side with the default."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Strategy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Share of the experiments after the baseline that the portfolio (strong model families searched with
    # TPE, no LLM involved) may take in the first round; 0 turns the portfolio off. At least one family
    # runs when it is on.
    portfolio_share: float = Field(default=0.5, ge=0, le=1)
    # Search trials of each portfolio family: few, to try more families; exploit steps search the best
    # one further.
    portfolio_trials: int = Field(default=2, ge=1, le=200)
    ideas_per_round: int = Field(default=3, ge=1, le=10)
    # Hyperparameter-search trials per idea (TPE), within what the experiment budget leaves.
    trials_per_idea: int = Field(default=4, ge=1, le=200)
    # Search trials of one idea in flight at once (asynchronous TPE, constant liar): the runner's slots.
    parallel_trials: int = Field(default=2, ge=1, le=64)
    # After this many rounds of ideas in a row without a new significant gain, the best idea gets more
    # search instead of new ideas (an exploit step) until the budget is spent, for a goal that uses its
    # budget ("the best ... you can"); a goal to beat the baseline stops for no progress once it has used
    # `min_budget_share` of its experiments. Either stops when there is nothing to exploit.
    patience_rounds: int = Field(default=2, ge=1, le=100)
    min_budget_share: float = Field(default=0.8, ge=0, le=1)
    # Exploit steps: more search on the best idea so far.
    exploit: bool = True
    # Improve steps take turns with exploit steps: the LLM changes the best idea's code, told its results.
    improve: bool = True
    # Ask for the next queued idea's code while the current idea searches, so the runner's slots do not
    # wait for the coder (and the LLM) between ideas.
    code_ahead: bool = True
    # Multi-fidelity: a search trial that trains in epochs stops at a third or two thirds of them when it
    # is behind the median of the research's runs there (the median stopping rule).
    early_stopping: bool = True
    # An idea's best point runs over the other seeds only when it is ahead of the best idea so far on
    # validation (the seeds are for candidates to be the best); True: every idea that searched is evaluated.
    evaluate_every_idea: bool = False
    # An LLM idea (or improve step) with more trials than the race's first two searches on only when one of
    # those two is ahead of the best idea so far on validation; False: every idea uses its trial budget.
    race_ideas: bool = True
    # The bar a new point passes on validation to be "ahead of the best": the lower of the best idea's best
    # search trial and the mean validation of its runs over the seeds. The best trial alone (False) is
    # the maximum of several draws on one seed, often a lucky one (the winner's curse, large where training
    # is noisy): `make bench-research` on shapes, 3 repeats, 0.7272 mean Dice with the mean against 0.6616.
    bar_over_seeds: bool = True
    # A feature idea of the LLM whose turn comes while another feature idea is the best builds on it: its
    # steps are added to the best's (CAAFE keeps the features that helped), so each idea measures what it
    # adds to the research's best features. False: each feature idea runs its own steps alone.
    build_on_best: bool = True
    # While the loop waits for the idea agent's ideas, the best idea searches on (an exploit step), when
    # the budget left after it still holds a whole idea: the slots work while the LLM does. False: the
    # slots wait for the ideas.
    search_while_waiting: bool = True
    # A feature idea's first search trial is the best point found so far for its model family (the
    # portfolio's, say), so it measures what its features add to the model the research already tuned.
    # False (the default: `make bench-research` on loans measured no gain, 0.8061 against 0.8088 over 3
    # repeats): it starts at the middle of each range, as any other idea.
    warm_start: bool = False
    # Two ideas in flight: when the idea searching cannot fill the runner's slots (its last trials, its
    # runs over the seeds, the reviewer's verdict), the next queued idea whose code is ready starts in the
    # free slots, when the budget less what the first one was given holds its search. False: one at a time,
    # the next one starting only once the current one ended.
    overlap_ideas: bool = True
    # A portfolio family that trains in epochs takes the top of its epochs range in its first search trial
    # (the middle of its other ranges): with a budget counted in experiments, a fully trained network is
    # the strong first point, and the median stopping rule cuts a later trial that falls behind. On shapes
    # the U-Net's first point (width 16, learning rate 0.0032) scored 0.6073 +- 0.1114 Dice over 3 seeds at
    # the range's middle of 13 epochs, 0.7863 +- 0.0063 at 30. False: the middle of every range.
    full_epochs_first: bool = True
    # The idea agent is asked for ideas. False (with improve off: the llm-off preset): the portfolio and
    # more search on its best only, no LLM at all, to measure what the LLM's ideas add.
    llm_ideas: bool = True
    # With llm_ideas off, the first round's ideas still come from the idea agent, without an LLM: one
    # feature idea of the steps the data profile measured most telling (the idea prompt's example), run
    # as an LLM's feature idea is (the profile-only preset): what the measurement alone gives in the lab,
    # so that the full lab against it shows what the LLM's choice adds.
    profile_ideas: bool = False


# Each preset is the default with these knobs changed.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "floor-off": {"portfolio_share": 0.0},
    "exploit-off": {"exploit": False},
    "improve-off": {"improve": False},
    "code-ahead-off": {"code_ahead": False},
    "serial": {"parallel_trials": 1},
    "stopping-off": {"early_stopping": False},
    "evaluate-all": {"evaluate_every_idea": True},
    "race-off": {"race_ideas": False},
    "bar-trial": {"bar_over_seeds": False},
    "build-off": {"build_on_best": False},
    "warm-start": {"warm_start": True},
    "wait-off": {"search_while_waiting": False},
    "one-at-a-time": {"overlap_ideas": False},
    "epochs-middle": {"full_epochs_first": False},
    "llm-off": {"llm_ideas": False, "improve": False},
    "profile-only": {"llm_ideas": False, "improve": False, "profile_ideas": True},
}
KNOBS = tuple(Strategy.model_fields)


def preset(name: str, **changes: Any) -> Strategy:
    """The named preset, with `changes` on top. ValueError naming the presets for an unknown name."""
    if name not in PRESETS:
        raise ValueError(f"no strategy preset {name!r}: one of {', '.join(PRESETS)}")
    return Strategy.model_validate({**PRESETS[name], **changes})

import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ResearchState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESEARCH_STATE_UNSPECIFIED: _ClassVar[ResearchState]
    RESEARCH_STATE_CREATED: _ClassVar[ResearchState]
    RESEARCH_STATE_NEEDS_HUMAN: _ClassVar[ResearchState]
    RESEARCH_STATE_AWAITING_APPROVAL: _ClassVar[ResearchState]
    RESEARCH_STATE_PLANNED: _ClassVar[ResearchState]
    RESEARCH_STATE_RUNNING: _ClassVar[ResearchState]
    RESEARCH_STATE_COMPLETED: _ClassVar[ResearchState]
    RESEARCH_STATE_FAILED: _ClassVar[ResearchState]
    RESEARCH_STATE_CANCELLED: _ClassVar[ResearchState]

class MetricDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_DIRECTION_UNSPECIFIED: _ClassVar[MetricDirection]
    METRIC_DIRECTION_MAXIMIZE: _ClassVar[MetricDirection]
    METRIC_DIRECTION_MINIMIZE: _ClassVar[MetricDirection]

class StopRule(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STOP_RULE_UNSPECIFIED: _ClassVar[StopRule]
    STOP_RULE_BEAT_BASELINE: _ClassVar[StopRule]
    STOP_RULE_USE_BUDGET: _ClassVar[StopRule]

class HumanGates(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HUMAN_GATES_UNSPECIFIED: _ClassVar[HumanGates]
    HUMAN_GATES_OFF: _ClassVar[HumanGates]
    HUMAN_GATES_PLAN: _ClassVar[HumanGates]
    HUMAN_GATES_EVERY_EXPERIMENT: _ClassVar[HumanGates]
RESEARCH_STATE_UNSPECIFIED: ResearchState
RESEARCH_STATE_CREATED: ResearchState
RESEARCH_STATE_NEEDS_HUMAN: ResearchState
RESEARCH_STATE_AWAITING_APPROVAL: ResearchState
RESEARCH_STATE_PLANNED: ResearchState
RESEARCH_STATE_RUNNING: ResearchState
RESEARCH_STATE_COMPLETED: ResearchState
RESEARCH_STATE_FAILED: ResearchState
RESEARCH_STATE_CANCELLED: ResearchState
METRIC_DIRECTION_UNSPECIFIED: MetricDirection
METRIC_DIRECTION_MAXIMIZE: MetricDirection
METRIC_DIRECTION_MINIMIZE: MetricDirection
STOP_RULE_UNSPECIFIED: StopRule
STOP_RULE_BEAT_BASELINE: StopRule
STOP_RULE_USE_BUDGET: StopRule
HUMAN_GATES_UNSPECIFIED: HumanGates
HUMAN_GATES_OFF: HumanGates
HUMAN_GATES_PLAN: HumanGates
HUMAN_GATES_EVERY_EXPERIMENT: HumanGates

class Budget(_message.Message):
    __slots__ = ("max_experiments", "max_wall_seconds", "max_tokens", "max_cost_usd")
    MAX_EXPERIMENTS_FIELD_NUMBER: _ClassVar[int]
    MAX_WALL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_COST_USD_FIELD_NUMBER: _ClassVar[int]
    max_experiments: int
    max_wall_seconds: int
    max_tokens: int
    max_cost_usd: float
    def __init__(self, max_experiments: _Optional[int] = ..., max_wall_seconds: _Optional[int] = ..., max_tokens: _Optional[int] = ..., max_cost_usd: _Optional[float] = ...) -> None: ...

class Plan(_message.Message):
    __slots__ = ("dataset", "task", "metric", "direction", "baseline", "seeds", "test_fraction", "budget", "reasons", "dataset_source", "dataset_target", "until", "template", "gpus")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    TEST_FRACTION_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    DATASET_SOURCE_FIELD_NUMBER: _ClassVar[int]
    DATASET_TARGET_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    task: str
    metric: str
    direction: MetricDirection
    baseline: str
    seeds: _containers.RepeatedScalarFieldContainer[int]
    test_fraction: float
    budget: Budget
    reasons: _containers.RepeatedScalarFieldContainer[str]
    dataset_source: str
    dataset_target: str
    until: StopRule
    template: str
    gpus: int
    def __init__(self, dataset: _Optional[str] = ..., task: _Optional[str] = ..., metric: _Optional[str] = ..., direction: _Optional[_Union[MetricDirection, str]] = ..., baseline: _Optional[str] = ..., seeds: _Optional[_Iterable[int]] = ..., test_fraction: _Optional[float] = ..., budget: _Optional[_Union[Budget, _Mapping]] = ..., reasons: _Optional[_Iterable[str]] = ..., dataset_source: _Optional[str] = ..., dataset_target: _Optional[str] = ..., until: _Optional[_Union[StopRule, str]] = ..., template: _Optional[str] = ..., gpus: _Optional[int] = ...) -> None: ...

class UserDataset(_message.Message):
    __slots__ = ("source", "target", "task")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    source: str
    target: str
    task: str
    def __init__(self, source: _Optional[str] = ..., target: _Optional[str] = ..., task: _Optional[str] = ...) -> None: ...

class Question(_message.Message):
    __slots__ = ("key", "text", "options")
    KEY_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    key: str
    text: str
    options: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, key: _Optional[str] = ..., text: _Optional[str] = ..., options: _Optional[_Iterable[str]] = ...) -> None: ...

class Research(_message.Message):
    __slots__ = ("id", "goal", "state", "state_reason", "plan", "questions", "dataset_hint", "metric_hint", "requested_budget", "gates", "allow_defaults", "created_at", "updated_at", "revision", "baseline_hint", "progress", "report_markdown_key", "report_html_key", "awaiting", "awaiting_idea_id", "user_dataset", "until_hint", "template_hint", "owner")
    ID_FIELD_NUMBER: _ClassVar[int]
    GOAL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    DATASET_HINT_FIELD_NUMBER: _ClassVar[int]
    METRIC_HINT_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BUDGET_FIELD_NUMBER: _ClassVar[int]
    GATES_FIELD_NUMBER: _ClassVar[int]
    ALLOW_DEFAULTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    BASELINE_HINT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    REPORT_MARKDOWN_KEY_FIELD_NUMBER: _ClassVar[int]
    REPORT_HTML_KEY_FIELD_NUMBER: _ClassVar[int]
    AWAITING_FIELD_NUMBER: _ClassVar[int]
    AWAITING_IDEA_ID_FIELD_NUMBER: _ClassVar[int]
    USER_DATASET_FIELD_NUMBER: _ClassVar[int]
    UNTIL_HINT_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_HINT_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    id: str
    goal: str
    state: ResearchState
    state_reason: str
    plan: Plan
    questions: _containers.RepeatedCompositeFieldContainer[Question]
    dataset_hint: str
    metric_hint: str
    requested_budget: Budget
    gates: HumanGates
    allow_defaults: bool
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    revision: int
    baseline_hint: str
    progress: ResearchProgress
    report_markdown_key: str
    report_html_key: str
    awaiting: str
    awaiting_idea_id: str
    user_dataset: UserDataset
    until_hint: StopRule
    template_hint: str
    owner: str
    def __init__(self, id: _Optional[str] = ..., goal: _Optional[str] = ..., state: _Optional[_Union[ResearchState, str]] = ..., state_reason: _Optional[str] = ..., plan: _Optional[_Union[Plan, _Mapping]] = ..., questions: _Optional[_Iterable[_Union[Question, _Mapping]]] = ..., dataset_hint: _Optional[str] = ..., metric_hint: _Optional[str] = ..., requested_budget: _Optional[_Union[Budget, _Mapping]] = ..., gates: _Optional[_Union[HumanGates, str]] = ..., allow_defaults: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revision: _Optional[int] = ..., baseline_hint: _Optional[str] = ..., progress: _Optional[_Union[ResearchProgress, _Mapping]] = ..., report_markdown_key: _Optional[str] = ..., report_html_key: _Optional[str] = ..., awaiting: _Optional[str] = ..., awaiting_idea_id: _Optional[str] = ..., user_dataset: _Optional[_Union[UserDataset, _Mapping]] = ..., until_hint: _Optional[_Union[StopRule, str]] = ..., template_hint: _Optional[str] = ..., owner: _Optional[str] = ...) -> None: ...

class ResearchProgress(_message.Message):
    __slots__ = ("round", "experiments_requested", "experiments_finished", "experiments_failed", "ideas_proposed", "ideas_approved", "has_baseline", "baseline_mean", "baseline_std", "has_best", "best_mean", "best_std", "best_idea_id", "best_title", "best_significant", "tokens", "cost_usd", "phase", "llm_seconds", "experiment_seconds", "waiting_seconds", "best_p_value", "best_adjusted_p", "best_suggestive", "family_size", "chance", "baseline_beats_chance")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENTS_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENTS_FINISHED_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENTS_FAILED_FIELD_NUMBER: _ClassVar[int]
    IDEAS_PROPOSED_FIELD_NUMBER: _ClassVar[int]
    IDEAS_APPROVED_FIELD_NUMBER: _ClassVar[int]
    HAS_BASELINE_FIELD_NUMBER: _ClassVar[int]
    BASELINE_MEAN_FIELD_NUMBER: _ClassVar[int]
    BASELINE_STD_FIELD_NUMBER: _ClassVar[int]
    HAS_BEST_FIELD_NUMBER: _ClassVar[int]
    BEST_MEAN_FIELD_NUMBER: _ClassVar[int]
    BEST_STD_FIELD_NUMBER: _ClassVar[int]
    BEST_IDEA_ID_FIELD_NUMBER: _ClassVar[int]
    BEST_TITLE_FIELD_NUMBER: _ClassVar[int]
    BEST_SIGNIFICANT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    LLM_SECONDS_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WAITING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BEST_P_VALUE_FIELD_NUMBER: _ClassVar[int]
    BEST_ADJUSTED_P_FIELD_NUMBER: _ClassVar[int]
    BEST_SUGGESTIVE_FIELD_NUMBER: _ClassVar[int]
    FAMILY_SIZE_FIELD_NUMBER: _ClassVar[int]
    CHANCE_FIELD_NUMBER: _ClassVar[int]
    BASELINE_BEATS_CHANCE_FIELD_NUMBER: _ClassVar[int]
    round: int
    experiments_requested: int
    experiments_finished: int
    experiments_failed: int
    ideas_proposed: int
    ideas_approved: int
    has_baseline: bool
    baseline_mean: float
    baseline_std: float
    has_best: bool
    best_mean: float
    best_std: float
    best_idea_id: str
    best_title: str
    best_significant: bool
    tokens: int
    cost_usd: float
    phase: str
    llm_seconds: float
    experiment_seconds: float
    waiting_seconds: float
    best_p_value: float
    best_adjusted_p: float
    best_suggestive: bool
    family_size: int
    chance: float
    baseline_beats_chance: bool
    def __init__(self, round: _Optional[int] = ..., experiments_requested: _Optional[int] = ..., experiments_finished: _Optional[int] = ..., experiments_failed: _Optional[int] = ..., ideas_proposed: _Optional[int] = ..., ideas_approved: _Optional[int] = ..., has_baseline: _Optional[bool] = ..., baseline_mean: _Optional[float] = ..., baseline_std: _Optional[float] = ..., has_best: _Optional[bool] = ..., best_mean: _Optional[float] = ..., best_std: _Optional[float] = ..., best_idea_id: _Optional[str] = ..., best_title: _Optional[str] = ..., best_significant: _Optional[bool] = ..., tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ..., phase: _Optional[str] = ..., llm_seconds: _Optional[float] = ..., experiment_seconds: _Optional[float] = ..., waiting_seconds: _Optional[float] = ..., best_p_value: _Optional[float] = ..., best_adjusted_p: _Optional[float] = ..., best_suggestive: _Optional[bool] = ..., family_size: _Optional[int] = ..., chance: _Optional[float] = ..., baseline_beats_chance: _Optional[bool] = ...) -> None: ...

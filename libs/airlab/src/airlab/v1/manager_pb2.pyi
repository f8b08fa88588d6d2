from airlab.v1 import idea_pb2 as _idea_pb2
from airlab.v1 import research_pb2 as _research_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DecisionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_KIND_UNSPECIFIED: _ClassVar[DecisionKind]
    DECISION_KIND_CONTINUE: _ClassVar[DecisionKind]
    DECISION_KIND_STOP: _ClassVar[DecisionKind]
    DECISION_KIND_ASK_HUMAN: _ClassVar[DecisionKind]
DECISION_KIND_UNSPECIFIED: DecisionKind
DECISION_KIND_CONTINUE: DecisionKind
DECISION_KIND_STOP: DecisionKind
DECISION_KIND_ASK_HUMAN: DecisionKind

class PlanResearchRequest(_message.Message):
    __slots__ = ("goal", "dataset", "metric", "budget", "allow_defaults", "baseline", "user_dataset", "until", "template")
    GOAL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    ALLOW_DEFAULTS_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    USER_DATASET_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    goal: str
    dataset: str
    metric: str
    budget: _research_pb2.Budget
    allow_defaults: bool
    baseline: str
    user_dataset: _research_pb2.UserDataset
    until: _research_pb2.StopRule
    template: str
    def __init__(self, goal: _Optional[str] = ..., dataset: _Optional[str] = ..., metric: _Optional[str] = ..., budget: _Optional[_Union[_research_pb2.Budget, _Mapping]] = ..., allow_defaults: _Optional[bool] = ..., baseline: _Optional[str] = ..., user_dataset: _Optional[_Union[_research_pb2.UserDataset, _Mapping]] = ..., until: _Optional[_Union[_research_pb2.StopRule, str]] = ..., template: _Optional[str] = ...) -> None: ...

class PlanResearchResponse(_message.Message):
    __slots__ = ("plan", "questions")
    PLAN_FIELD_NUMBER: _ClassVar[int]
    QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    plan: _research_pb2.Plan
    questions: _containers.RepeatedCompositeFieldContainer[_research_pb2.Question]
    def __init__(self, plan: _Optional[_Union[_research_pb2.Plan, _Mapping]] = ..., questions: _Optional[_Iterable[_Union[_research_pb2.Question, _Mapping]]] = ...) -> None: ...

class ReviewIdeaRequest(_message.Message):
    __slots__ = ("research_id", "idea")
    RESEARCH_ID_FIELD_NUMBER: _ClassVar[int]
    IDEA_FIELD_NUMBER: _ClassVar[int]
    research_id: str
    idea: _idea_pb2.Idea
    def __init__(self, research_id: _Optional[str] = ..., idea: _Optional[_Union[_idea_pb2.Idea, _Mapping]] = ...) -> None: ...

class IdeaReview(_message.Message):
    __slots__ = ("idea_id", "approved", "clarity", "novelty", "feasibility", "alignment", "reasons", "title", "literature")
    IDEA_ID_FIELD_NUMBER: _ClassVar[int]
    APPROVED_FIELD_NUMBER: _ClassVar[int]
    CLARITY_FIELD_NUMBER: _ClassVar[int]
    NOVELTY_FIELD_NUMBER: _ClassVar[int]
    FEASIBILITY_FIELD_NUMBER: _ClassVar[int]
    ALIGNMENT_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    LITERATURE_FIELD_NUMBER: _ClassVar[int]
    idea_id: str
    approved: bool
    clarity: float
    novelty: float
    feasibility: float
    alignment: float
    reasons: _containers.RepeatedScalarFieldContainer[str]
    title: str
    literature: str
    def __init__(self, idea_id: _Optional[str] = ..., approved: _Optional[bool] = ..., clarity: _Optional[float] = ..., novelty: _Optional[float] = ..., feasibility: _Optional[float] = ..., alignment: _Optional[float] = ..., reasons: _Optional[_Iterable[str]] = ..., title: _Optional[str] = ..., literature: _Optional[str] = ...) -> None: ...

class DecideRequest(_message.Message):
    __slots__ = ("research_id",)
    RESEARCH_ID_FIELD_NUMBER: _ClassVar[int]
    research_id: str
    def __init__(self, research_id: _Optional[str] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("research_id", "kind", "reason")
    RESEARCH_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    research_id: str
    kind: DecisionKind
    reason: str
    def __init__(self, research_id: _Optional[str] = ..., kind: _Optional[_Union[DecisionKind, str]] = ..., reason: _Optional[str] = ...) -> None: ...

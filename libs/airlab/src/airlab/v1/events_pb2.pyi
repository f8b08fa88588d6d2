import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from airlab.v1 import idea_pb2 as _idea_pb2
from airlab.v1 import loop_pb2 as _loop_pb2
from airlab.v1 import manager_pb2 as _manager_pb2
from airlab.v1 import research_pb2 as _research_pb2
from airlab.v1 import runner_pb2 as _runner_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Event(_message.Message):
    __slots__ = ("id", "type", "research_id", "time", "correlation_id", "sequence", "source", "research_created", "research_planned", "research_needs_human", "research_awaiting_approval", "research_approved", "research_rejected", "research_answered", "research_cancelled", "research_decided", "research_completed", "research_failed", "idea_requested", "idea_proposed", "idea_reviewed", "code_requested", "code_ready", "code_failed", "experiment_requested", "experiment_queued", "experiment_started", "experiment_progress", "experiment_finished", "experiment_failed", "experiment_cancelled", "evaluation_requested", "evaluation_completed", "report_requested", "report_written", "dead_letter", "bus_undecodable")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    RESEARCH_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RESEARCH_CREATED_FIELD_NUMBER: _ClassVar[int]
    RESEARCH_PLANNED_FIELD_NUMBER: _ClassVar[int]
    RESEARCH_NEEDS_HUMAN_FIELD_NUMBER: _ClassVar[int]
    RESEARCH_AWAITING_APPROVAL_FIELD_NUMBER: _ClassVar[int]
    RESEARCH_APPROVED_FIELD_NUMBER: _ClassVar[int]
    RESEARCH_REJECTED_FIELD_NUMBER: _ClassVar[int]
    RESEARCH_ANSWERED_FIELD_NUMBER: _ClassVar[int]
    RESEARCH_CANCELLED_FIELD_NUMBER: _ClassVar[int]
    RESEARCH_DECIDED_FIELD_NUMBER: _ClassVar[int]
    RESEARCH_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    RESEARCH_FAILED_FIELD_NUMBER: _ClassVar[int]
    IDEA_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    IDEA_PROPOSED_FIELD_NUMBER: _ClassVar[int]
    IDEA_REVIEWED_FIELD_NUMBER: _ClassVar[int]
    CODE_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    CODE_READY_FIELD_NUMBER: _ClassVar[int]
    CODE_FAILED_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_QUEUED_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_STARTED_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FINISHED_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FAILED_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_CANCELLED_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    REPORT_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    REPORT_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_FIELD_NUMBER: _ClassVar[int]
    BUS_UNDECODABLE_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    research_id: str
    time: _timestamp_pb2.Timestamp
    correlation_id: str
    sequence: int
    source: str
    research_created: ResearchCreated
    research_planned: ResearchPlanned
    research_needs_human: ResearchNeedsHuman
    research_awaiting_approval: ResearchAwaitingApproval
    research_approved: PersonDecision
    research_rejected: PersonDecision
    research_answered: ResearchAnswered
    research_cancelled: ResearchCancelled
    research_decided: _loop_pb2.LoopDecision
    research_completed: ResearchEnded
    research_failed: ResearchEnded
    idea_requested: IdeaRequested
    idea_proposed: IdeaProposed
    idea_reviewed: IdeaReviewed
    code_requested: CodeRequested
    code_ready: CodeOutcome
    code_failed: CodeOutcome
    experiment_requested: ExperimentRequested
    experiment_queued: ExperimentQueued
    experiment_started: ExperimentStarted
    experiment_progress: ExperimentProgress
    experiment_finished: ExperimentOutcome
    experiment_failed: ExperimentOutcome
    experiment_cancelled: ExperimentOutcome
    evaluation_requested: EvaluationRequested
    evaluation_completed: EvaluationCompleted
    report_requested: ReportRequested
    report_written: ReportWritten
    dead_letter: DeadLetter
    bus_undecodable: Undecodable
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., research_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., correlation_id: _Optional[str] = ..., sequence: _Optional[int] = ..., source: _Optional[str] = ..., research_created: _Optional[_Union[ResearchCreated, _Mapping]] = ..., research_planned: _Optional[_Union[ResearchPlanned, _Mapping]] = ..., research_needs_human: _Optional[_Union[ResearchNeedsHuman, _Mapping]] = ..., research_awaiting_approval: _Optional[_Union[ResearchAwaitingApproval, _Mapping]] = ..., research_approved: _Optional[_Union[PersonDecision, _Mapping]] = ..., research_rejected: _Optional[_Union[PersonDecision, _Mapping]] = ..., research_answered: _Optional[_Union[ResearchAnswered, _Mapping]] = ..., research_cancelled: _Optional[_Union[ResearchCancelled, _Mapping]] = ..., research_decided: _Optional[_Union[_loop_pb2.LoopDecision, _Mapping]] = ..., research_completed: _Optional[_Union[ResearchEnded, _Mapping]] = ..., research_failed: _Optional[_Union[ResearchEnded, _Mapping]] = ..., idea_requested: _Optional[_Union[IdeaRequested, _Mapping]] = ..., idea_proposed: _Optional[_Union[IdeaProposed, _Mapping]] = ..., idea_reviewed: _Optional[_Union[IdeaReviewed, _Mapping]] = ..., code_requested: _Optional[_Union[CodeRequested, _Mapping]] = ..., code_ready: _Optional[_Union[CodeOutcome, _Mapping]] = ..., code_failed: _Optional[_Union[CodeOutcome, _Mapping]] = ..., experiment_requested: _Optional[_Union[ExperimentRequested, _Mapping]] = ..., experiment_queued: _Optional[_Union[ExperimentQueued, _Mapping]] = ..., experiment_started: _Optional[_Union[ExperimentStarted, _Mapping]] = ..., experiment_progress: _Optional[_Union[ExperimentProgress, _Mapping]] = ..., experiment_finished: _Optional[_Union[ExperimentOutcome, _Mapping]] = ..., experiment_failed: _Optional[_Union[ExperimentOutcome, _Mapping]] = ..., experiment_cancelled: _Optional[_Union[ExperimentOutcome, _Mapping]] = ..., evaluation_requested: _Optional[_Union[EvaluationRequested, _Mapping]] = ..., evaluation_completed: _Optional[_Union[EvaluationCompleted, _Mapping]] = ..., report_requested: _Optional[_Union[ReportRequested, _Mapping]] = ..., report_written: _Optional[_Union[ReportWritten, _Mapping]] = ..., dead_letter: _Optional[_Union[DeadLetter, _Mapping]] = ..., bus_undecodable: _Optional[_Union[Undecodable, _Mapping]] = ...) -> None: ...

class ResearchCreated(_message.Message):
    __slots__ = ("goal",)
    GOAL_FIELD_NUMBER: _ClassVar[int]
    goal: str
    def __init__(self, goal: _Optional[str] = ...) -> None: ...

class ResearchPlanned(_message.Message):
    __slots__ = ("plan",)
    PLAN_FIELD_NUMBER: _ClassVar[int]
    plan: _research_pb2.Plan
    def __init__(self, plan: _Optional[_Union[_research_pb2.Plan, _Mapping]] = ...) -> None: ...

class ResearchNeedsHuman(_message.Message):
    __slots__ = ("questions",)
    QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    questions: _containers.RepeatedCompositeFieldContainer[_research_pb2.Question]
    def __init__(self, questions: _Optional[_Iterable[_Union[_research_pb2.Question, _Mapping]]] = ...) -> None: ...

class ResearchAwaitingApproval(_message.Message):
    __slots__ = ("subject", "plan", "idea_id", "title", "reason")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    IDEA_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    subject: str
    plan: _research_pb2.Plan
    idea_id: str
    title: str
    reason: str
    def __init__(self, subject: _Optional[str] = ..., plan: _Optional[_Union[_research_pb2.Plan, _Mapping]] = ..., idea_id: _Optional[str] = ..., title: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PersonDecision(_message.Message):
    __slots__ = ("subject", "idea_id", "comment")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    IDEA_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    subject: str
    idea_id: str
    comment: str
    def __init__(self, subject: _Optional[str] = ..., idea_id: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class ResearchAnswered(_message.Message):
    __slots__ = ("answers", "comment")
    class AnswersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    answers: _containers.ScalarMap[str, str]
    comment: str
    def __init__(self, answers: _Optional[_Mapping[str, str]] = ..., comment: _Optional[str] = ...) -> None: ...

class ResearchCancelled(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class ResearchEnded(_message.Message):
    __slots__ = ("reason", "report_markdown_key", "report_html_key", "best", "baseline")
    REASON_FIELD_NUMBER: _ClassVar[int]
    REPORT_MARKDOWN_KEY_FIELD_NUMBER: _ClassVar[int]
    REPORT_HTML_KEY_FIELD_NUMBER: _ClassVar[int]
    BEST_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    report_markdown_key: str
    report_html_key: str
    best: _loop_pb2.BestIdea
    baseline: _loop_pb2.BaselineResult
    def __init__(self, reason: _Optional[str] = ..., report_markdown_key: _Optional[str] = ..., report_html_key: _Optional[str] = ..., best: _Optional[_Union[_loop_pb2.BestIdea, _Mapping]] = ..., baseline: _Optional[_Union[_loop_pb2.BaselineResult, _Mapping]] = ...) -> None: ...

class IdeaRequested(_message.Message):
    __slots__ = ("round", "count", "tried", "results", "recalled", "profile_experiment", "research", "measured")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    TRIED_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    RECALLED_FIELD_NUMBER: _ClassVar[int]
    PROFILE_EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    RESEARCH_FIELD_NUMBER: _ClassVar[int]
    MEASURED_FIELD_NUMBER: _ClassVar[int]
    round: int
    count: int
    tried: _containers.RepeatedScalarFieldContainer[str]
    results: _containers.RepeatedScalarFieldContainer[str]
    recalled: _containers.RepeatedScalarFieldContainer[str]
    profile_experiment: str
    research: _research_pb2.Research
    measured: bool
    def __init__(self, round: _Optional[int] = ..., count: _Optional[int] = ..., tried: _Optional[_Iterable[str]] = ..., results: _Optional[_Iterable[str]] = ..., recalled: _Optional[_Iterable[str]] = ..., profile_experiment: _Optional[str] = ..., research: _Optional[_Union[_research_pb2.Research, _Mapping]] = ..., measured: _Optional[bool] = ...) -> None: ...

class IdeaProposed(_message.Message):
    __slots__ = ("round", "ideas", "error", "related_work", "related_work_status")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    IDEAS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RELATED_WORK_FIELD_NUMBER: _ClassVar[int]
    RELATED_WORK_STATUS_FIELD_NUMBER: _ClassVar[int]
    round: int
    ideas: _containers.RepeatedCompositeFieldContainer[_idea_pb2.Idea]
    error: str
    related_work: _containers.RepeatedCompositeFieldContainer[_idea_pb2.Paper]
    related_work_status: str
    def __init__(self, round: _Optional[int] = ..., ideas: _Optional[_Iterable[_Union[_idea_pb2.Idea, _Mapping]]] = ..., error: _Optional[str] = ..., related_work: _Optional[_Iterable[_Union[_idea_pb2.Paper, _Mapping]]] = ..., related_work_status: _Optional[str] = ...) -> None: ...

class IdeaReviewed(_message.Message):
    __slots__ = ("round", "reviews")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    REVIEWS_FIELD_NUMBER: _ClassVar[int]
    round: int
    reviews: _containers.RepeatedCompositeFieldContainer[_manager_pb2.IdeaReview]
    def __init__(self, round: _Optional[int] = ..., reviews: _Optional[_Iterable[_Union[_manager_pb2.IdeaReview, _Mapping]]] = ...) -> None: ...

class CodeRequested(_message.Message):
    __slots__ = ("name", "idea", "job_config", "mounts", "max_attempts", "budget", "family", "base_code_ref", "base_results")
    NAME_FIELD_NUMBER: _ClassVar[int]
    IDEA_FIELD_NUMBER: _ClassVar[int]
    JOB_CONFIG_FIELD_NUMBER: _ClassVar[int]
    MOUNTS_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    BASE_CODE_REF_FIELD_NUMBER: _ClassVar[int]
    BASE_RESULTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    idea: _idea_pb2.Idea
    job_config: _loop_pb2.JobConfig
    mounts: _containers.RepeatedCompositeFieldContainer[_runner_pb2.DatasetMount]
    max_attempts: int
    budget: _research_pb2.Budget
    family: str
    base_code_ref: str
    base_results: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., idea: _Optional[_Union[_idea_pb2.Idea, _Mapping]] = ..., job_config: _Optional[_Union[_loop_pb2.JobConfig, _Mapping]] = ..., mounts: _Optional[_Iterable[_Union[_runner_pb2.DatasetMount, _Mapping]]] = ..., max_attempts: _Optional[int] = ..., budget: _Optional[_Union[_research_pb2.Budget, _Mapping]] = ..., family: _Optional[str] = ..., base_code_ref: _Optional[str] = ..., base_results: _Optional[_Iterable[str]] = ...) -> None: ...

class CodeOutcome(_message.Message):
    __slots__ = ("name", "attempts", "problems", "code_ref", "entrypoint", "origin", "sha256", "repairs", "unsearched")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    CODE_REF_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    REPAIRS_FIELD_NUMBER: _ClassVar[int]
    UNSEARCHED_FIELD_NUMBER: _ClassVar[int]
    name: str
    attempts: int
    problems: _containers.RepeatedScalarFieldContainer[str]
    code_ref: str
    entrypoint: str
    origin: _loop_pb2.CodeOrigin
    sha256: str
    repairs: _containers.RepeatedScalarFieldContainer[str]
    unsearched: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., attempts: _Optional[int] = ..., problems: _Optional[_Iterable[str]] = ..., code_ref: _Optional[str] = ..., entrypoint: _Optional[str] = ..., origin: _Optional[_Union[_loop_pb2.CodeOrigin, str]] = ..., sha256: _Optional[str] = ..., repairs: _Optional[_Iterable[str]] = ..., unsearched: _Optional[_Iterable[str]] = ...) -> None: ...

class ExperimentRequested(_message.Message):
    __slots__ = ("experiment_id", "spec", "kind", "name", "seed", "params")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _loop_pb2.ParamValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_loop_pb2.ParamValue, _Mapping]] = ...) -> None: ...
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    spec: _runner_pb2.ExperimentSpec
    kind: _loop_pb2.ExperimentKind
    name: str
    seed: int
    params: _containers.MessageMap[str, _loop_pb2.ParamValue]
    def __init__(self, experiment_id: _Optional[str] = ..., spec: _Optional[_Union[_runner_pb2.ExperimentSpec, _Mapping]] = ..., kind: _Optional[_Union[_loop_pb2.ExperimentKind, str]] = ..., name: _Optional[str] = ..., seed: _Optional[int] = ..., params: _Optional[_Mapping[str, _loop_pb2.ParamValue]] = ...) -> None: ...

class ExperimentQueued(_message.Message):
    __slots__ = ("job_id", "experiment_id", "requeued")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEUED_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    experiment_id: str
    requeued: bool
    def __init__(self, job_id: _Optional[str] = ..., experiment_id: _Optional[str] = ..., requeued: _Optional[bool] = ...) -> None: ...

class ExperimentStarted(_message.Message):
    __slots__ = ("job_id", "experiment_id", "gpus", "attempt")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    experiment_id: str
    gpus: _containers.RepeatedScalarFieldContainer[str]
    attempt: int
    def __init__(self, job_id: _Optional[str] = ..., experiment_id: _Optional[str] = ..., gpus: _Optional[_Iterable[str]] = ..., attempt: _Optional[int] = ...) -> None: ...

class ExperimentProgress(_message.Message):
    __slots__ = ("job_id", "experiment_id", "name", "value", "step")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    experiment_id: str
    name: str
    value: float
    step: int
    def __init__(self, job_id: _Optional[str] = ..., experiment_id: _Optional[str] = ..., name: _Optional[str] = ..., value: _Optional[float] = ..., step: _Optional[int] = ...) -> None: ...

class ExperimentOutcome(_message.Message):
    __slots__ = ("job_id", "experiment_id", "metrics", "seed", "duration_seconds", "artifacts", "reason", "outcome", "run_seconds", "queued_seconds", "validation_curve", "stopped_at_epoch")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    RUN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    QUEUED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_CURVE_FIELD_NUMBER: _ClassVar[int]
    STOPPED_AT_EPOCH_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    experiment_id: str
    metrics: _containers.ScalarMap[str, float]
    seed: int
    duration_seconds: float
    artifacts: str
    reason: str
    outcome: str
    run_seconds: float
    queued_seconds: float
    validation_curve: _containers.RepeatedScalarFieldContainer[float]
    stopped_at_epoch: int
    def __init__(self, job_id: _Optional[str] = ..., experiment_id: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., seed: _Optional[int] = ..., duration_seconds: _Optional[float] = ..., artifacts: _Optional[str] = ..., reason: _Optional[str] = ..., outcome: _Optional[str] = ..., run_seconds: _Optional[float] = ..., queued_seconds: _Optional[float] = ..., validation_curve: _Optional[_Iterable[float]] = ..., stopped_at_epoch: _Optional[int] = ...) -> None: ...

class EvaluationRequested(_message.Message):
    __slots__ = ("name", "title", "metric", "maximize", "candidate", "baseline", "family_size", "look")
    class CandidateEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: str
        def __init__(self, key: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...
    class BaselineEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: str
        def __init__(self, key: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    MAXIMIZE_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    FAMILY_SIZE_FIELD_NUMBER: _ClassVar[int]
    LOOK_FIELD_NUMBER: _ClassVar[int]
    name: str
    title: str
    metric: str
    maximize: bool
    candidate: _containers.ScalarMap[int, str]
    baseline: _containers.ScalarMap[int, str]
    family_size: int
    look: int
    def __init__(self, name: _Optional[str] = ..., title: _Optional[str] = ..., metric: _Optional[str] = ..., maximize: _Optional[bool] = ..., candidate: _Optional[_Mapping[int, str]] = ..., baseline: _Optional[_Mapping[int, str]] = ..., family_size: _Optional[int] = ..., look: _Optional[int] = ...) -> None: ...

class EvaluationCompleted(_message.Message):
    __slots__ = ("name", "evaluation")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    name: str
    evaluation: _loop_pb2.Comparison
    def __init__(self, name: _Optional[str] = ..., evaluation: _Optional[_Union[_loop_pb2.Comparison, _Mapping]] = ...) -> None: ...

class ReportRequested(_message.Message):
    __slots__ = ("stop_reason", "failed", "research", "loop")
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    RESEARCH_FIELD_NUMBER: _ClassVar[int]
    LOOP_FIELD_NUMBER: _ClassVar[int]
    stop_reason: str
    failed: bool
    research: _research_pb2.Research
    loop: _loop_pb2.ResearchLoop
    def __init__(self, stop_reason: _Optional[str] = ..., failed: _Optional[bool] = ..., research: _Optional[_Union[_research_pb2.Research, _Mapping]] = ..., loop: _Optional[_Union[_loop_pb2.ResearchLoop, _Mapping]] = ...) -> None: ...

class ReportWritten(_message.Message):
    __slots__ = ("markdown_key", "html_key", "verdict")
    MARKDOWN_KEY_FIELD_NUMBER: _ClassVar[int]
    HTML_KEY_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    markdown_key: str
    html_key: str
    verdict: str
    def __init__(self, markdown_key: _Optional[str] = ..., html_key: _Optional[str] = ..., verdict: _Optional[str] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("event", "error", "deliveries")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    event: Event
    error: str
    deliveries: int
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ..., error: _Optional[str] = ..., deliveries: _Optional[int] = ...) -> None: ...

class Undecodable(_message.Message):
    __slots__ = ("subject",)
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    subject: str
    def __init__(self, subject: _Optional[str] = ...) -> None: ...

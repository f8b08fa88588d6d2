from airlab.v1 import idea_pb2 as _idea_pb2
from airlab.v1 import manager_pb2 as _manager_pb2
from airlab.v1 import runner_pb2 as _runner_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LoopPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOOP_PHASE_UNSPECIFIED: _ClassVar[LoopPhase]
    LOOP_PHASE_BASELINE: _ClassVar[LoopPhase]
    LOOP_PHASE_IDEAS: _ClassVar[LoopPhase]
    LOOP_PHASE_CODING: _ClassVar[LoopPhase]
    LOOP_PHASE_SEARCHING: _ClassVar[LoopPhase]
    LOOP_PHASE_EVALUATING: _ClassVar[LoopPhase]
    LOOP_PHASE_WAITING: _ClassVar[LoopPhase]
    LOOP_PHASE_REPORTING: _ClassVar[LoopPhase]
    LOOP_PHASE_DONE: _ClassVar[LoopPhase]

class IdeaStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IDEA_STATUS_UNSPECIFIED: _ClassVar[IdeaStatus]
    IDEA_STATUS_APPROVED: _ClassVar[IdeaStatus]
    IDEA_STATUS_REJECTED: _ClassVar[IdeaStatus]
    IDEA_STATUS_AWAITING_APPROVAL: _ClassVar[IdeaStatus]
    IDEA_STATUS_CODING: _ClassVar[IdeaStatus]
    IDEA_STATUS_SEARCHING: _ClassVar[IdeaStatus]
    IDEA_STATUS_EVALUATING: _ClassVar[IdeaStatus]
    IDEA_STATUS_REVIEWING: _ClassVar[IdeaStatus]
    IDEA_STATUS_EVALUATED: _ClassVar[IdeaStatus]
    IDEA_STATUS_FAILED: _ClassVar[IdeaStatus]
    IDEA_STATUS_NOT_RUN: _ClassVar[IdeaStatus]
    IDEA_STATUS_NOT_BETTER: _ClassVar[IdeaStatus]

class IdeaOrigin(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IDEA_ORIGIN_UNSPECIFIED: _ClassVar[IdeaOrigin]
    IDEA_ORIGIN_LLM: _ClassVar[IdeaOrigin]
    IDEA_ORIGIN_PORTFOLIO: _ClassVar[IdeaOrigin]
    IDEA_ORIGIN_EXPLOIT: _ClassVar[IdeaOrigin]
    IDEA_ORIGIN_IMPROVE: _ClassVar[IdeaOrigin]
    IDEA_ORIGIN_PROFILE: _ClassVar[IdeaOrigin]

class CodeOrigin(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CODE_ORIGIN_UNSPECIFIED: _ClassVar[CodeOrigin]
    CODE_ORIGIN_TEMPLATE: _ClassVar[CodeOrigin]
    CODE_ORIGIN_LLM: _ClassVar[CodeOrigin]
    CODE_ORIGIN_REGISTRY_FALLBACK: _ClassVar[CodeOrigin]
    CODE_ORIGIN_REGISTRY: _ClassVar[CodeOrigin]
    CODE_ORIGIN_REUSED: _ClassVar[CodeOrigin]
    CODE_ORIGIN_CATALOG: _ClassVar[CodeOrigin]

class ExperimentKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPERIMENT_KIND_UNSPECIFIED: _ClassVar[ExperimentKind]
    EXPERIMENT_KIND_BASELINE: _ClassVar[ExperimentKind]
    EXPERIMENT_KIND_TRIAL: _ClassVar[ExperimentKind]
    EXPERIMENT_KIND_EVALUATION: _ClassVar[ExperimentKind]
    EXPERIMENT_KIND_SMOKE: _ClassVar[ExperimentKind]

class ExperimentState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPERIMENT_STATE_UNSPECIFIED: _ClassVar[ExperimentState]
    EXPERIMENT_STATE_REQUESTED: _ClassVar[ExperimentState]
    EXPERIMENT_STATE_FINISHED: _ClassVar[ExperimentState]
    EXPERIMENT_STATE_FAILED: _ClassVar[ExperimentState]
LOOP_PHASE_UNSPECIFIED: LoopPhase
LOOP_PHASE_BASELINE: LoopPhase
LOOP_PHASE_IDEAS: LoopPhase
LOOP_PHASE_CODING: LoopPhase
LOOP_PHASE_SEARCHING: LoopPhase
LOOP_PHASE_EVALUATING: LoopPhase
LOOP_PHASE_WAITING: LoopPhase
LOOP_PHASE_REPORTING: LoopPhase
LOOP_PHASE_DONE: LoopPhase
IDEA_STATUS_UNSPECIFIED: IdeaStatus
IDEA_STATUS_APPROVED: IdeaStatus
IDEA_STATUS_REJECTED: IdeaStatus
IDEA_STATUS_AWAITING_APPROVAL: IdeaStatus
IDEA_STATUS_CODING: IdeaStatus
IDEA_STATUS_SEARCHING: IdeaStatus
IDEA_STATUS_EVALUATING: IdeaStatus
IDEA_STATUS_REVIEWING: IdeaStatus
IDEA_STATUS_EVALUATED: IdeaStatus
IDEA_STATUS_FAILED: IdeaStatus
IDEA_STATUS_NOT_RUN: IdeaStatus
IDEA_STATUS_NOT_BETTER: IdeaStatus
IDEA_ORIGIN_UNSPECIFIED: IdeaOrigin
IDEA_ORIGIN_LLM: IdeaOrigin
IDEA_ORIGIN_PORTFOLIO: IdeaOrigin
IDEA_ORIGIN_EXPLOIT: IdeaOrigin
IDEA_ORIGIN_IMPROVE: IdeaOrigin
IDEA_ORIGIN_PROFILE: IdeaOrigin
CODE_ORIGIN_UNSPECIFIED: CodeOrigin
CODE_ORIGIN_TEMPLATE: CodeOrigin
CODE_ORIGIN_LLM: CodeOrigin
CODE_ORIGIN_REGISTRY_FALLBACK: CodeOrigin
CODE_ORIGIN_REGISTRY: CodeOrigin
CODE_ORIGIN_REUSED: CodeOrigin
CODE_ORIGIN_CATALOG: CodeOrigin
EXPERIMENT_KIND_UNSPECIFIED: ExperimentKind
EXPERIMENT_KIND_BASELINE: ExperimentKind
EXPERIMENT_KIND_TRIAL: ExperimentKind
EXPERIMENT_KIND_EVALUATION: ExperimentKind
EXPERIMENT_KIND_SMOKE: ExperimentKind
EXPERIMENT_STATE_UNSPECIFIED: ExperimentState
EXPERIMENT_STATE_REQUESTED: ExperimentState
EXPERIMENT_STATE_FINISHED: ExperimentState
EXPERIMENT_STATE_FAILED: ExperimentState

class ParamValue(_message.Message):
    __slots__ = ("integer", "number", "text", "flag")
    INTEGER_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FLAG_FIELD_NUMBER: _ClassVar[int]
    integer: int
    number: float
    text: str
    flag: bool
    def __init__(self, integer: _Optional[int] = ..., number: _Optional[float] = ..., text: _Optional[str] = ..., flag: _Optional[bool] = ...) -> None: ...

class JobConfig(_message.Message):
    __slots__ = ("dataset", "task", "metric", "model", "split_seed", "test_fraction", "csv_path", "target", "template", "data_path")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SPLIT_SEED_FIELD_NUMBER: _ClassVar[int]
    TEST_FRACTION_FIELD_NUMBER: _ClassVar[int]
    CSV_PATH_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    DATA_PATH_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    task: str
    metric: str
    model: str
    split_seed: int
    test_fraction: float
    csv_path: str
    target: str
    template: str
    data_path: str
    def __init__(self, dataset: _Optional[str] = ..., task: _Optional[str] = ..., metric: _Optional[str] = ..., model: _Optional[str] = ..., split_seed: _Optional[int] = ..., test_fraction: _Optional[float] = ..., csv_path: _Optional[str] = ..., target: _Optional[str] = ..., template: _Optional[str] = ..., data_path: _Optional[str] = ...) -> None: ...

class LoopExperiment(_message.Message):
    __slots__ = ("id", "kind", "name", "seed", "params", "state", "test", "validation", "reason", "run_seconds", "queued_seconds", "validation_curve", "stopped_at_epoch")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ParamValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ParamValue, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RUN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    QUEUED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_CURVE_FIELD_NUMBER: _ClassVar[int]
    STOPPED_AT_EPOCH_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: ExperimentKind
    name: str
    seed: int
    params: _containers.MessageMap[str, ParamValue]
    state: ExperimentState
    test: float
    validation: float
    reason: str
    run_seconds: float
    queued_seconds: float
    validation_curve: _containers.RepeatedScalarFieldContainer[float]
    stopped_at_epoch: int
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[_Union[ExperimentKind, str]] = ..., name: _Optional[str] = ..., seed: _Optional[int] = ..., params: _Optional[_Mapping[str, ParamValue]] = ..., state: _Optional[_Union[ExperimentState, str]] = ..., test: _Optional[float] = ..., validation: _Optional[float] = ..., reason: _Optional[str] = ..., run_seconds: _Optional[float] = ..., queued_seconds: _Optional[float] = ..., validation_curve: _Optional[_Iterable[float]] = ..., stopped_at_epoch: _Optional[int] = ...) -> None: ...

class SeedScore(_message.Message):
    __slots__ = ("seed", "baseline", "candidate")
    SEED_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    seed: int
    baseline: float
    candidate: float
    def __init__(self, seed: _Optional[int] = ..., baseline: _Optional[float] = ..., candidate: _Optional[float] = ...) -> None: ...

class Comparison(_message.Message):
    __slots__ = ("metric", "seeds", "mean", "std", "baseline_mean", "baseline_std", "gain", "t_statistic", "p_value", "bootstrap_low", "bootstrap_high", "significant", "findings", "per_seed", "bootstrap_p", "chance", "combined_p", "adjusted_p", "family_size", "look", "level", "suggestive", "clears_noise", "bootstrap_confidence")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    BASELINE_MEAN_FIELD_NUMBER: _ClassVar[int]
    BASELINE_STD_FIELD_NUMBER: _ClassVar[int]
    GAIN_FIELD_NUMBER: _ClassVar[int]
    T_STATISTIC_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_LOW_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_HIGH_FIELD_NUMBER: _ClassVar[int]
    SIGNIFICANT_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    PER_SEED_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_P_FIELD_NUMBER: _ClassVar[int]
    CHANCE_FIELD_NUMBER: _ClassVar[int]
    COMBINED_P_FIELD_NUMBER: _ClassVar[int]
    ADJUSTED_P_FIELD_NUMBER: _ClassVar[int]
    FAMILY_SIZE_FIELD_NUMBER: _ClassVar[int]
    LOOK_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    SUGGESTIVE_FIELD_NUMBER: _ClassVar[int]
    CLEARS_NOISE_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    metric: str
    seeds: _containers.RepeatedScalarFieldContainer[int]
    mean: float
    std: float
    baseline_mean: float
    baseline_std: float
    gain: float
    t_statistic: float
    p_value: float
    bootstrap_low: float
    bootstrap_high: float
    significant: bool
    findings: _containers.RepeatedScalarFieldContainer[str]
    per_seed: _containers.RepeatedCompositeFieldContainer[SeedScore]
    bootstrap_p: float
    chance: Comparison
    combined_p: float
    adjusted_p: float
    family_size: int
    look: int
    level: float
    suggestive: bool
    clears_noise: bool
    bootstrap_confidence: float
    def __init__(self, metric: _Optional[str] = ..., seeds: _Optional[_Iterable[int]] = ..., mean: _Optional[float] = ..., std: _Optional[float] = ..., baseline_mean: _Optional[float] = ..., baseline_std: _Optional[float] = ..., gain: _Optional[float] = ..., t_statistic: _Optional[float] = ..., p_value: _Optional[float] = ..., bootstrap_low: _Optional[float] = ..., bootstrap_high: _Optional[float] = ..., significant: _Optional[bool] = ..., findings: _Optional[_Iterable[str]] = ..., per_seed: _Optional[_Iterable[_Union[SeedScore, _Mapping]]] = ..., bootstrap_p: _Optional[float] = ..., chance: _Optional[_Union[Comparison, _Mapping]] = ..., combined_p: _Optional[float] = ..., adjusted_p: _Optional[float] = ..., family_size: _Optional[int] = ..., look: _Optional[int] = ..., level: _Optional[float] = ..., suggestive: _Optional[bool] = ..., clears_noise: _Optional[bool] = ..., bootstrap_confidence: _Optional[float] = ...) -> None: ...

class LoopIdea(_message.Message):
    __slots__ = ("idea", "round", "review", "status", "trials", "evaluations", "trial_budget", "code_ref", "code_attempts", "code_problems", "best_trial", "best_params", "evaluation", "failure", "origin", "parent_id", "family", "code_origin", "code_sha256", "code_repairs", "code_asked", "code_answered", "extra_seeds", "built_on")
    class EvaluationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: str
        def __init__(self, key: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...
    class BestParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ParamValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ParamValue, _Mapping]] = ...) -> None: ...
    IDEA_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    REVIEW_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TRIALS_FIELD_NUMBER: _ClassVar[int]
    EVALUATIONS_FIELD_NUMBER: _ClassVar[int]
    TRIAL_BUDGET_FIELD_NUMBER: _ClassVar[int]
    CODE_REF_FIELD_NUMBER: _ClassVar[int]
    CODE_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CODE_PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    BEST_TRIAL_FIELD_NUMBER: _ClassVar[int]
    BEST_PARAMS_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    CODE_ORIGIN_FIELD_NUMBER: _ClassVar[int]
    CODE_SHA256_FIELD_NUMBER: _ClassVar[int]
    CODE_REPAIRS_FIELD_NUMBER: _ClassVar[int]
    CODE_ASKED_FIELD_NUMBER: _ClassVar[int]
    CODE_ANSWERED_FIELD_NUMBER: _ClassVar[int]
    EXTRA_SEEDS_FIELD_NUMBER: _ClassVar[int]
    BUILT_ON_FIELD_NUMBER: _ClassVar[int]
    idea: _idea_pb2.Idea
    round: int
    review: _manager_pb2.IdeaReview
    status: IdeaStatus
    trials: _containers.RepeatedScalarFieldContainer[str]
    evaluations: _containers.ScalarMap[int, str]
    trial_budget: int
    code_ref: str
    code_attempts: int
    code_problems: _containers.RepeatedScalarFieldContainer[str]
    best_trial: str
    best_params: _containers.MessageMap[str, ParamValue]
    evaluation: Comparison
    failure: str
    origin: IdeaOrigin
    parent_id: str
    family: str
    code_origin: CodeOrigin
    code_sha256: str
    code_repairs: _containers.RepeatedScalarFieldContainer[str]
    code_asked: bool
    code_answered: bool
    extra_seeds: _containers.RepeatedScalarFieldContainer[int]
    built_on: str
    def __init__(self, idea: _Optional[_Union[_idea_pb2.Idea, _Mapping]] = ..., round: _Optional[int] = ..., review: _Optional[_Union[_manager_pb2.IdeaReview, _Mapping]] = ..., status: _Optional[_Union[IdeaStatus, str]] = ..., trials: _Optional[_Iterable[str]] = ..., evaluations: _Optional[_Mapping[int, str]] = ..., trial_budget: _Optional[int] = ..., code_ref: _Optional[str] = ..., code_attempts: _Optional[int] = ..., code_problems: _Optional[_Iterable[str]] = ..., best_trial: _Optional[str] = ..., best_params: _Optional[_Mapping[str, ParamValue]] = ..., evaluation: _Optional[_Union[Comparison, _Mapping]] = ..., failure: _Optional[str] = ..., origin: _Optional[_Union[IdeaOrigin, str]] = ..., parent_id: _Optional[str] = ..., family: _Optional[str] = ..., code_origin: _Optional[_Union[CodeOrigin, str]] = ..., code_sha256: _Optional[str] = ..., code_repairs: _Optional[_Iterable[str]] = ..., code_asked: _Optional[bool] = ..., code_answered: _Optional[bool] = ..., extra_seeds: _Optional[_Iterable[int]] = ..., built_on: _Optional[str] = ...) -> None: ...

class BaselineResult(_message.Message):
    __slots__ = ("mean", "std", "experiments", "validation", "chance")
    class ExperimentsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: str
        def __init__(self, key: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENTS_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    CHANCE_FIELD_NUMBER: _ClassVar[int]
    mean: float
    std: float
    experiments: _containers.ScalarMap[int, str]
    validation: float
    chance: float
    def __init__(self, mean: _Optional[float] = ..., std: _Optional[float] = ..., experiments: _Optional[_Mapping[int, str]] = ..., validation: _Optional[float] = ..., chance: _Optional[float] = ...) -> None: ...

class BestIdea(_message.Message):
    __slots__ = ("idea_id", "title", "mean", "std", "gain", "significant", "p_value", "adjusted_p", "suggestive")
    IDEA_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    GAIN_FIELD_NUMBER: _ClassVar[int]
    SIGNIFICANT_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    ADJUSTED_P_FIELD_NUMBER: _ClassVar[int]
    SUGGESTIVE_FIELD_NUMBER: _ClassVar[int]
    idea_id: str
    title: str
    mean: float
    std: float
    gain: float
    significant: bool
    p_value: float
    adjusted_p: float
    suggestive: bool
    def __init__(self, idea_id: _Optional[str] = ..., title: _Optional[str] = ..., mean: _Optional[float] = ..., std: _Optional[float] = ..., gain: _Optional[float] = ..., significant: _Optional[bool] = ..., p_value: _Optional[float] = ..., adjusted_p: _Optional[float] = ..., suggestive: _Optional[bool] = ...) -> None: ...

class LoopDecision(_message.Message):
    __slots__ = ("round", "kind", "reason")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    round: int
    kind: _manager_pb2.DecisionKind
    reason: str
    def __init__(self, round: _Optional[int] = ..., kind: _Optional[_Union[_manager_pb2.DecisionKind, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class LoopFailure(_message.Message):
    __slots__ = ("idea_id", "title", "round", "what", "error")
    IDEA_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    WHAT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    idea_id: str
    title: str
    round: int
    what: str
    error: str
    def __init__(self, idea_id: _Optional[str] = ..., title: _Optional[str] = ..., round: _Optional[int] = ..., what: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class ResearchLoop(_message.Message):
    __slots__ = ("schema", "phase", "round", "started_at", "experiments", "ideas", "queue", "decisions", "rounds_without_progress", "consecutive_failures", "job_config", "mounts", "baseline_code", "baseline", "best", "failures", "stop_reason", "failed", "escalated", "round_closed", "gain_at_round_start", "exploits", "improves", "ideas_pending_round", "related_work", "related_work_status")
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENTS_FIELD_NUMBER: _ClassVar[int]
    IDEAS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_WITHOUT_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    JOB_CONFIG_FIELD_NUMBER: _ClassVar[int]
    MOUNTS_FIELD_NUMBER: _ClassVar[int]
    BASELINE_CODE_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    BEST_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_FIELD_NUMBER: _ClassVar[int]
    ROUND_CLOSED_FIELD_NUMBER: _ClassVar[int]
    GAIN_AT_ROUND_START_FIELD_NUMBER: _ClassVar[int]
    EXPLOITS_FIELD_NUMBER: _ClassVar[int]
    IMPROVES_FIELD_NUMBER: _ClassVar[int]
    IDEAS_PENDING_ROUND_FIELD_NUMBER: _ClassVar[int]
    RELATED_WORK_FIELD_NUMBER: _ClassVar[int]
    RELATED_WORK_STATUS_FIELD_NUMBER: _ClassVar[int]
    schema: int
    phase: LoopPhase
    round: int
    started_at: float
    experiments: _containers.RepeatedCompositeFieldContainer[LoopExperiment]
    ideas: _containers.RepeatedCompositeFieldContainer[LoopIdea]
    queue: _containers.RepeatedScalarFieldContainer[str]
    decisions: _containers.RepeatedCompositeFieldContainer[LoopDecision]
    rounds_without_progress: int
    consecutive_failures: int
    job_config: JobConfig
    mounts: _containers.RepeatedCompositeFieldContainer[_runner_pb2.DatasetMount]
    baseline_code: str
    baseline: BaselineResult
    best: BestIdea
    failures: _containers.RepeatedCompositeFieldContainer[LoopFailure]
    stop_reason: str
    failed: bool
    escalated: bool
    round_closed: int
    gain_at_round_start: float
    exploits: int
    improves: int
    ideas_pending_round: int
    related_work: _containers.RepeatedCompositeFieldContainer[_idea_pb2.Paper]
    related_work_status: str
    def __init__(self, schema: _Optional[int] = ..., phase: _Optional[_Union[LoopPhase, str]] = ..., round: _Optional[int] = ..., started_at: _Optional[float] = ..., experiments: _Optional[_Iterable[_Union[LoopExperiment, _Mapping]]] = ..., ideas: _Optional[_Iterable[_Union[LoopIdea, _Mapping]]] = ..., queue: _Optional[_Iterable[str]] = ..., decisions: _Optional[_Iterable[_Union[LoopDecision, _Mapping]]] = ..., rounds_without_progress: _Optional[int] = ..., consecutive_failures: _Optional[int] = ..., job_config: _Optional[_Union[JobConfig, _Mapping]] = ..., mounts: _Optional[_Iterable[_Union[_runner_pb2.DatasetMount, _Mapping]]] = ..., baseline_code: _Optional[str] = ..., baseline: _Optional[_Union[BaselineResult, _Mapping]] = ..., best: _Optional[_Union[BestIdea, _Mapping]] = ..., failures: _Optional[_Iterable[_Union[LoopFailure, _Mapping]]] = ..., stop_reason: _Optional[str] = ..., failed: _Optional[bool] = ..., escalated: _Optional[bool] = ..., round_closed: _Optional[int] = ..., gain_at_round_start: _Optional[float] = ..., exploits: _Optional[int] = ..., improves: _Optional[int] = ..., ideas_pending_round: _Optional[int] = ..., related_work: _Optional[_Iterable[_Union[_idea_pb2.Paper, _Mapping]]] = ..., related_work_status: _Optional[str] = ...) -> None: ...

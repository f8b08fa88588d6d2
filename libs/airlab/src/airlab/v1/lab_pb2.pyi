from airlab.v1 import events_pb2 as _events_pb2
from airlab.v1 import research_pb2 as _research_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetReportRequest(_message.Message):
    __slots__ = ("id", "pdf")
    ID_FIELD_NUMBER: _ClassVar[int]
    PDF_FIELD_NUMBER: _ClassVar[int]
    id: str
    pdf: bool
    def __init__(self, id: _Optional[str] = ..., pdf: _Optional[bool] = ...) -> None: ...

class ResearchReport(_message.Message):
    __slots__ = ("research_id", "markdown", "html", "summary_json", "plots", "pdf", "paper_status")
    class PlotsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    RESEARCH_ID_FIELD_NUMBER: _ClassVar[int]
    MARKDOWN_FIELD_NUMBER: _ClassVar[int]
    HTML_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_JSON_FIELD_NUMBER: _ClassVar[int]
    PLOTS_FIELD_NUMBER: _ClassVar[int]
    PDF_FIELD_NUMBER: _ClassVar[int]
    PAPER_STATUS_FIELD_NUMBER: _ClassVar[int]
    research_id: str
    markdown: str
    html: str
    summary_json: str
    plots: _containers.ScalarMap[str, bytes]
    pdf: bytes
    paper_status: str
    def __init__(self, research_id: _Optional[str] = ..., markdown: _Optional[str] = ..., html: _Optional[str] = ..., summary_json: _Optional[str] = ..., plots: _Optional[_Mapping[str, bytes]] = ..., pdf: _Optional[bytes] = ..., paper_status: _Optional[str] = ...) -> None: ...

class StartResearchRequest(_message.Message):
    __slots__ = ("goal", "dataset", "metric", "budget", "gates", "allow_defaults", "request_id", "baseline", "user_dataset", "until", "template")
    GOAL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    GATES_FIELD_NUMBER: _ClassVar[int]
    ALLOW_DEFAULTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    USER_DATASET_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    goal: str
    dataset: str
    metric: str
    budget: _research_pb2.Budget
    gates: _research_pb2.HumanGates
    allow_defaults: bool
    request_id: str
    baseline: str
    user_dataset: _research_pb2.UserDataset
    until: _research_pb2.StopRule
    template: str
    def __init__(self, goal: _Optional[str] = ..., dataset: _Optional[str] = ..., metric: _Optional[str] = ..., budget: _Optional[_Union[_research_pb2.Budget, _Mapping]] = ..., gates: _Optional[_Union[_research_pb2.HumanGates, str]] = ..., allow_defaults: _Optional[bool] = ..., request_id: _Optional[str] = ..., baseline: _Optional[str] = ..., user_dataset: _Optional[_Union[_research_pb2.UserDataset, _Mapping]] = ..., until: _Optional[_Union[_research_pb2.StopRule, str]] = ..., template: _Optional[str] = ...) -> None: ...

class GetResearchRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListResearchRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: _research_pb2.ResearchState
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[_research_pb2.ResearchState, str]] = ...) -> None: ...

class ListResearchResponse(_message.Message):
    __slots__ = ("researches", "next_page_token")
    RESEARCHES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    researches: _containers.RepeatedCompositeFieldContainer[_research_pb2.Research]
    next_page_token: str
    def __init__(self, researches: _Optional[_Iterable[_Union[_research_pb2.Research, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchResearchRequest(_message.Message):
    __slots__ = ("id", "from_sequence", "follow")
    ID_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    id: str
    from_sequence: int
    follow: bool
    def __init__(self, id: _Optional[str] = ..., from_sequence: _Optional[int] = ..., follow: _Optional[bool] = ...) -> None: ...

class CancelResearchRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ApproveRequest(_message.Message):
    __slots__ = ("research_id", "subject", "answers", "comment")
    class AnswersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RESEARCH_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    research_id: str
    subject: str
    answers: _containers.ScalarMap[str, str]
    comment: str
    def __init__(self, research_id: _Optional[str] = ..., subject: _Optional[str] = ..., answers: _Optional[_Mapping[str, str]] = ..., comment: _Optional[str] = ...) -> None: ...

class RejectRequest(_message.Message):
    __slots__ = ("research_id", "subject", "reason")
    RESEARCH_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    research_id: str
    subject: str
    reason: str
    def __init__(self, research_id: _Optional[str] = ..., subject: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

from airlab.v1 import loop_pb2 as _loop_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EvaluateExperimentRequest(_message.Message):
    __slots__ = ("research_id", "experiment_id")
    RESEARCH_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    research_id: str
    experiment_id: str
    def __init__(self, research_id: _Optional[str] = ..., experiment_id: _Optional[str] = ...) -> None: ...

class Evaluation(_message.Message):
    __slots__ = ("research_id", "experiment_id", "mean", "std", "baseline_mean", "baseline_std", "significant", "findings", "comparison")
    RESEARCH_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    BASELINE_MEAN_FIELD_NUMBER: _ClassVar[int]
    BASELINE_STD_FIELD_NUMBER: _ClassVar[int]
    SIGNIFICANT_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    COMPARISON_FIELD_NUMBER: _ClassVar[int]
    research_id: str
    experiment_id: str
    mean: float
    std: float
    baseline_mean: float
    baseline_std: float
    significant: bool
    findings: _containers.RepeatedScalarFieldContainer[str]
    comparison: _loop_pb2.Comparison
    def __init__(self, research_id: _Optional[str] = ..., experiment_id: _Optional[str] = ..., mean: _Optional[float] = ..., std: _Optional[float] = ..., baseline_mean: _Optional[float] = ..., baseline_std: _Optional[float] = ..., significant: _Optional[bool] = ..., findings: _Optional[_Iterable[str]] = ..., comparison: _Optional[_Union[_loop_pb2.Comparison, _Mapping]] = ...) -> None: ...

class WriteReportRequest(_message.Message):
    __slots__ = ("research_id",)
    RESEARCH_ID_FIELD_NUMBER: _ClassVar[int]
    research_id: str
    def __init__(self, research_id: _Optional[str] = ...) -> None: ...

class Report(_message.Message):
    __slots__ = ("research_id", "markdown_key", "html_key")
    RESEARCH_ID_FIELD_NUMBER: _ClassVar[int]
    MARKDOWN_KEY_FIELD_NUMBER: _ClassVar[int]
    HTML_KEY_FIELD_NUMBER: _ClassVar[int]
    research_id: str
    markdown_key: str
    html_key: str
    def __init__(self, research_id: _Optional[str] = ..., markdown_key: _Optional[str] = ..., html_key: _Optional[str] = ...) -> None: ...

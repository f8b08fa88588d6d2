from airlab.v1 import idea_pb2 as _idea_pb2
from airlab.v1 import loop_pb2 as _loop_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ImplementIdeaRequest(_message.Message):
    __slots__ = ("research_id", "idea", "template", "max_attempts")
    RESEARCH_ID_FIELD_NUMBER: _ClassVar[int]
    IDEA_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    research_id: str
    idea: _idea_pb2.Idea
    template: str
    max_attempts: int
    def __init__(self, research_id: _Optional[str] = ..., idea: _Optional[_Union[_idea_pb2.Idea, _Mapping]] = ..., template: _Optional[str] = ..., max_attempts: _Optional[int] = ...) -> None: ...

class CodeBundle(_message.Message):
    __slots__ = ("research_id", "experiment_id", "files", "entrypoint", "attempts", "smoke_passed", "origin", "repairs", "problems", "sha256")
    class FilesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RESEARCH_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    SMOKE_PASSED_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    REPAIRS_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    research_id: str
    experiment_id: str
    files: _containers.ScalarMap[str, str]
    entrypoint: str
    attempts: int
    smoke_passed: bool
    origin: _loop_pb2.CodeOrigin
    repairs: _containers.RepeatedScalarFieldContainer[str]
    problems: _containers.RepeatedScalarFieldContainer[str]
    sha256: str
    def __init__(self, research_id: _Optional[str] = ..., experiment_id: _Optional[str] = ..., files: _Optional[_Mapping[str, str]] = ..., entrypoint: _Optional[str] = ..., attempts: _Optional[int] = ..., smoke_passed: _Optional[bool] = ..., origin: _Optional[_Union[_loop_pb2.CodeOrigin, str]] = ..., repairs: _Optional[_Iterable[str]] = ..., problems: _Optional[_Iterable[str]] = ..., sha256: _Optional[str] = ...) -> None: ...

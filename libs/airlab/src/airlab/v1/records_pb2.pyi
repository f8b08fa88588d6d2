from airlab.v1 import loop_pb2 as _loop_pb2
from airlab.v1 import research_pb2 as _research_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecordStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECORD_STATUS_UNSPECIFIED: _ClassVar[RecordStatus]
    RECORD_STATUS_FOUND: _ClassVar[RecordStatus]
    RECORD_STATUS_NOT_FOUND: _ClassVar[RecordStatus]
    RECORD_STATUS_OUTDATED: _ClassVar[RecordStatus]
    RECORD_STATUS_INVALID: _ClassVar[RecordStatus]
    RECORD_STATUS_UNAVAILABLE: _ClassVar[RecordStatus]
RECORD_STATUS_UNSPECIFIED: RecordStatus
RECORD_STATUS_FOUND: RecordStatus
RECORD_STATUS_NOT_FOUND: RecordStatus
RECORD_STATUS_OUTDATED: RecordStatus
RECORD_STATUS_INVALID: RecordStatus
RECORD_STATUS_UNAVAILABLE: RecordStatus

class RecordRequest(_message.Message):
    __slots__ = ("research_id",)
    RESEARCH_ID_FIELD_NUMBER: _ClassVar[int]
    research_id: str
    def __init__(self, research_id: _Optional[str] = ...) -> None: ...

class ResearchRecord(_message.Message):
    __slots__ = ("status", "research", "loop", "detail")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESEARCH_FIELD_NUMBER: _ClassVar[int]
    LOOP_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    status: RecordStatus
    research: _research_pb2.Research
    loop: _loop_pb2.ResearchLoop
    detail: str
    def __init__(self, status: _Optional[_Union[RecordStatus, str]] = ..., research: _Optional[_Union[_research_pb2.Research, _Mapping]] = ..., loop: _Optional[_Union[_loop_pb2.ResearchLoop, _Mapping]] = ..., detail: _Optional[str] = ...) -> None: ...

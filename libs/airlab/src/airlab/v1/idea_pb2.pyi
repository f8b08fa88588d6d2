from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Idea(_message.Message):
    __slots__ = ("id", "research_id", "title", "change", "expected_effect", "rationale", "search_space")
    class SearchSpaceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Range
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Range, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    RESEARCH_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_EFFECT_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    SEARCH_SPACE_FIELD_NUMBER: _ClassVar[int]
    id: str
    research_id: str
    title: str
    change: str
    expected_effect: str
    rationale: str
    search_space: _containers.MessageMap[str, Range]
    def __init__(self, id: _Optional[str] = ..., research_id: _Optional[str] = ..., title: _Optional[str] = ..., change: _Optional[str] = ..., expected_effect: _Optional[str] = ..., rationale: _Optional[str] = ..., search_space: _Optional[_Mapping[str, Range]] = ...) -> None: ...

class Range(_message.Message):
    __slots__ = ("low", "high", "log_scale", "integer")
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    LOG_SCALE_FIELD_NUMBER: _ClassVar[int]
    INTEGER_FIELD_NUMBER: _ClassVar[int]
    low: float
    high: float
    log_scale: bool
    integer: bool
    def __init__(self, low: _Optional[float] = ..., high: _Optional[float] = ..., log_scale: _Optional[bool] = ..., integer: _Optional[bool] = ...) -> None: ...

class ProposeIdeasRequest(_message.Message):
    __slots__ = ("research_id", "count")
    RESEARCH_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    research_id: str
    count: int
    def __init__(self, research_id: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class ProposeIdeasResponse(_message.Message):
    __slots__ = ("ideas",)
    IDEAS_FIELD_NUMBER: _ClassVar[int]
    ideas: _containers.RepeatedCompositeFieldContainer[Idea]
    def __init__(self, ideas: _Optional[_Iterable[_Union[Idea, _Mapping]]] = ...) -> None: ...

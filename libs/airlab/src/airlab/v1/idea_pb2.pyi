from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Technique(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TECHNIQUE_UNSPECIFIED: _ClassVar[Technique]
    TECHNIQUE_RATIO: _ClassVar[Technique]
    TECHNIQUE_DIFFERENCE: _ClassVar[Technique]
    TECHNIQUE_PRODUCT: _ClassVar[Technique]
    TECHNIQUE_LOG: _ClassVar[Technique]
    TECHNIQUE_POWER: _ClassVar[Technique]
    TECHNIQUE_DATE_DIFFERENCE: _ClassVar[Technique]
    TECHNIQUE_KEYWORDS: _ClassVar[Technique]
    TECHNIQUE_TARGET_ENCODING: _ClassVar[Technique]
    TECHNIQUE_FREQUENCY_ENCODING: _ClassVar[Technique]
    TECHNIQUE_GROUP_MEAN: _ClassVar[Technique]
    TECHNIQUE_BINS: _ClassVar[Technique]
    TECHNIQUE_CLASS_WEIGHTS: _ClassVar[Technique]
    TECHNIQUE_TARGET_LOG: _ClassVar[Technique]
TECHNIQUE_UNSPECIFIED: Technique
TECHNIQUE_RATIO: Technique
TECHNIQUE_DIFFERENCE: Technique
TECHNIQUE_PRODUCT: Technique
TECHNIQUE_LOG: Technique
TECHNIQUE_POWER: Technique
TECHNIQUE_DATE_DIFFERENCE: Technique
TECHNIQUE_KEYWORDS: Technique
TECHNIQUE_TARGET_ENCODING: Technique
TECHNIQUE_FREQUENCY_ENCODING: Technique
TECHNIQUE_GROUP_MEAN: Technique
TECHNIQUE_BINS: Technique
TECHNIQUE_CLASS_WEIGHTS: Technique
TECHNIQUE_TARGET_LOG: Technique

class Idea(_message.Message):
    __slots__ = ("id", "research_id", "title", "change", "expected_effect", "rationale", "search_space", "steps", "family", "evidence", "notes", "cites")
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
    STEPS_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    CITES_FIELD_NUMBER: _ClassVar[int]
    id: str
    research_id: str
    title: str
    change: str
    expected_effect: str
    rationale: str
    search_space: _containers.MessageMap[str, Range]
    steps: _containers.RepeatedCompositeFieldContainer[FeatureStep]
    family: str
    evidence: str
    notes: _containers.RepeatedScalarFieldContainer[str]
    cites: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, id: _Optional[str] = ..., research_id: _Optional[str] = ..., title: _Optional[str] = ..., change: _Optional[str] = ..., expected_effect: _Optional[str] = ..., rationale: _Optional[str] = ..., search_space: _Optional[_Mapping[str, Range]] = ..., steps: _Optional[_Iterable[_Union[FeatureStep, _Mapping]]] = ..., family: _Optional[str] = ..., evidence: _Optional[str] = ..., notes: _Optional[_Iterable[str]] = ..., cites: _Optional[_Iterable[int]] = ...) -> None: ...

class Paper(_message.Message):
    __slots__ = ("title", "year", "authors", "abstract", "venue", "doi", "arxiv_id", "url")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    AUTHORS_FIELD_NUMBER: _ClassVar[int]
    ABSTRACT_FIELD_NUMBER: _ClassVar[int]
    VENUE_FIELD_NUMBER: _ClassVar[int]
    DOI_FIELD_NUMBER: _ClassVar[int]
    ARXIV_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    title: str
    year: int
    authors: _containers.RepeatedScalarFieldContainer[str]
    abstract: str
    venue: str
    doi: str
    arxiv_id: str
    url: str
    def __init__(self, title: _Optional[str] = ..., year: _Optional[int] = ..., authors: _Optional[_Iterable[str]] = ..., abstract: _Optional[str] = ..., venue: _Optional[str] = ..., doi: _Optional[str] = ..., arxiv_id: _Optional[str] = ..., url: _Optional[str] = ...) -> None: ...

class FeatureStep(_message.Message):
    __slots__ = ("technique", "columns", "value", "words")
    TECHNIQUE_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    technique: Technique
    columns: _containers.RepeatedScalarFieldContainer[str]
    value: float
    words: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, technique: _Optional[_Union[Technique, str]] = ..., columns: _Optional[_Iterable[str]] = ..., value: _Optional[float] = ..., words: _Optional[_Iterable[str]] = ...) -> None: ...

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

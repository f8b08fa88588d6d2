"""Proto enum values as people read them, in reports, progress lines and summaries."""

from __future__ import annotations

import re

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from airlab.v1 import loop_pb2


def enum_words(enum: EnumTypeWrapper, value: int) -> str:
    """'awaiting approval' for IdeaStatus IDEA_STATUS_AWAITING_APPROVAL: the name less the enum's own
    prefix, lowercase, with spaces; "" for the unspecified value (0)."""
    if value == 0:
        return ""
    prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.DESCRIPTOR.name).upper() + "_"
    return enum.Name(value).removeprefix(prefix).replace("_", " ").lower()


# Who proposed an idea, and who wrote the code that ran, as the report and the dashboard say it.
IDEA_ORIGIN_WORDS = {
    loop_pb2.IDEA_ORIGIN_LLM: "idea agent (LLM)",
    loop_pb2.IDEA_ORIGIN_PORTFOLIO: "portfolio",
    loop_pb2.IDEA_ORIGIN_EXPLOIT: "exploit (more search)",
    loop_pb2.IDEA_ORIGIN_IMPROVE: "improve (the LLM changed the best code)",
    loop_pb2.IDEA_ORIGIN_PROFILE: "data profile (no LLM)",
}
CODE_WORDS = {
    loop_pb2.CODE_ORIGIN_TEMPLATE: "template",
    loop_pb2.CODE_ORIGIN_LLM: "LLM",
    loop_pb2.CODE_ORIGIN_REGISTRY: "template registry",
    loop_pb2.CODE_ORIGIN_REGISTRY_FALLBACK: "registry fallback (LLM drafts failed)",
    loop_pb2.CODE_ORIGIN_REUSED: "reused",
    loop_pb2.CODE_ORIGIN_CATALOG: "technique catalog (the idea's steps compiled)",
}

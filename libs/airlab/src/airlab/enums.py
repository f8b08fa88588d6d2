"""Proto enum values as people read them, in reports, progress lines and summaries."""

from __future__ import annotations

import re

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper


def enum_words(enum: EnumTypeWrapper, value: int) -> str:
    """'awaiting approval' for IdeaStatus IDEA_STATUS_AWAITING_APPROVAL: the name less the enum's own
    prefix, lowercase, with spaces; "" for the unspecified value (0)."""
    if value == 0:
        return ""
    prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.DESCRIPTOR.name).upper() + "_"
    return enum.Name(value).removeprefix(prefix).replace("_", " ").lower()

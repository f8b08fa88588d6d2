"""Error text fit to leave a job: bounded, and without the data values that Python and pandas quote in
their messages. A failure's text travels into events, reports and LLM prompts (which may go to a hosted
API); the values of a user's dataset must not."""

from __future__ import annotations

import re

# Messages that quote the offending value of the data: the message stays (it says what went wrong, and the
# coder needs it to repair code); the value becomes "...".
# Messages that end with the offending value (numpy writes it as np.str_('...')).
_TRAILING_VALUES = re.compile(
    r"(could not convert string to \w+: |invalid literal for \w+\(\) with base \d+: |could not convert )\S.*$"
)
# Messages that quote it in the middle (pandas, datetime).
_QUOTED_VALUES = re.compile(r"(Unable to parse string |Cannot convert |time data )(['\"]).*?\2")
REDACTED = "..."


def _hide_values(line: str) -> str:
    line = _TRAILING_VALUES.sub(lambda m: f"{m.group(1)}{REDACTED}", line)
    return _QUOTED_VALUES.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}{m.group(2)}", line)


def error_text(text: str, *, limit: int = 2000) -> str:
    """`text` with quoted data values hidden, line by line, and at most `limit` characters (the end kept:
    a traceback's last lines say what failed)."""
    hidden = "\n".join(_hide_values(line) for line in text.splitlines())
    if len(hidden) <= limit:
        return hidden
    return "[...]" + hidden[-(limit - 5) :]

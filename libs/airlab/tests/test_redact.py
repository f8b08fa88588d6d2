"""Error text that leaves a job quotes no data values and stays bounded."""

import numpy as np
import pytest

from airlab.redact import error_text


def message_of(call) -> str:
    with pytest.raises(Exception) as raised:
        call()
    return f"{type(raised.value).__name__}: {raised.value}"


@pytest.mark.parametrize(
    "call",
    [
        lambda: float("s3cr3t-cell"),
        lambda: int("s3cr3t-cell"),
        lambda: np.array(["1", "s3cr3t-cell"]).astype(float),
        lambda: np.array(["s3cr3t-cell"]).astype(np.int64),
    ],
    ids=["float", "int", "numpy-float", "numpy-int"],
)
def test_the_values_real_exceptions_quote_are_hidden_and_the_message_kept(call):
    message = message_of(call)
    assert "s3cr3t-cell" in message  # what the exception itself says
    hidden = error_text(f'Traceback (most recent call last):\n  File "train.py", line 3\n{message}')
    assert "s3cr3t-cell" not in hidden
    assert message.split(":")[0] in hidden and 'File "train.py", line 3' in hidden


def test_code_identifiers_stay_for_the_coder_and_long_text_keeps_its_end():
    text = "AttributeError: 'NoneType' object has no attribute 'fit'"
    assert error_text(text) == text
    long = "x" * 5000 + "\nValueError: the end"
    bounded = error_text(long, limit=100)
    assert len(bounded) == 100 and bounded.startswith("[...]") and bounded.endswith("ValueError: the end")

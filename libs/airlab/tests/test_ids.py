import time

import pytest

from airlab.errors import InvalidArgument
from airlab.ids import check_id, check_token, new_id


def test_ids_have_the_prefix_and_sort_by_creation_time():
    first = new_id("r")
    time.sleep(0.002)
    second = new_id("r")
    assert len(first) == 27 and first.startswith("r")
    assert first < second
    assert check_id("id", second, "r") == second


@pytest.mark.parametrize(
    "value", ["", "r", "x01m8a4ptawjxcazp75cqyc9eke", "r01M8A4PTAWJXCAZP75CQYC9EKE", "r../etc"]
)
def test_malformed_ids_are_rejected_naming_the_field(value):
    with pytest.raises(InvalidArgument) as raised:
        check_id("research_id", value, "r")
    assert str(raised.value).startswith("research_id: ")


def test_tokens_allow_only_safe_characters():
    assert check_token("request_id", "run-1.a_b") == "run-1.a_b"
    for bad in ("", "a b", "x" * 129, "a/b"):
        with pytest.raises(InvalidArgument):
            check_token("request_id", bad)

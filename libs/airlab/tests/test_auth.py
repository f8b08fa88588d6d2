"""Signed tokens and the credentials `airlab up` writes."""

import stat

import pytest

from airlab import auth
from airlab.errors import Unauthenticated

KEY = b"k" * 32


def test_a_token_names_its_principal_and_cannot_be_altered():
    token = auth.issue(KEY, "alice", "researcher")
    assert auth.verify(KEY, token) == auth.Principal("alice", "researcher")
    body, signature = token.split(".")
    promoted = auth.issue(b"x" * 32, "alice", "admin").split(".")[0]
    for bad in (f"{promoted}.{signature}", token + "x", "nonsense", "", f"{body}."):
        with pytest.raises(Unauthenticated):
            auth.verify(KEY, bad)
    with pytest.raises(Unauthenticated):
        auth.verify(b"another key, another lab.......", token)


def test_names_and_roles_are_checked_when_a_token_is_issued():
    with pytest.raises(ValueError, match="unknown role"):
        auth.issue(KEY, "alice", "root")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name"):
        auth.issue(KEY, "alice smith", "researcher")


def test_the_bearer_header_is_required_and_parsed():
    token = auth.issue(KEY, "bob", "admin")
    assert auth.principal_of([("authorization", f"Bearer {token}")], KEY).name == "bob"
    for metadata in ([], [("authorization", token)], [("x-other", "y")]):
        with pytest.raises(Unauthenticated):
            auth.principal_of(metadata, KEY)


def test_credentials_are_private_and_made_once(tmp_path):
    key_file, token = auth.ensure_credentials(tmp_path / "auth")
    again, same = auth.ensure_credentials(tmp_path / "auth")
    assert (again, same) == (key_file, token)
    for path in (key_file, tmp_path / "auth" / "token"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "auth").stat().st_mode) == 0o700
    assert auth.verify(auth.read_key(key_file), token).role == "admin"


def test_a_deployment_gives_the_key_as_hex_and_a_bad_one_is_refused(tmp_path):
    assert auth.configured_key("ab" * 32, "") == bytes.fromhex("ab" * 32)
    assert auth.configured_key("", "") is None  # auth off: tests and development only
    for bad in ("not hex", "abcd"):
        with pytest.raises(ValueError, match=r"auth\.key"):
            auth.configured_key(bad, "")

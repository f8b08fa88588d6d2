"""Signed tokens and the credentials `airlab up` writes."""

import hmac
import json
import stat
import time

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
        auth.issue(KEY, "alice", "root")
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


def test_a_token_with_a_lifetime_expires_and_its_expiry_cannot_be_removed():
    token = auth.issue(KEY, "carol", "researcher", lifetime_seconds=60)
    assert auth.verify(KEY, token).name == "carol"
    with pytest.raises(Unauthenticated, match="expired at"):
        auth.verify(KEY, token, now=time.time() + 61)
    # The expiry is signed: a body without it (or with a later one) is not the lab's token.
    signature = token.split(".")[1]
    forever = auth.issue(b"x" * 32, "carol", "researcher").split(".")[0]
    with pytest.raises(Unauthenticated, match="not one this lab issued"):
        auth.verify(KEY, f"{forever}.{signature}")
    with pytest.raises(ValueError, match="positive"):
        auth.issue(KEY, "carol", "researcher", lifetime_seconds=0)


def test_the_cli_issues_expiring_tokens_and_says_what_a_bad_lifetime_is(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from airlab.cli import app, duration_seconds

    assert (duration_seconds("90m"), duration_seconds("8h"), duration_seconds("never")) == (5400, 28800, None)
    monkeypatch.setenv("AIRLAB_AUTH__KEY", KEY.hex())
    made = CliRunner().invoke(app, ["token", "dave", "--expires", "2h", "--workspace", str(tmp_path)])
    assert made.exit_code == 0, made.output
    assert 7100 < json.loads(auth._unb64(made.output.strip().split(".")[0]))["exp"] - time.time() <= 7200
    bad = CliRunner().invoke(app, ["token", "dave", "--expires", "soon", "--workspace", str(tmp_path)])
    assert bad.exit_code == 2 and "a whole number with s, m, h or d" in bad.output


def test_a_revoked_name_or_token_is_refused_and_later_tokens_are_not(tmp_path):
    revocations = auth.Revocations(tmp_path / "revoked.json")
    old, other = auth.issue(KEY, "erin", "researcher"), auth.issue(KEY, "frank", "researcher")
    assert auth.verify(KEY, old, revocations=revocations).name == "erin"  # no file: nothing revoked
    revocations.revoke(name="erin", now=time.time() + 1)  # in the second after this token was issued
    with pytest.raises(Unauthenticated, match=r"erin's tokens issued up to .* were revoked"):
        auth.verify(KEY, old, revocations=revocations)
    assert auth.verify(KEY, other, revocations=revocations).name == "frank"
    revocations.revoke(token=other)
    with pytest.raises(Unauthenticated, match="the token was revoked"):
        auth.verify(KEY, other, revocations=revocations)
    assert stat.S_IMODE((tmp_path / "revoked.json").stat().st_mode) == 0o600
    later = json.loads(auth._unb64(old.split(".")[0])) | {"iat": int(time.time()) + 5}
    body = auth._b64(json.dumps(later).encode())
    resigned = f"{body}.{auth._b64(hmac.new(KEY, body.encode(), 'sha256').digest())}"
    assert auth.verify(KEY, resigned, revocations=revocations).name == "erin"  # issued after the revocation
    # A list that cannot be read may be revoking anyone: every token is refused, and revoke says why.
    (tmp_path / "revoked.json").write_text("{not json")
    with pytest.raises(Unauthenticated, match="revocation list cannot be read"):
        auth.verify(KEY, resigned, revocations=revocations)
    with pytest.raises(ValueError, match="fix or remove it first"):
        revocations.revoke(name="erin")

"""Who calls the lab: signed bearer tokens, one per principal, checked by every gRPC service.

A token names a principal and its role and is signed (HMAC-SHA256) with the lab's key, so any service
that holds the key checks it without a lookup. Roles:
  - researcher: their own researches only (another's answers PERMISSION_DENIED);
  - admin: every research;
  - service: one of the lab's own services (the token's name says which), calling the methods
    airlab.access gives it, never acting as a user.
`airlab up` creates the key and an admin token for the local user in the workspace (0600), and the CLI
and the Python client pick the token up, so the README's commands stay as they are. A service started
without a key (`auth.key_file` unset) answers every caller as the local admin: that is for unit tests and
single-user development only, and the service says so in its log when it starts."""

from __future__ import annotations

import base64
import contextvars
import getpass
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from airlab.errors import PermissionDenied, Unauthenticated

Role = Literal["admin", "researcher", "service"]
ROLES: tuple[Role, ...] = ("admin", "researcher", "service")
# The names a service token may carry: the lab's own services (airlab.access says what each may call).
SERVICE_NAMES = ("idea", "manager", "coder", "reviewer", "runner")
KEY_FILE = "key"
TOKEN_FILE = "token"
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role

    @property
    def sees_everything(self) -> bool:
        """Only an admin: a service token never acts as a user (airlab.access keeps it off the Lab API)."""
        return self.role == "admin"

    def may_see(self, owner: str) -> bool:
        """Whether this principal may read and act on something `owner` started."""
        return self.sees_everything or owner == self.name


# Who a call runs for: set by the gRPC server for each call; the local admin where auth is off.
LOCAL_ADMIN = Principal("local", "admin")
current: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal", default=LOCAL_ADMIN)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(key: bytes, name: str, role: Role, *, lifetime_seconds: float | None = None) -> str:
    """A token for `name` with `role`, signed with `key`; with `lifetime_seconds`, it expires that long
    from now (its "exp", Unix seconds, is signed with the rest)."""
    if not name or len(name) > 64 or not set(name) <= NAME_CHARS:
        raise ValueError("a principal's name is 1-64 characters of letters, digits and . _ - @")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if role == "service" and name not in SERVICE_NAMES:
        raise ValueError(f"a service token names one of the lab's services: {', '.join(SERVICE_NAMES)}")
    # When it was issued: a revocation of its name refuses the tokens issued up to then (Revocations).
    claims: dict[str, str | int] = {"sub": name, "role": role, "iat": int(time.time())}
    if lifetime_seconds is not None:
        if lifetime_seconds <= 0:
            raise ValueError("a token's lifetime must be positive")
        claims["exp"] = int(time.time() + lifetime_seconds)
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    return f"{body}.{signature}"


def claims_of(token: str) -> tuple[str, str]:
    """The (name, role) a token claims, without checking its signature; Unauthenticated when malformed."""
    body = token.partition(".")[0]
    try:
        claims = json.loads(_unb64(body))
        return str(claims["sub"]), claims["role"]
    except (ValueError, KeyError, TypeError):
        raise Unauthenticated("the token is malformed") from None


def claimed_name(token: str) -> str:
    """The name a token claims (not verified: for a label only, after the lab accepted the token); "" when
    it is malformed."""
    try:
        return claims_of(token)[0]
    except Unauthenticated:
        return ""


def verify(
    key: bytes, token: str, *, now: float | None = None, revocations: Revocations | None = None
) -> Principal:
    """The principal a token names. Unauthenticated when it is malformed, not signed with `key`, past its
    expiry, or revoked."""
    body, _, signature = token.partition(".")
    expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    if not body or not hmac.compare_digest(signature, expected):
        raise Unauthenticated("the token is not one this lab issued")
    name, role = claims_of(body)
    if role not in ROLES:
        raise Unauthenticated("the token names an unknown role")
    expires = json.loads(_unb64(body)).get("exp")
    if expires is not None:
        if not isinstance(expires, int | float) or isinstance(expires, bool):
            raise Unauthenticated("the token's expiry is malformed")
        if (time.time() if now is None else now) >= expires:
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expires))
            raise Unauthenticated(f"the token expired at {when}: ask for a new one ('airlab token')")
    if revocations is not None:
        issued = json.loads(_unb64(body)).get("iat", 0)
        revocations.check(token, name, issued if isinstance(issued, int | float) else 0)
    return Principal(name, role)


REVOKED_FILE = "revoked.json"


class Revocations:
    """Tokens the lab no longer accepts: a JSON file (`airlab token revoke` writes it beside the key) that
    every service reads again whenever it changed, checked on every call. {"names": {name: unix seconds}}
    refuses every token of that name issued up to then; {"tokens": [sha256 hex]} refuses those tokens.
    No file: nothing is revoked. A file that cannot be read refuses every token (it may be revoking one)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None
        self._names: dict[str, float] = {}
        self._tokens: frozenset[str] = frozenset()
        self._broken = ""

    def _load(self) -> None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            self._seen, self._names, self._tokens, self._broken = None, {}, frozenset(), ""
            return
        if self._seen == (info.st_mtime_ns, info.st_size):
            return
        try:
            data = json.loads(self.path.read_text())
            self._names = {str(k): float(v) for k, v in data.get("names", {}).items()}
            self._tokens = frozenset(str(t) for t in data.get("tokens", []))
            self._broken = ""
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            self._broken = f"the lab's revocation list cannot be read ({type(exc).__name__})"
        self._seen = (info.st_mtime_ns, info.st_size)

    def check(self, token: str, name: str, issued: float) -> None:
        self._load()
        if self._broken:
            raise Unauthenticated(self._broken)
        if hashlib.sha256(token.encode()).hexdigest() in self._tokens:
            raise Unauthenticated("the token was revoked ('airlab token revoke')")
        if name in self._names and issued <= self._names[name]:
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self._names[name]))
            raise Unauthenticated(f"{name}'s tokens issued up to {when} were revoked: ask for a new one")

    def revoke(self, *, name: str = "", token: str = "", now: float | None = None) -> None:
        """Add `name` (its tokens issued until now) or one `token` to the list, atomically, 0600."""
        self._load()
        if self._broken:
            raise ValueError(f"{self.path}: {self._broken}; fix or remove it first")
        names, tokens = dict(self._names), set(self._tokens)
        if name:
            names[name] = time.time() if now is None else now
        if token:
            tokens.add(hashlib.sha256(token.encode()).hexdigest())
        partial = self.path.with_name(self.path.name + ".part")
        write_private(partial, json.dumps({"names": names, "tokens": sorted(tokens)}, indent=1).encode())
        os.replace(partial, self.path)


def revocations_for(revoked_file: str, key_file: str) -> Revocations | None:
    """The revocation list a service checks: auth.revoked_file, else the one beside auth.key_file; None
    when there is neither (auth off, or a key given as hex with no list configured)."""
    if revoked_file:
        return Revocations(Path(revoked_file))
    return Revocations(Path(key_file).parent / REVOKED_FILE) if key_file else None


def principal_of(
    metadata: Iterable[tuple[str, str | bytes]] | None, key: bytes, revocations: Revocations | None = None
) -> Principal:
    """The caller named by the call's `authorization: Bearer <token>` metadata."""
    for name, value in metadata or ():
        if name == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise Unauthenticated("authorization must be 'Bearer <token>'")
            return verify(key, token.strip(), revocations=revocations)
    raise Unauthenticated(
        "this lab requires a token: pass 'authorization: Bearer <token>' (the CLI and airlab.client read "
        "it from AIRLAB_AUTH__TOKEN or the workspace's run/auth/token)"
    )


def require(*roles: Role) -> Principal:
    """The current caller, if its role is among `roles`; PermissionDenied otherwise."""
    principal = current.get()
    if principal.role not in roles:
        raise PermissionDenied(
            f"{principal.name} ({principal.role}) may not call this; it needs {' or '.join(roles)}"
        )
    return principal


# -- files ------------------------------------------------------------------------------------------------


def write_private(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)


def credentials_dir(workspace: Path) -> Path:
    """Where `airlab up` keeps a workspace's key and admin token."""
    return workspace / "run" / "auth"


def ensure_credentials(directory: Path) -> tuple[Path, str]:
    """The lab's key (made once) and an admin token for the local user, both 0600 in `directory`."""
    key_file, token_file = directory / KEY_FILE, directory / TOKEN_FILE
    if not key_file.is_file():
        write_private(key_file, secrets.token_bytes(32))
    key = key_file.read_bytes()
    try:
        token = token_file.read_text().strip()
        verify(key, token)
    except (OSError, Unauthenticated):
        token = issue(key, _local_user(), "admin")
        write_private(token_file, token.encode())
    return key_file, token


def _local_user() -> str:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "local"
    return "".join(c for c in name if c in NAME_CHARS) or "local"


def read_key(path: str | Path) -> bytes:
    key = Path(path).read_bytes()
    if len(key) < 16:
        raise ValueError(f"{path}: an auth key has at least 16 bytes")
    return key


def configured_key(key_hex: str, key_file: str) -> bytes | None:
    """The lab's key from the settings (auth.key as hex, else auth.key_file); None when auth is off."""
    if key_hex:
        try:
            key = bytes.fromhex(key_hex.strip())
        except ValueError:
            raise ValueError("auth.key must be hex (e.g. from 'openssl rand -hex 32')") from None
        if len(key) < 16:
            raise ValueError("auth.key has at least 16 bytes (32 hex digits)")
        return key
    return read_key(key_file) if key_file else None


def lab_key(key_hex: str, key_file: str, workspace: Path) -> bytes | None:
    """The key a command acts with: the settings' (auth.key, auth.key_file), else the one `airlab up` wrote
    in `workspace`; None when there is neither."""
    key = configured_key(key_hex, key_file)
    if key is None:
        written = credentials_dir(workspace) / KEY_FILE
        key = read_key(written) if written.is_file() else None
    return key

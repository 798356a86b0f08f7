"""Keys and signed tokens, compared in constant time; keys are never logged.

- `key`: `SCORER_API_KEY` (comma-separated for rotation), else keys generated once into
  `.scorer/keys.json` (mode 0600).
- `aml_token` / `aad_token` / `token`: `scorer token` prints `v1.<expiry>.<hmac>` signed with
  HMAC-SHA256 over `SCORER_TOKEN_SECRET` (comma-separated: the first signs, all verify).
- `none`: open, with a warning at start.
The admin key (`SCORER_ADMIN_KEY`) is checked separately by the admin routes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from scorer.environment import state_dir
from serving.errors import ScoringError

if TYPE_CHECKING:
    from scorer.spec.server import ServerSettings

TOKEN_PREFIX = "v1"
DEFAULT_MAX_TOKEN_TTL_S = 86400
_MAX_EXPIRY_DIGITS = 20  # more is malformed (int() of a long digit string is slow, then refused)


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def keys_file() -> Path:
    return state_dir() / "keys.json"


def load_or_create_keys(path: Path | None = None) -> tuple[list[str], bool]:
    """(keys, created). Creates {"primary", "secondary"} with mode 0600 when the file is missing."""
    path = path or keys_file()
    if path.is_file():
        data = json.loads(path.read_text())
        keys = [data[k] for k in ("primary", "secondary") if data.get(k)]
        if keys:
            return keys, False
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"primary": secrets.token_urlsafe(32), "secondary": secrets.token_urlsafe(32)}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.chmod(path, 0o600)
    return [data["primary"], data["secondary"]], True


def token_secrets() -> list[bytes]:
    return [s.encode() for s in _split(os.environ.get("SCORER_TOKEN_SECRET"))]


def max_token_ttl_s(configured: int | None = None) -> int:
    """How far ahead a token may expire: SCORER_MAX_TOKEN_TTL_S, else the endpoint YAML's
    `server.max_token_ttl_s`, else 24 h. ValueError for a value that is not a positive integer."""
    raw = os.environ.get("SCORER_MAX_TOKEN_TTL_S", "").strip()
    if raw:
        if not (raw.isascii() and raw.isdigit()) or len(raw) > _MAX_EXPIRY_DIGITS or int(raw) <= 0:
            raise ValueError(f"SCORER_MAX_TOKEN_TTL_S: got {raw[:40]!r}; expected a positive number of seconds")
        return int(raw)
    return int(configured) if configured else DEFAULT_MAX_TOKEN_TTL_S


def make_token(secret: bytes, ttl: int, now: float | None = None) -> str:
    expiry = int((now if now is not None else time.time()) + ttl)
    payload = f"{TOKEN_PREFIX}.{expiry}"
    sig = hmac.new(secret, payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{base64.urlsafe_b64encode(sig).decode().rstrip('=')}"


def check_token(token: str, secrets_: list[bytes], now: float | None = None,
                max_ttl: int | None = None) -> str | None:
    """None when valid, else why not (for the 401 message). A token expiring more than `max_ttl`
    seconds ahead is refused: a leaked one must not stay good for years."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not (parts[1].isascii() and parts[1].isdigit()) \
            or len(parts[1]) > _MAX_EXPIRY_DIGITS:
        return "malformed token"
    payload = f"{parts[0]}.{parts[1]}".encode()
    ok = False
    for s in secrets_:
        expected = base64.urlsafe_b64encode(hmac.new(s, payload, hashlib.sha256).digest()).decode().rstrip("=")
        ok |= hmac.compare_digest(expected.encode(), parts[2].encode())
    if not ok:
        return "invalid token signature"
    now = now if now is not None else time.time()
    expiry = int(parts[1])
    if expiry < now:
        return "token expired"
    if max_ttl is not None and expiry > now + max_ttl:
        return (f"token expires in {expiry - now:.0f} s, more than max_token_ttl_s={max_ttl} allows; "
                "make one with a shorter --ttl")
    return None


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _any_equal(candidate: str, keys: list[bytes]) -> bool:
    c = candidate.encode()
    ok = False
    for k in keys:  # no early exit: the time does not depend on which key matched
        ok |= hmac.compare_digest(c, k)
    return ok


@dataclass
class Auth:
    mode: str  # key | token | none
    keys: list[bytes]
    secrets: list[bytes]
    admin_keys: list[bytes]
    max_ttl: int = DEFAULT_MAX_TOKEN_TTL_S

    @classmethod
    def from_env(cls, auth_mode: str, server: ServerSettings | None = None) -> tuple[Auth, list[str]]:
        """(auth, lines to print once at start). `server`: the endpoint spec's server settings, if any
        (its `max_token_ttl_s`); ValueError for a bad SCORER_MAX_TOKEN_TTL_S."""
        admin = [k.encode() for k in _split(os.environ.get("SCORER_ADMIN_KEY"))]
        lines: list[str] = []
        if auth_mode == "none":
            lines.append("WARNING: auth_mode is none: anyone who can reach this port can score")
            return cls("none", [], [], admin), lines
        if auth_mode in ("aml_token", "aad_token", "token"):
            sec = token_secrets()
            if not sec:
                raise ValueError(f"auth_mode {auth_mode} needs SCORER_TOKEN_SECRET (make a token with "
                                 "`SCORER_TOKEN_SECRET=... scorer token`)")
            return cls("token", [], sec, admin, max_token_ttl_s(getattr(server, "max_token_ttl_s", None))), lines
        env = _split(os.environ.get("SCORER_API_KEY"))
        if env:
            return cls("key", [k.encode() for k in env], [], admin), lines
        keys, created = load_or_create_keys()
        if created:
            lines.append(f"generated API keys in {keys_file()} (mode 0600); primary key: {keys[0]}")
        return cls("key", [k.encode() for k in keys], [], admin), lines

    def check(self, authorization: str | None) -> None:
        if self.mode == "none":
            return
        value = _bearer(authorization)
        if value is None:
            raise ScoringError(401, "missing credentials: send 'Authorization: Bearer <key or token>'",
                               headers={"WWW-Authenticate": "Bearer"})
        if self.mode == "key":
            if not _any_equal(value, self.keys):
                raise ScoringError(401, "invalid key", headers={"WWW-Authenticate": "Bearer"})
            return
        why = check_token(value, self.secrets, max_ttl=self.max_ttl)
        if why:
            raise ScoringError(401, why, headers={"WWW-Authenticate": "Bearer"})

    def check_admin(self, authorization: str | None) -> None:
        if not self.admin_keys:
            raise ScoringError(403, "the admin API is off: set SCORER_ADMIN_KEY to enable it",
                               code="PERMISSION_DENIED")
        value = _bearer(authorization)
        if value is None or not _any_equal(value, self.admin_keys):
            raise ScoringError(401, "missing or invalid admin key", headers={"WWW-Authenticate": "Bearer"})

"""The server's limits as numbers: the endpoint's `server:` block, overridden by environment variables.

One `Limits` is built at start and shared by the HTTP protocol (deadlines, connection and header
caps, buffered bytes) and the router (body size, body deadline).
"""

from __future__ import annotations

import itertools
import logging
import os
import resource
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scorer.spec.server import ServerSettings

log = logging.getLogger("scorer.router")

# field -> environment variable that overrides the YAML value
ENV = {
    "first_byte_timeout_s": "SCORER_FIRST_BYTE_TIMEOUT_S",
    "header_timeout_s": "SCORER_HEADER_TIMEOUT_S",
    "body_timeout_s": "SCORER_BODY_TIMEOUT_S",
    "max_connections": "SCORER_MAX_CONNECTIONS",
    "max_header_bytes": "SCORER_MAX_HEADER_BYTES",
    "max_headers": "SCORER_MAX_HEADERS",
    "max_body_bytes": "SCORER_MAX_BODY_BYTES",
    "max_buffered_bytes": "SCORER_MAX_BUFFERED_BYTES",
    "max_token_ttl_s": "SCORER_MAX_TOKEN_TTL_S",
    "refusal_pause_s": "SCORER_REFUSAL_PAUSE_S",
}
MAX_REQUEST_ID = 128  # characters of a client's x-request-id kept; longer ones are cut to this


@dataclass(frozen=True)
class Limits:
    """The numbers in force. The defaults live in one place, `scorer.spec.server.ServerSettings`:
    built only through `resolve`."""

    first_byte_timeout_s: float
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int
    max_header_bytes: int
    max_headers: int
    max_body_bytes: int
    max_buffered_bytes: int
    max_token_ttl_s: int
    refusal_pause_s: float
    certfile: Path | None = None
    keyfile: Path | None = None

    @classmethod
    def resolve(cls, server: ServerSettings | None = None, env: dict[str, str] | None = None) -> Limits:
        """The `server:` block (a ServerSettings, or None for defaults) with environment overrides.

        Raises ValueError naming the variable when an override is not a positive number."""
        from scorer.spec.server import ServerSettings

        env = dict(os.environ) if env is None else env
        server = server if server is not None else ServerSettings()
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in ENV:
                values[f.name] = getattr(server, f.name)
                raw = env.get(ENV[f.name], "").strip()
                if raw:
                    values[f.name] = _number(ENV[f.name], raw, float if f.name.endswith("_s") else int,
                                             zero_ok=f.name == "refusal_pause_s")
        tls = getattr(server, "tls", None)
        if tls is not None:
            values["certfile"], values["keyfile"] = Path(tls.certfile), Path(tls.keyfile)
        return cls(**values)

    def with_tls(self, certfile: str | None, keyfile: str | None) -> Limits:
        """Command-line TLS files win over the YAML's."""
        if not certfile and not keyfile:
            return self
        if not (certfile and keyfile):
            raise ValueError("TLS needs both --ssl-certfile and --ssl-keyfile")
        return replace(self, certfile=Path(certfile), keyfile=Path(keyfile))

    def check_tls(self) -> str | None:
        """Why the TLS files cannot be used (one line), or None."""
        for what, path in (("certificate", self.certfile), ("key", self.keyfile)):
            if path is not None and not path.is_file():
                return f"TLS {what} file not found: {path}"
        return None


def _number(name: str, raw: str, kind: type, zero_ok: bool = False) -> float | int:
    expected = f"expected a {'non-negative' if zero_ok else 'positive'} {'number' if kind is float else 'integer'}"
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: {expected}") from None
    if value < 0 or (value == 0 and not zero_ok):
        raise ValueError(f"{name}={raw!r}: {expected}")
    return value  # type: ignore[no-any-return]


def raise_fd_limit() -> int:
    """Raise the soft open-files limit to the hard limit: each connection holds one descriptor, and
    the connection cap is only reachable if the process may open that many. Returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-files limit from %d to %d: %s", soft, hard, exc)
    return soft


def new_request_id() -> str:
    """The id of a request that came without an x-request-id: 32 hex digits, a random prefix per
    process and a count. uuid4 asked the kernel for randomness on every request."""
    return f"{_rid_prefix}{next(_rid_count):016x}"


def _reseed() -> None:
    global _rid_prefix, _rid_count
    _rid_prefix, _rid_count = os.urandom(8).hex(), itertools.count()


_rid_prefix, _rid_count = "", itertools.count()
_reseed()
os.register_at_fork(after_in_child=_reseed)


def request_id(value: str | None) -> str | None:
    """A client's x-request-id, cut to MAX_REQUEST_ID characters (None when absent or empty)."""
    if not value:
        return None
    return value if len(value) <= MAX_REQUEST_ID else value[:MAX_REQUEST_ID]

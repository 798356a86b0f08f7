"""The endpoint's `server:` block: limits of the one HTTP server in front of the replicas.

Every connection is bounded (deadlines for the request head and body, caps on connections, header
size and buffered request bytes). Environment variables override these values at start
(`serving/limits.py` names them); docs/serving.md has the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class TlsSettings(_Strict):
    """PEM certificate (chain) and private key: the client port serves HTTPS when both are given."""

    certfile: Path
    keyfile: Path

    @field_validator("certfile", "keyfile", mode="before")
    @classmethod
    def _resolve(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str | Path) or not str(value).strip():
            raise ValueError("expected a file path")
        path = Path(str(value).strip()).expanduser()
        base = Path((info.context or {}).get("base_dir", "."))
        return path if path.is_absolute() else (base / path).resolve()


class ServerSettings(_Strict):
    first_byte_timeout_s: PositiveFloat = 5.0
    """A new (or idle keep-alive) connection must start a request within this."""
    header_timeout_s: PositiveFloat = 10.0
    """The whole request head within this, from its first byte."""
    body_timeout_s: PositiveFloat = 30.0
    """The whole body within this, from the end of the head; else 408 and close."""
    max_connections: PositiveInt = 10000
    """At the cap the longest-idle connection without a request head is closed."""
    max_header_bytes: PositiveInt = 65536
    """Request line and headers together; 431 above."""
    max_headers: PositiveInt = 100
    """Header fields in one request; 431 above."""
    max_body_bytes: PositiveInt = 10 * 1024 * 1024
    """413 above."""
    max_buffered_bytes: PositiveInt = 256 * 1024 * 1024
    """Request bytes held by the server at once; 429 above."""
    refusal_pause_s: Annotated[float, Field(ge=0)] = 1.0
    """A kept-alive connection refused 401/429/503 from its head is not read again for this long."""
    max_token_ttl_s: PositiveInt = 86400
    """Signed tokens expiring later than this are refused."""
    tls: TlsSettings | None = None

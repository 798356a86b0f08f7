"""Reading a request body within its bounds: bytes (413), time (408) and encoding (415)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from starlette.requests import ClientDisconnect, Request

from serving.errors import ScoringError
from serving.limits import Limits

DEFAULT_MAX_BODY = 10 * 1024 * 1024
# ASGI scope key the client port sets once a request's whole body is in (serving/connection.py):
# reading it then cannot wait, so it needs no timer
BODY_IN = "scorer.body_in"


@dataclass(frozen=True)
class Settings:
    max_body_bytes: int = DEFAULT_MAX_BODY
    body_timeout_s: float = 30.0  # the whole body within this, else 408 and close
    timing_header: bool = False  # x-scorer-timing on answers (SCORER_TIMING_HEADER=1), for measuring

    @classmethod
    def from_env(cls, limits: Limits | None = None) -> Settings:
        limits = limits or Limits.resolve()
        return cls(max_body_bytes=limits.max_body_bytes, body_timeout_s=limits.body_timeout_s,
                   timing_header=os.environ.get("SCORER_TIMING_HEADER", "") in ("1", "true"))


class ClientGone(ScoringError):
    """The client closed the connection before its body was in: nobody to answer, nothing to log but
    one INFO line. Status 499 (nginx's "client closed request") appears in metrics and the access log."""

    def __init__(self, message: str) -> None:
        super().__init__(499, message, "CLIENT_CLOSED_REQUEST")


def client_address(request: Request) -> str:
    client = request.client
    return f"{client.host}:{client.port}" if client else "-"


async def read_body(request: Request, settings: Settings) -> bytes:
    """The whole body, within max_body_bytes (413) and body_timeout_s (408, connection closed).

    Compressed bodies are refused (415): a small gzip body can inflate without bound."""
    headers = request.headers
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise ScoringError(415, f"Content-Encoding {encoding!r} is not supported; send the body uncompressed")
    limit = settings.max_body_bytes
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ScoringError(413, f"request body of {declared} bytes is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    if request.scope.get(BODY_IN):
        message = await request.receive()
        if message["type"] != "http.request":
            raise ClientGone(f"client {client_address(request)} closed the connection")
        chunk: bytes = message.get("body", b"")
        if len(chunk) > limit:
            raise ScoringError(413, f"request body is over the limit of {limit} bytes")
        if not message.get("more_body"):
            return chunk
        chunks, size = [chunk], len(chunk)
    try:
        async with asyncio.timeout(settings.body_timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ScoringError(413, f"request body is over the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise ScoringError(408, f"request body not received within body_timeout_s="
                           f"{settings.body_timeout_s:g} ({size} bytes in)",
                           headers={"Connection": "close"}) from None
    except ClientDisconnect:  # not an error: the access log's status=499 line records it
        raise ClientGone(f"client {client_address(request)} closed the connection after {size} bytes of the body") \
            from None
    return b"".join(chunks)

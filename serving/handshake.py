"""The first bytes on a frame connection over TCP: both ends prove they hold the endpoint's secret.

The replica speaks first: a magic line and a random challenge. The router answers with
HMAC-SHA256(secret, "router" + challenge) and its own challenge; the replica checks it (a wrong or
slow answer, or garbage, closes the connection before any frame is read), then answers with
HMAC-SHA256(secret, "replica" + router's challenge), which the router checks in turn. The secret
never crosses the wire. Frames after the handshake are not encrypted: bind replicas to a
cluster-internal address.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets

MAGIC = b"SCORER-FRAMES/1\n"
NONCE = 32
DIGEST = 32
TIMEOUT_S = 5.0  # the whole handshake, either side


class HandshakeFailed(Exception):
    """The other end does not hold the secret, is not a scorer peer, or was too slow."""


def _mac(secret: bytes, role: bytes, nonce: bytes) -> bytes:
    return hmac.new(secret, role + nonce, hashlib.sha256).digest()


async def _read(reader: asyncio.StreamReader, n: int) -> bytes:
    try:
        return await reader.readexactly(n)
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise HandshakeFailed(f"connection closed during the handshake: {exc}") from None


async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, secret: bytes,
                 timeout: float = TIMEOUT_S) -> None:
    """The replica's side; raises HandshakeFailed (the caller closes the connection)."""
    challenge = secrets.token_bytes(NONCE)
    writer.write(MAGIC + challenge)
    try:
        async with asyncio.timeout(timeout):
            answer = await _read(reader, DIGEST)
            theirs = await _read(reader, NONCE)
    except TimeoutError:
        raise HandshakeFailed(f"no answer to the challenge within {timeout:g}s") from None
    if not hmac.compare_digest(answer, _mac(secret, b"router", challenge)):
        raise HandshakeFailed("wrong answer to the challenge (another secret, or not a scorer router)")
    writer.write(_mac(secret, b"replica", theirs))
    await writer.drain()


async def connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, secret: bytes,
                  timeout: float = TIMEOUT_S) -> None:
    """The router's side; raises HandshakeFailed (the caller closes the connection)."""
    try:
        async with asyncio.timeout(timeout):
            magic = await _read(reader, len(MAGIC))
            if magic != MAGIC:
                raise HandshakeFailed(f"not a scorer replica (it sent {magic[:16]!r})")
            challenge = await _read(reader, NONCE)
            mine = secrets.token_bytes(NONCE)
            writer.write(_mac(secret, b"router", challenge) + mine)
            proof = await _read(reader, DIGEST)
    except TimeoutError:
        raise HandshakeFailed(f"handshake not done within {timeout:g}s") from None
    if not hmac.compare_digest(proof, _mac(secret, b"replica", mine)):
        raise HandshakeFailed("the replica does not hold the endpoint's secret")

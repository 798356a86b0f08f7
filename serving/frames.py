"""Router <-> replica frames, independent of the socket kind (Unix socket today, TCP later).

A frame is `>II` (total length after these 8 bytes, header length) + an orjson header + raw
payload bytes. The header carries `id`, so one connection multiplexes many requests; the payload
is the HTTP body (requests) or the encoded answer (replies), never re-encoded.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import orjson

PREFIX = struct.Struct(">II")
MAX_FRAME = 1 << 30


def encode(header: dict[str, Any], payload: bytes = b"") -> bytes:
    h = orjson.dumps(header)
    return PREFIX.pack(len(h) + len(payload), len(h)) + h + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[dict[str, Any], bytes]:
    """One frame; raises asyncio.IncompleteReadError at EOF."""
    prefix = await reader.readexactly(PREFIX.size)
    total, hlen = PREFIX.unpack(prefix)
    if total > MAX_FRAME or hlen > total:
        raise ValueError(f"bad frame: total={total} header={hlen}")
    data = await reader.readexactly(total)
    return orjson.loads(data[:hlen]), data[hlen:]

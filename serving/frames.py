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


class FrameWriter:
    """Frames written in one turn of the event loop leave in one write. Under load the router
    forwards many requests, and a replica answers a whole batch, in the same turn: one system call
    instead of one per frame (each wakes the other end). A lone frame waits one turn, microseconds."""

    __slots__ = ("writer", "parts", "scheduled", "loop")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.parts: list[bytes] = []
        self.scheduled = False
        self.loop = asyncio.get_running_loop()

    def write(self, frame: bytes) -> None:
        self.parts.append(frame)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        parts, self.parts = self.parts, []
        if parts and not self.writer.is_closing():
            self.writer.writelines(parts)

    def buffered(self) -> int:
        """Bytes not yet taken by the socket (held here or in the transport)."""
        return sum(map(len, self.parts)) + self.writer.transport.get_write_buffer_size()

"""The router's end of one replica connection: many requests multiplexed by id over one stream
(a Unix socket for the local handle; any stream for others)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
from collections.abc import Callable
from typing import Any

from serving import frames
from serving.replicas.handle import ReplicaGone

log = logging.getLogger("scorer.router")


class ReplicaConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 on_close: Callable[[], None]) -> None:
        self.reader = reader
        self.writer = writer
        self.on_close = on_close
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[tuple[dict[str, Any], bytes]]] = {}
        self.abandoned: dict[int, float] = {}  # timed-out requests the replica may still be running
        self.closed = False
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def open_unix(cls, path: str, on_close: Callable[[], None]) -> ReplicaConnection:
        reader, writer = await asyncio.open_unix_connection(path, limit=1 << 24)
        return cls(reader, writer, on_close)

    @classmethod
    async def open_tcp(cls, host: str, port: int, on_close: Callable[[], None]) -> ReplicaConnection:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 24)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer, on_close)

    @property
    def outstanding(self) -> int:
        return len(self.pending) + len(self.abandoned)

    async def call(self, header: dict[str, Any], payload: bytes = b"") -> tuple[dict[str, Any], bytes]:
        """Send one request and wait for its answer. Raises ReplicaGone; cancellation (the router's
        timeout) leaves the id in `abandoned` until the replica answers it or is killed."""
        if self.closed:
            raise ReplicaGone("connection closed")
        rid = next(self.ids)
        fut: asyncio.Future[tuple[dict[str, Any], bytes]] = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        header["id"] = rid
        self.writer.write(frames.encode(header, payload))
        try:
            return await fut
        except asyncio.CancelledError:
            if self.pending.pop(rid, None) is not None:
                self.abandoned[rid] = asyncio.get_running_loop().time()
                if not self.closed:  # a request still queued in the replica is dropped there
                    self.writer.write(frames.encode({"id": 0, "op": "cancel", "target": rid}))
            raise
        finally:
            self.pending.pop(rid, None)

    def still_running(self, since: float) -> bool:
        """Is a request abandoned at or before `since` still unanswered?"""
        return any(t <= since for t in self.abandoned.values())

    async def _read(self) -> None:
        try:
            while True:
                header, payload = await frames.read_frame(self.reader)
                rid = header.get("id")
                fut = self.pending.pop(rid, None) if rid is not None else None
                if fut is None:
                    self.abandoned.pop(rid, None)  # type: ignore[arg-type]
                elif not fut.done():
                    fut.set_result((header, payload))
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError):
            pass
        finally:
            self.closed = True
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(ReplicaGone("replica connection closed"))
            self.pending.clear()
            self.abandoned.clear()
            with contextlib.suppress(Exception):
                self.writer.close()
            self.on_close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()

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

from serving import frames, handshake
from serving.replicas.handle import ReplicaGone

log = logging.getLogger("scorer.router")


class ReplicaConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 on_close: Callable[[], None]) -> None:
        self.reader = reader
        self.writer = writer
        self.out = frames.FrameWriter(writer)
        self.on_close = on_close
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[tuple[dict[str, Any], bytes]]] = {}
        self.abandoned: dict[int, float] = {}  # timed-out requests the replica may still be running
        self.closed = False
        self.close_reason: str | None = None
        self.loop = asyncio.get_running_loop()  # kept: on Python 3.11 each lookup is a getpid() system call
        self.last_heard = self.loop.time()
        self.pinging = False
        self.kept_silent = False
        self.heartbeat: asyncio.Task[None] | None = None
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def open_unix(cls, path: str, on_close: Callable[[], None]) -> ReplicaConnection:
        reader, writer = await asyncio.open_unix_connection(path, limit=1 << 24)
        return cls(reader, writer, on_close)

    @classmethod
    async def open_tcp(cls, host: str, port: int, on_close: Callable[[], None], secret: bytes,
                       unresponsive_s: float | None = None, timeout: float = handshake.TIMEOUT_S,
                       others_ready: Callable[[], bool] = lambda: True) -> ReplicaConnection:
        """A replica on another host: TCP, the handshake on `secret` first (HandshakeFailed, or
        OSError when it cannot be reached), then frames. With `unresponsive_s`, a replica that
        answers nothing (not even a ping) for that long is taken as gone: the connection closes and
        its requests fail with ReplicaGone, so that the balancer retries them elsewhere."""
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, limit=1 << 24)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await handshake.connect(reader, writer, secret, timeout)
        except BaseException:
            writer.close()
            raise
        conn = cls(reader, writer, on_close)
        if unresponsive_s is not None:
            conn.watch(unresponsive_s, others_ready)
        return conn

    def watch(self, unresponsive_s: float, others_ready: Callable[[], bool] = lambda: True) -> None:
        """Ping every quarter of `unresponsive_s`; close when nothing was heard for `unresponsive_s`,
        unless bytes wait unread (the router's loop is what was slow) or no other replica of the
        deployment is ready (then silence alone does not drop it: a closed socket or Ray does)."""
        async def heartbeat() -> None:
            loop = asyncio.get_running_loop()
            while not self.closed:
                slept = loop.time()
                await asyncio.sleep(unresponsive_s / 4)
                if self.closed:
                    return
                # this loop itself stalled (a busy router): answers may sit unread in the socket,
                # so judge the replica only after the reader had a turn
                stalled = loop.time() - slept > unresponsive_s / 2
                if getattr(self.reader, "_buffer", b""):  # answers arrived and wait for the reader: not silent
                    self.last_heard = loop.time()
                silent = loop.time() - self.last_heard
                if not stalled and silent > unresponsive_s:
                    if others_ready():
                        log.warning("replica connection: nothing heard for %.1fs; taking the replica as gone",
                                    silent)
                        self.lost("unresponsive")
                        return
                    if not self.kept_silent:
                        log.warning("replica connection: nothing heard for %.1fs, but it is the deployment's "
                                    "last ready replica: keeping it until it answers or its connection closes",
                                    silent)
                        self.kept_silent = True
                elif silent <= unresponsive_s:
                    self.kept_silent = False
                if not self.pinging:
                    self.pinging = True
                    self.out.write(frames.encode({"id": 0, "op": "ping"}))

        self.heartbeat = asyncio.create_task(heartbeat())

    def lost(self, reason: str) -> None:
        """Give up on the replica now: pending requests fail with ReplicaGone, on_close runs."""
        self.close_reason = reason
        self.task.cancel()

    @property
    def outstanding(self) -> int:
        return len(self.pending) + len(self.abandoned)

    async def call(self, header: dict[str, Any], payload: bytes = b"") -> tuple[dict[str, Any], bytes]:
        """Send one request and wait for its answer. Raises ReplicaGone; cancellation (the router's
        timeout) leaves the id in `abandoned` until the replica answers it or is killed."""
        if self.closed:
            raise ReplicaGone("connection closed")
        rid = next(self.ids)
        fut: asyncio.Future[tuple[dict[str, Any], bytes]] = self.loop.create_future()
        self.pending[rid] = fut
        header["id"] = rid
        self.out.write(frames.encode(header, payload))
        try:
            return await fut
        except asyncio.CancelledError:
            if self.pending.pop(rid, None) is not None:
                self.abandoned[rid] = self.loop.time()
                if not self.closed:  # a request still queued in the replica is dropped there
                    self.out.write(frames.encode({"id": 0, "op": "cancel", "target": rid}))
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
                self.last_heard = self.loop.time()
                rid = header.get("id")
                if rid == 0:  # a heartbeat's answer
                    self.pinging = False
                    continue
                fut = self.pending.pop(rid, None) if rid is not None else None
                if fut is None:
                    self.abandoned.pop(rid, None)  # type: ignore[arg-type]
                elif not fut.done():
                    fut.set_result((header, payload))
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError, asyncio.CancelledError):
            pass
        finally:
            if self.heartbeat is not None:
                self.heartbeat.cancel()
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


class FramedHandle:
    """The half of a ReplicaHandle that a frame connection gives: call, ping and the bookkeeping.
    A handle class adds start, kill, close and exit_code for its own kind of process."""

    _conn: ReplicaConnection | None = None

    async def call(self, header: dict[str, Any], body: bytes = b"") -> tuple[dict[str, Any], bytes]:
        conn = self._conn
        if conn is None:
            raise ReplicaGone("replica not started")
        return await conn.call(header, body)

    async def ping(self, op: str) -> bool:
        try:
            header, _ = await self.call({"op": op})
        except ReplicaGone:
            return False
        return bool(header.get("status") == 200)

    @property
    def outstanding(self) -> int:
        return self._conn.outstanding if self._conn is not None else 0

    @property
    def alive(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def still_running(self, since: float) -> bool:
        return self._conn is not None and self._conn.still_running(since)

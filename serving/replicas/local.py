"""The local ReplicaHandle: a forkserver child on this machine, reached over a Unix socket.

The child reports `("ready", info)` or `("error", one_line)` on a status pipe and exits when the
router's end of that pipe closes, so a router that dies takes its replicas with it.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from serving.replicas.connection import FramedHandle, ReplicaConnection
from serving.replicas.forkserver import context
from serving.replicas.handle import HandleOptions, Started, StartFailed
from serving.worker.config import ReplicaConfig
from serving.worker.main import replica_main

_socket_dir: str | None = None


def socket_dir() -> str:
    """One folder of sockets per router process, removed when it exits."""
    global _socket_dir
    if _socket_dir is None:
        _socket_dir = tempfile.mkdtemp(prefix="scorer-")
        atexit.register(shutil.rmtree, _socket_dir, True)
    return _socket_dir


class LocalReplica(FramedHandle):
    def __init__(self, cfg: ReplicaConfig, index: int, options: HandleOptions) -> None:
        self.cfg = cfg
        self.index = index
        self.options = options
        self.on_lost: Callable[[], None] = lambda: None
        # unique per start: a reload's new deployment may reuse the name while the old one drains
        self.path = os.path.join(socket_dir(), f"{cfg.deployment[:40]}-{index}-{uuid.uuid4().hex[:8]}.sock")
        self._process: BaseProcess | None = None
        self._status: Connection | None = None
        self._conn: ReplicaConnection | None = None
        self._closing = False

    # -- ReplicaHandle ------------------------------------------------------------------------
    async def start(self) -> Started:
        loop = asyncio.get_running_loop()
        ctx = context()
        parent, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=replica_main, args=(self.cfg, self.path, child),  # type: ignore[attr-defined]
                           name=f"scorer-replica-{self.cfg.deployment}-{self.index}", daemon=False)
        await loop.run_in_executor(None, proc.start)
        child.close()
        self._process, self._status = proc, parent
        msg = await loop.run_in_executor(None, self._wait_status, proc, parent)
        if msg[0] != "ready":
            await self._reap()
            raise StartFailed(f"deployment {self.cfg.deployment}: {msg[1]}")
        try:
            self._conn = await ReplicaConnection.open_unix(self.path, self._closed)
        except OSError as exc:
            proc.kill()
            await self._reap()
            raise StartFailed(f"deployment {self.cfg.deployment}: cannot connect to replica: {exc}") from None
        info = msg[1]
        return Started(proc.pid, info.get("load_s", 0.0), info.get("warm_s", 0.0))

    def kill(self, reason: str) -> None:
        if self._process is not None:
            with contextlib.suppress(Exception):
                self._process.kill()

    async def close(self) -> None:
        self._closing = True
        if self._conn is not None:
            self._conn.close()
        await self._reap()

    def exit_code(self) -> int | None:
        return self._process.exitcode if self._process is not None else None

    # -- process ------------------------------------------------------------------------------
    def _closed(self) -> None:
        if not self._closing:
            self.on_lost()

    def _wait_status(self, proc: BaseProcess, parent: Connection) -> tuple[str, Any]:
        deadline = time.monotonic() + self.options.start_timeout_s
        while time.monotonic() < deadline:
            try:
                if parent.poll(0.05):
                    return parent.recv()  # type: ignore[no-any-return]
            except (EOFError, OSError):
                return ("error", f"replica exited during start (exit code {proc.exitcode})")
            if not proc.is_alive():
                with contextlib.suppress(EOFError, OSError):
                    if parent.poll(0):
                        return parent.recv()  # type: ignore[no-any-return]
                return ("error", f"replica exited during start (exit code {proc.exitcode})")
        proc.kill()
        return ("error", f"replica not ready after {self.options.start_timeout_s:.0f}s")

    async def _reap(self) -> None:
        """Close the status pipe (the replica exits), wait for it, kill it if it lingers."""
        if self._status is not None:
            with contextlib.suppress(Exception):
                self._status.close()
        proc = self._process
        if proc is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, proc.join, 5)
            if proc.is_alive():
                proc.kill()
                await loop.run_in_executor(None, proc.join, 2)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def local_handle(cfg: ReplicaConfig, index: int, options: HandleOptions) -> LocalReplica:
    """The default HandleFactory."""
    return LocalReplica(cfg, index, options)

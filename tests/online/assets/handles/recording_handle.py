"""A third-party ReplicaHandle, for the tests and as the example in docs/serving.md: the local
handle, wrapped so that it records each start, kill and close to the file named by the
deployment's RECORD_FILE environment variable. Used as `replica_handle: python:recording_handle:factory`
with this folder on PYTHONPATH."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from serving.replicas.handle import HandleOptions, Header, ReplicaHandle, Started
from serving.replicas.local import local_handle
from serving.worker.config import ReplicaConfig


class RecordingHandle:
    """Everything is the inner handle's; this one only writes a line per lifecycle event."""

    def __init__(self, inner: ReplicaHandle, record: Path, index: int) -> None:
        self.inner, self.record, self.index = inner, record, index

    @property
    def on_lost(self) -> Callable[[], None]:
        return self.inner.on_lost

    @on_lost.setter
    def on_lost(self, callback: Callable[[], None]) -> None:
        self.inner.on_lost = callback  # the supervisor sets it; the inner handle calls it

    def _note(self, event: str) -> None:
        with self.record.open("a") as f:
            f.write(f"{event} {self.index}\n")

    async def start(self) -> Started:
        self._note("start")
        started = await self.inner.start()
        return Started(started.pid, started.load_s, started.warm_s, where="recorded")

    async def call(self, header: Header, body: bytes = b"") -> tuple[Header, bytes]:
        return await self.inner.call(header, body)

    async def ping(self, op: str) -> bool:
        return await self.inner.ping(op)

    def kill(self, reason: str) -> None:
        self._note(f"kill:{reason}")
        self.inner.kill(reason)

    async def close(self) -> None:
        self._note("close")
        await self.inner.close()

    @property
    def outstanding(self) -> int:
        return self.inner.outstanding

    @property
    def alive(self) -> bool:
        return self.inner.alive

    def still_running(self, since: float) -> bool:
        return self.inner.still_running(since)

    def exit_code(self) -> int | None:
        return self.inner.exit_code()


def factory(cfg: ReplicaConfig, index: int, options: HandleOptions) -> ReplicaHandle:
    """The HandleFactory named in the deployment's YAML."""
    return RecordingHandle(local_handle(cfg, index, options), Path(cfg.environment["RECORD_FILE"]), index)

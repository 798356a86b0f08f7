"""What the supervisor and the balancer know of a replica: a `ReplicaHandle`, wherever it runs.

A handle is one replica process (or actor, or pod) and the connection to it. The supervisor
starts, probes, kills and closes handles; the balancer calls them. Neither knows the transport:
the local handle (`serving/replicas/local.py`) is a forkserver child on a Unix socket; another
host, a Ray actor or a pod is one more class with these methods, plugged in through a
deployment's `replica_handle: python:MODULE:CALLABLE` (`serving/replicas/factory.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from serving.worker.config import ReplicaConfig

Header = dict[str, Any]


class ReplicaGone(Exception):
    """The replica went away (died, was killed, its connection closed) before it answered."""


class StartFailed(Exception):
    """The replica did not come up (the message is one line, for the log and the admin document)."""


@dataclass(frozen=True)
class Started:
    """What a replica reports once it is ready to take requests."""

    pid: int | None
    load_s: float = 0.0
    warm_s: float = 0.0
    where: str = ""  # a node address or pod name, shown in the admin document


@runtime_checkable
class ReplicaHandle(Protocol):
    """One replica. `call` multiplexes many requests; `header` carries `op` ("score", "ping",
    "ready") and for scoring `ct` and `ms` (the remaining budget in ms: a replica drops work
    whose budget is spent). `on_lost` is called once when the replica goes away for any reason
    other than `close()`."""

    on_lost: Callable[[], None]

    async def start(self) -> Started:
        """Start and wait until ready (or raise StartFailed)."""
        ...

    async def call(self, header: Header, body: bytes = b"") -> tuple[Header, bytes]:
        """One request; raises ReplicaGone. Cancelled (the router's deadline): the replica may go on
        running it; `still_running` tells."""
        ...

    async def ping(self, op: str) -> bool:
        """A liveness ("ping") or readiness ("ready") probe: True when the replica answered 200."""
        ...

    def kill(self, reason: str) -> None:
        """Stop it now, whatever it is doing (a stuck request, a failed liveness probe)."""
        ...

    async def close(self) -> None:
        """Stop it gracefully (nothing in flight) and release what it holds; `on_lost` is not called."""
        ...

    @property
    def outstanding(self) -> int:
        """Requests sent and not answered, including those the router gave up on."""
        ...

    @property
    def alive(self) -> bool:
        """The connection is open: calls can be made."""
        ...

    def still_running(self, since: float) -> bool:
        """Is a request the router gave up on at or before `since` (loop time) still unanswered?"""
        ...

    def exit_code(self) -> int | None:
        """The process's exit code once it is gone (None if unknown or still running)."""
        ...


@dataclass(frozen=True)
class HandleOptions:
    """What every handle of a deployment shares (the factory's third argument)."""

    start_timeout_s: float = 300.0
    extra: dict[str, Any] = field(default_factory=dict)  # the factory's own settings, if any
    # the deployment's usable replicas now: a handle may keep a silent replica that is the last one
    # (silence can be the router's own busy loop; dropping the last replica fails every request)
    ready_count: Callable[[], int] = field(default=lambda: 0, compare=False, repr=False)


HandleFactory = Callable[[ReplicaConfig, int, HandleOptions], ReplicaHandle]
"""(the replica's config, its index in the deployment, options) -> a handle not yet started."""

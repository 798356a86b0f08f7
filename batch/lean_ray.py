"""A local Ray of the job's own, started without the processes a one-node batch job never uses.

`ray.init(include_dashboard=False)` still starts three Python processes a local job has no use for:
the dashboard's API server (with only its usage-stats module; `ray.init` waits until it has
registered), the autoscaler monitor (a fixed one-node cluster has nothing to scale) and, when logs
are not sent to the driver, the log monitor. On a 2-core laptop they cost about 2 CPU-seconds and
1-2 s of `ray.init` (docs/performance.md). Ray has no switch for them, so they are skipped by
standing in for their start-up functions during this one `ray.init`; a Ray whose internals differ
starts them as before, and `SCORER_BATCH_LEAN_RAY=0` starts them all. Nothing here applies to a job
that joins a cluster (`--address`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("scorer.batch")

# Ray's processes connect to the object store's socket with up to 10 tries 1 s apart; the raylet's
# own first try often comes a moment before the store thread has opened it, which costs `ray.init` a
# whole second. The same 10 s budget in 100 ms steps (docs/performance.md).
QUICK_CONNECT: dict[str, int] = {"raylet_client_connect_timeout_milliseconds": 100,
                                 "raylet_client_num_connect_attempts": 100}
# how long the prompt lookup asks before it hands over to Ray's own wait (which then allows its
# usual 30 s): a raylet that never registers is reported at most this much later than before
NODE_WAIT_S = 10.0


def lean_wanted() -> bool:
    """`SCORER_BATCH_LEAN_RAY=0` starts a local Ray exactly as `ray.init` does (every process, Ray's
    own connection timing): for a Ray version the stand-ins do not suit, or to compare."""
    return os.environ.get("SCORER_BATCH_LEAN_RAY", "1").strip() != "0"


@contextlib.contextmanager
def local_start(debug: bool) -> Iterator[dict[str, Any]]:
    """For the block, the stand-ins of `without_unused_processes`; yields the extra `ray.init`
    arguments of a job's own local Ray (none, and no stand-ins, with SCORER_BATCH_LEAN_RAY=0)."""
    if not lean_wanted():
        yield {}
        return
    with without_unused_processes(keep_log_monitor=debug) as stood_in:
        log.debug("local Ray starts with stand-ins for %s", ", ".join(stood_in) or "nothing")
        yield {"_system_config": dict(QUICK_CONNECT)}


def _skip(_original: Any) -> Any:
    return lambda *_args, **_kwargs: None


def _no_api_server(_original: Any) -> Any:
    return lambda *_args, **_kwargs: (None, None)  # (dashboard url, process): Ray waits for neither


def _prompt(get_node: Any) -> Any:
    """Ray's wait for the new raylet to register asks the GCS once a second, so `ray.init` learns
    of it up to a second late; this asks every 50 ms first, then lets Ray's own lookup answer."""

    def prompt_get_node(gcs_address: str, node_id: str, *args: Any, **kwargs: Any) -> Any:
        try:
            from ray._private import services
            from ray._private.state import GlobalState

            state = GlobalState()  # type: ignore[no-untyped-call]  # Ray's internals are untyped
            state._initialize_global_state(services._get_gcs_client_options(gcs_address))  # type: ignore[no-untyped-call]
            deadline = time.monotonic() + NODE_WAIT_S
            while time.monotonic() < deadline and not any(
                    n.get("NodeID") == node_id for n in state.node_table()):  # type: ignore[no-untyped-call]
                time.sleep(0.05)
        except Exception:  # a Ray laid out otherwise: its own lookup waits as it always did
            pass
        return get_node(gcs_address, node_id, *args, **kwargs)

    return prompt_get_node


@contextlib.contextmanager
def without_unused_processes(keep_log_monitor: bool) -> Iterator[list[str]]:
    """Within the block, a local `ray.init` starts no dashboard, autoscaler monitor or (unless kept,
    for logs sent to the driver) log monitor, and notices its raylet promptly. Yields the names of
    the Ray functions stood in for."""
    try:
        from ray._private import node, services
    except ImportError:  # a Ray laid out otherwise: everything starts
        yield []
        return
    # (owner, name, stand-in made from the original)
    stand_ins: list[tuple[Any, str, Any]] = [(services, "start_api_server", _no_api_server),
                                             (node.Node, "start_monitor", _skip),
                                             (services, "get_node", _prompt)]
    if not keep_log_monitor:
        stand_ins.append((node.Node, "start_log_monitor", _skip))
    saved: list[tuple[Any, str, Any]] = []
    for owner, name, make in stand_ins:
        original = getattr(owner, name, None)
        if callable(original):
            saved.append((owner, name, original))
            setattr(owner, name, make(original))
    try:
        yield [name for _, name, _ in saved]
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)

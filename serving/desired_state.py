"""Who owns an endpoint's desired state: the router (the default: admin calls change traffic,
mirror and scale at run time) or its files (`SCORER_DESIRED_STATE=files`, for pods that mount the
endpoint YAMLs from a Kubernetes ConfigMap: every pod must serve what the ConfigMap says, so the
router reloads when the files change and refuses runtime changes with 409).

A ConfigMap update swaps a `..data` symlink, so the mounted path never changes and a watch on the
file sees nothing: the watcher reads the files' contents every `SCORER_FILES_POLL_S` seconds
(default 2) and reloads when they differ from what it last loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from serving.errors import ScoringError

log = logging.getLogger("scorer.router")

ROUTER, FILES = "router", "files"
DEFAULT_POLL_S = 2.0


def owner_from_env() -> str:
    """`router` or `files`; anything else is a configuration error (the CLI exits 2)."""
    value = os.environ.get("SCORER_DESIRED_STATE", "").strip().lower() or ROUTER
    if value not in (ROUTER, FILES):
        raise ValueError(f"SCORER_DESIRED_STATE={value!r}: expected 'router' (the default) or 'files'")
    return value


def poll_seconds_from_env() -> float:
    raw = os.environ.get("SCORER_FILES_POLL_S", "").strip()
    try:
        value = float(raw) if raw else DEFAULT_POLL_S
    except ValueError:
        value = 0.0
    if not 0.05 <= value <= 3600:
        raise ValueError(f"SCORER_FILES_POLL_S={raw!r}: expected seconds between 0.05 and 3600")
    return value


def refuse_runtime_change(owner: str, what: str) -> None:
    """409 for an admin change when the files own the desired state: it would last only until the
    next reload, and only on the pod that took it."""
    if owner == FILES:
        raise ScoringError(409, f"{what}: this endpoint's desired state is its mounted files "
                           "(SCORER_DESIRED_STATE=files); edit them instead (on Kubernetes, the endpoint's "
                           "ConfigMap: kubectl edit configmap NAME), and every router reloads",
                           code="RESOURCE_CONFLICT")


def fingerprint(paths: Sequence[str | Path]) -> str:
    """One digest of the files' contents (read through symlinks); a missing file counts as empty."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path).encode() + b"\0")
        with contextlib.suppress(OSError):
            digest.update(Path(path).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


class FilesWatcher:
    """Reload when the files change. A reload that fails (invalid YAML, a model that cannot be
    resolved) keeps the last good state and is logged; it is tried again when the files change."""

    def __init__(self, paths: Sequence[str | Path], reload: Callable[[], Awaitable[None]],
                 period: float = DEFAULT_POLL_S) -> None:
        self.paths = list(paths)
        self.reload = reload
        self.period = period
        self.seen = fingerprint(self.paths)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.period)
            now = await loop.run_in_executor(None, fingerprint, self.paths)
            if now == self.seen:
                continue
            self.seen = now
            log.info("desired state: the endpoint files changed; reloading")
            try:
                await self.reload()
            except ScoringError as err:
                log.error("desired state: reload failed, the last good state keeps serving: %s", err.message)
            except Exception:  # a bug of ours: keep serving and keep watching
                log.exception("desired state: reload failed unexpectedly; the last good state keeps serving")

"""Scale hooks: who acts on a decision. `scale_settings.hook` picks one:

- `local`: start or stop the deployment's replicas (`Supervisor.scale_to`);
- `ray`: ask the Ray autoscaler for the replicas' resources, then as `local` (under `--address`);
- `command:CMD`: run CMD (through /bin/sh) with SCORER_ENDPOINT, SCORER_DEPLOYMENT, SCORER_CURRENT,
  SCORER_DESIRED, SCORER_UTILIZATION in its environment; exit 0 means done;
- `webhook:URL`: POST the same facts plus a timestamp as JSON, signed with `X-Scorer-Signature:
  sha256=<hex HMAC-SHA256 of the body>` keyed by SCORER_WEBHOOK_SECRET; a 2xx means done;
- `python:MODULE:CALLABLE`: call `CALLABLE(decision)` (a `ScaleRequest`); a coroutine function is
  awaited, a plain one runs in a thread; returning without raising means done.

Each call has a timeout and is retried with backoff (`call_with_retries`); the autoscaler runs it in
its own task, never on the request path, and calls again at the next interval until one succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import importlib
import inspect
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import orjson

log = logging.getLogger("scorer.autoscale")

SIGNATURE_HEADER = "X-Scorer-Signature"


@dataclass(frozen=True)
class ScaleRequest:
    """The decision handed to a hook (and, as JSON, to a webhook)."""

    endpoint: str
    deployment: str
    current: int
    desired: int
    utilization: float  # a fraction; the webhook and command get it as a number (inf -> -1)
    reason: str
    timestamp: float  # Unix seconds

    def facts(self) -> dict[str, Any]:
        data = asdict(self)
        data["utilization"] = _finite(self.utilization)
        return data


def _finite(x: float) -> float:
    return round(x, 4) if x == x and x not in (float("inf"), float("-inf")) else -1.0


class HookFailed(Exception):
    pass


class Hook(Protocol):
    kind: str

    async def __call__(self, req: ScaleRequest) -> str: ...


class LocalHook:
    kind = "local"

    def __init__(self, scale_to: Callable[[int, str], Awaitable[Any]]) -> None:
        self.scale_to = scale_to

    async def __call__(self, req: ScaleRequest) -> str:
        await self.scale_to(req.desired, req.reason)
        return f"local: {req.desired} replicas"


class RayHook:
    """`ray`: ask the Ray autoscaler for the resources of `desired` replicas (a standing request,
    `ray.autoscaler.sdk.request_resources`, so that nodes are added before the actors wait for
    them, and released when the count drops), then start or retire actors as `local` does."""

    kind = "ray"

    def __init__(self, scale_to: Callable[[int, str], Awaitable[Any]], bundle: dict[str, float]) -> None:
        self.scale_to = scale_to
        self.bundle = bundle  # one replica's resources in Ray's names: CPU, GPU, memory

    async def __call__(self, req: ScaleRequest) -> str:
        from ray.autoscaler.sdk import request_resources

        bundles = [dict(self.bundle) for _ in range(req.desired)]
        await asyncio.to_thread(request_resources, bundles=bundles)  # a GCS write: off the event loop
        await self.scale_to(req.desired, req.reason)
        return f"ray: requested {req.desired} x {self.bundle}; {req.desired} replicas"


class CommandHook:
    kind = "command"

    def __init__(self, command: str) -> None:
        self.command = command

    async def __call__(self, req: ScaleRequest) -> str:
        env = {**os.environ, "SCORER_ENDPOINT": req.endpoint, "SCORER_DEPLOYMENT": req.deployment,
               "SCORER_CURRENT": str(req.current), "SCORER_DESIRED": str(req.desired),
               "SCORER_UTILIZATION": f"{_finite(req.utilization):g}"}
        proc = await asyncio.create_subprocess_shell(self.command, env=env, stdin=asyncio.subprocess.DEVNULL,
                                                     stdout=asyncio.subprocess.PIPE,
                                                     stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await proc.communicate()
        except asyncio.CancelledError:  # timed out: do not leave the command running
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.shield(proc.wait())
            raise
        tail = out.decode(errors="replace").strip().splitlines()[-1:] if out else []
        if proc.returncode != 0:
            raise HookFailed(f"command exited with {proc.returncode}" + (f": {tail[0][:200]}" if tail else ""))
        return "command: exit 0"


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookHook:
    kind = "webhook"

    def __init__(self, url: str, secret: str | None = None) -> None:
        self.url = url
        self.secret = secret if secret is not None else os.environ.get("SCORER_WEBHOOK_SECRET", "")
        if not self.secret:
            log.warning("scale hook webhook:%s: SCORER_WEBHOOK_SECRET is not set; requests go unsigned", url)

    async def __call__(self, req: ScaleRequest) -> str:
        import httpx

        body = orjson.dumps(req.facts())
        headers = {"Content-Type": "application/json"}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(body, self.secret)
        async with httpx.AsyncClient(timeout=None) as client:  # the caller's timeout bounds the call
            try:
                resp = await client.post(self.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                raise HookFailed(f"webhook {self.url}: {type(exc).__name__}: {exc}") from None
        if not 200 <= resp.status_code < 300:
            raise HookFailed(f"webhook {self.url} answered {resp.status_code}: {resp.text[:200]}")
        return f"webhook: {resp.status_code}"


class PythonHook:
    kind = "python"

    def __init__(self, target: str) -> None:
        self.target = target
        self._fn: Callable[..., Any] | None = None

    def _load(self) -> Callable[..., Any]:
        if self._fn is None:
            module, _, attr = self.target.rpartition(":")
            if os.getcwd() not in sys.path and "" not in sys.path:
                sys.path.append(os.getcwd())
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
            if not callable(obj):
                raise HookFailed(f"python:{self.target} is not callable")
            self._fn = obj
        return self._fn

    async def __call__(self, req: ScaleRequest) -> str:
        try:
            fn = self._load()
        except (ImportError, AttributeError) as exc:
            raise HookFailed(f"python:{self.target}: cannot load: {exc}") from None
        if inspect.iscoroutinefunction(fn):
            result = await fn(req)
        else:
            result = await asyncio.to_thread(fn, req)
            if inspect.isawaitable(result):
                result = await result
        return "python: ok" if result is None else f"python: {str(result)[:200]}"


def make_hook(spec: str, scale_to: Callable[[int, str], Awaitable[Any]],
              bundle: dict[str, float] | None = None) -> Hook:
    """The hook for a `scale_settings.hook` value (validated by the spec already); `bundle` is one
    replica's Ray resources, for the `ray` hook."""
    kind, _, rest = spec.partition(":")
    if kind == "local":
        return LocalHook(scale_to)
    if kind == "ray":
        return RayHook(scale_to, bundle or {"CPU": 1.0})
    if kind == "command":
        return CommandHook(rest)
    if kind == "webhook":
        return WebhookHook(rest)
    if kind == "python":
        return PythonHook(rest)
    raise ValueError(f"unknown scale hook {spec!r}")


async def call_with_retries(hook: Hook, req: ScaleRequest, timeout: float = 10.0, attempts: int = 3,
                            backoff: float = 0.5, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                            ) -> tuple[bool, str]:
    """(done, outcome): up to `attempts` calls, each within `timeout` s, backoff doubling between them."""
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            async with asyncio.timeout(timeout):
                detail = await hook(req)
            return True, detail if attempt == 1 else f"{detail} (attempt {attempt})"
        except TimeoutError:
            last = f"{hook.kind}: no answer within {timeout:g}s"
        except HookFailed as exc:
            last = str(exc)
        except Exception as exc:  # a user's hook may raise anything; the server keeps serving
            last = f"{hook.kind}: {type(exc).__name__}: {exc}"
        log.warning("deployment %s: scale hook failed (attempt %d of %d): %s", req.deployment, attempt, attempts,
                    last)
        if attempt < attempts:
            await sleep(backoff * 2 ** (attempt - 1))
    return False, f"failed: {last}"

"""Bring an endpoint up: resolve models once, start replicas, run uvicorn on the router app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from serving import desired_state
from serving.app import Router, Settings, build_app
from serving.auth import Auth
from serving.autoscale.autoscaler import build_autoscalers
from serving.connection import Connections, protocol_class
from serving.errors import ScoringError
from serving.gate import Gate
from serving.limits import Limits, raise_fd_limit
from serving.reload import Reloader
from serving.replicas.pool import FAILED, Deployment, Timing
from serving.worker.config import ReplicaConfig

log = logging.getLogger("scorer.router")


def _draining_server(base: type, router: Router) -> type:
    """uvicorn's Server, but SIGTERM / SIGINT first makes /ready fail (router.draining); uvicorn
    then stops listening and waits for in-flight requests, which their request timeout bounds."""

    class DrainingServer(base):  # type: ignore[misc, valid-type]
        def handle_exit(self, sig: int, frame: Any) -> None:
            if not router.draining:
                router.draining = True
                log.info("signal %d: draining (readiness fails; in-flight requests finish)", sig)
            super().handle_exit(sig, frame)
            # A drained stop is clean: not re-raised after serve() returns. Re-raising SIGINT there
            # would interrupt the replicas' shutdown and leave the process waiting on them for good.
            if sig == signal.SIGINT:
                router.interrupted = True
            self._captured_signals[:] = [s for s in self._captured_signals if s not in (signal.SIGTERM, signal.SIGINT)]

    return DrainingServer


def _reload_on_sighup(router: Router) -> None:
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        try:
            await router.reloader()
        except ScoringError as err:
            log.error("SIGHUP reload failed: %s", err.message)

    def on_hup() -> None:
        task = loop.create_task(reload())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, on_hup)


def build_deployments(spec: Any, socket_dir: str, timing: Timing) -> tuple[dict[str, Deployment], dict[str, str]]:
    """Deployments ready to start, and the models that could not be resolved (name -> one line)."""
    from scorer.models import ModelNotFound, resolve

    deployments: dict[str, Deployment] = {}
    unresolved: dict[str, str] = {}
    for name, d in spec.deployments.items():
        model_path, version = None, ""
        if d.model:
            try:
                resolved = resolve(d.model)
                model_path, version = str(resolved.local_path), resolved.version
            except ModelNotFound as exc:
                unresolved[name] = str(exc)
        cc = d.code_configuration
        cfg = ReplicaConfig(
            deployment=name, model_path=model_path, model_version=version or (cc.scoring_script if cc else "") or "",
            model_ref=str(d.model) if d.model else None,
            code_dir=str(cc.code) if cc else None, scoring_script=cc.scoring_script if cc else None,
            max_concurrent=d.request_settings.max_concurrent_requests_per_instance,
            environment=dict(d.environment_variables),
            max_batch_size=d.batching.max_batch_size, max_batch_wait_ms=d.batching.max_batch_wait_ms)
        deployments[name] = Deployment(name, cfg, d.instance_count, socket_dir, d.liveness_probe,
                                       d.readiness_probe, timing)
    return deployments, unresolved


async def start_deployments(spec: Any, deployments: dict[str, Deployment],
                            unresolved: dict[str, str]) -> list[str]:
    """Start every deployment; returns fatal one-liners (deployments with traffic that fail)."""
    live = {n for n, pct in spec.traffic.items() if pct > 0}
    fatal = [f"deployment {n}: {msg}" for n, msg in unresolved.items() if n in live]
    if fatal:
        return fatal
    names = [n for n in deployments if n not in unresolved]
    results = await asyncio.gather(*(deployments[n].start() for n in names))
    for n, errors in zip(names, results, strict=True):
        if errors:
            (fatal if n in live else []).append(errors[0])
            if n not in live:
                log.warning("%s (0%% traffic: serving continues; the replica is retried)", errors[0])
    for n, msg in unresolved.items():
        log.warning("deployment %s: %s (0%% traffic: serving continues without it)", n, msg)
        for r in deployments[n].replicas:
            r.state, r.last_error = FAILED, msg
    return fatal


def example_body(deployments: dict[str, Deployment], names: list[str]) -> Path | None:
    for n in names:
        path = deployments[n].cfg.model_path
        if path and (Path(path) / "serving_input_example.json").is_file():
            return Path(path) / "serving_input_example.json"
    return None


def curl_line(url: str, auth: Auth, key_hint: str | None, body: Path | None) -> str:
    parts = [f"curl -s {url}/score", "-H 'Content-Type: application/json'"]
    if auth.mode != "none" and key_hint:
        parts.append(f'-H "Authorization: Bearer {key_hint}"')
    parts.append(f"-d @{body}" if body else "-d '{\"dataframe_split\": {\"columns\": [...], \"data\": [[...]]}}'")
    return " ".join(parts)


async def serve(spec: Any, host: str, port: int, auth: Auth, key_hint: str | None,
                timing: Timing | None = None, load: Callable[[], Any] | None = None,
                limits: Limits | None = None, watch: Sequence[str] = ()) -> int:
    """`load` re-reads the same files (for POST /admin/reload and SIGHUP); `watch` are those files,
    polled for changes when they own the desired state (SCORER_DESIRED_STATE=files); `limits` defaults to the
    spec's `server:` block with environment overrides."""
    import uvicorn

    limits = limits or Limits.resolve(getattr(spec, "server", None))
    fds = raise_fd_limit()
    if fds < limits.max_connections + 256:
        log.warning("open-files limit %d is below max_connections=%d plus room for replicas and files",
                    fds, limits.max_connections)
    socket_dir = tempfile.mkdtemp(prefix="scorer-")
    timing = timing or Timing.from_env()
    deployments, unresolved = build_deployments(spec, socket_dir, timing)
    router = Router(spec, deployments, auth, Settings.from_env(limits))
    router.state_owner = desired_state.owner_from_env()
    watcher: desired_state.FilesWatcher | None = None
    if load is not None:
        router.reloader = Reloader(router, load, socket_dir, timing)
        _reload_on_sighup(router)
        if router.state_owner == desired_state.FILES and watch:
            watcher = desired_state.FilesWatcher(watch, router.reloader, desired_state.poll_seconds_from_env())
    try:
        fatal = await start_deployments(spec, deployments, unresolved)
        if fatal:
            print(f"scorer serve: {fatal[0]}", file=sys.stderr, flush=True)
            return 1
        router.autoscalers = build_autoscalers(spec, deployments, router.admissions)
        for scaler in router.autoscalers.values():
            scaler.start()
        if watcher is not None:
            watcher.start()
        app = build_app(router)
        connections = Connections(limits, Gate(router))
        tls = {"ssl_certfile": str(limits.certfile), "ssl_keyfile": str(limits.keyfile)} if limits.certfile else {}
        config = uvicorn.Config(app, host=host, port=port, loop="none", http=protocol_class(connections),
                                lifespan="off", access_log=False, log_config=None, server_header=False,
                                timeout_keep_alive=max(1, round(limits.first_byte_timeout_s)),
                                **tls)  # type: ignore[arg-type]
        server = _draining_server(uvicorn.Server, router)(config)

        async def announce() -> None:
            while not server.started:
                if server.should_exit:
                    return
                await asyncio.sleep(0.02)
            url = f"{'https' if limits.certfile else 'http'}://{host}:{port}"
            live = [n for n, p in spec.traffic.items() if p > 0]
            shares = ", ".join(f"{n} {p}%" for n, p in spec.traffic.items())
            print(f"scorer: endpoint {spec.name} ready on {url} ({shares})", flush=True)
            print("try:  " + curl_line(url, auth, key_hint, example_body(deployments, live or list(deployments))),
                  flush=True)

        announcer = asyncio.create_task(announce())
        try:
            await server.serve()
        except SystemExit:  # uvicorn exits this way when it cannot bind; it has logged why
            print(f"scorer serve: cannot listen on {host}:{port} (see the error above)", file=sys.stderr, flush=True)
            return 1
        finally:
            announcer.cancel()
        if not server.started:
            return 1
        return 130 if router.interrupted else 0
    finally:
        if watcher is not None:
            await watcher.stop()
        await asyncio.gather(*(s.stop() for s in router.autoscalers.values()), return_exceptions=True)
        await router.stop()
        shutil.rmtree(socket_dir, ignore_errors=True)

"""Bring an endpoint up: resolve models once, start replicas, run uvicorn on the router app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from scorer.environment import settle_heap
from scorer.spec.models import Endpoint
from serving import desired_state
from serving.app import build_app
from serving.assemble import build_state, start_deployment_extras, start_state, stop_deployments
from serving.auth import Auth
from serving.body import Settings
from serving.connection import Connections, protocol_class
from serving.dataplane import DataPlane
from serving.errors import ScoringError
from serving.gate import Gate
from serving.limits import Limits, raise_fd_limit
from serving.reload import Reloader
from serving.replicas.supervisor import Timing
from serving.state import EndpointState

log = logging.getLogger("scorer.router")


def _draining_server(base: type, router: DataPlane) -> type:
    """uvicorn's Server, but SIGTERM / SIGINT first makes /ready fail (router.draining); uvicorn
    then stops listening and waits for in-flight requests, which their request timeout bounds."""

    class DrainingServer(base):  # type: ignore[misc]
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


def _reload_on_sighup(reloader: Reloader) -> None:
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        try:
            await reloader()
        except ScoringError as err:
            log.error("SIGHUP reload failed: %s", err.message)

    def on_hup() -> None:
        task = loop.create_task(reload())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, on_hup)


def example_body(state: EndpointState, names: list[str]) -> Path | None:
    for n in names:
        path = state.deployments[n].cfg.model_path
        if path and (Path(path) / "serving_input_example.json").is_file():
            return Path(path) / "serving_input_example.json"
    return None


def curl_line(url: str, auth: Auth, key_hint: str | None, body: Path | None) -> str:
    parts = [f"curl -s {url}/score", "-H 'Content-Type: application/json'"]
    if auth.mode != "none" and key_hint:
        parts.append(f'-H "Authorization: Bearer {key_hint}"')
    parts.append(f"-d @{body}" if body else "-d '{\"dataframe_split\": {\"columns\": [...], \"data\": [[...]]}}'")
    return " ".join(parts)


async def serve(spec: Endpoint, host: str, port: int, auth: Auth, key_hint: str | None,
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
    timing = timing or Timing.from_env()
    try:
        state, unresolved = build_state(spec, timing)
    except ValueError as exc:  # a replica_handle that cannot be loaded
        print(f"scorer serve: {exc}", file=sys.stderr, flush=True)
        return 2
    plane = DataPlane(state, auth)
    plane.state_owner = desired_state.owner_from_env()
    watcher: desired_state.FilesWatcher | None = None
    reloader: Reloader | None = None
    if load is not None:
        reloader = Reloader(plane, load, timing)
        plane.reloader = reloader
        _reload_on_sighup(reloader)
        if plane.state_owner == desired_state.FILES and watch:
            watcher = desired_state.FilesWatcher(watch, reloader, desired_state.poll_seconds_from_env())
    try:
        fatal = await start_state(state, unresolved)
        if fatal:
            print(f"scorer serve: {fatal[0]}", file=sys.stderr, flush=True)
            return 1
        for dep in state.deployments.values():
            start_deployment_extras(dep)
        if watcher is not None:
            watcher.start()
        settings = Settings.from_env(limits)
        app = build_app(plane, settings)
        settle_heap()
        connections = Connections(limits, Gate(plane))
        tls = {"ssl_certfile": str(limits.certfile), "ssl_keyfile": str(limits.keyfile)} if limits.certfile else {}
        config = uvicorn.Config(app, host=host, port=port, loop="none", http=protocol_class(connections),
                                lifespan="off", access_log=False, log_config=None, server_header=False,
                                timeout_keep_alive=max(1, round(limits.first_byte_timeout_s)),
                                **tls)  # type: ignore[arg-type]
        server = _draining_server(uvicorn.Server, plane)(config)

        async def announce() -> None:
            while not server.started:
                if server.should_exit:
                    return
                await asyncio.sleep(0.02)
            url = f"{'https' if limits.certfile else 'http'}://{host}:{port}"
            live = [n for n, p in spec.traffic.items() if p > 0]
            shares = ", ".join(f"{n} {p}%" for n, p in spec.traffic.items())
            print(f"scorer: endpoint {spec.name} ready on {url} ({shares})", flush=True)
            print("try:  " + curl_line(url, auth, key_hint, example_body(state, live or list(state.deployments))),
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
        return 130 if plane.interrupted else 0
    finally:
        if watcher is not None:
            await watcher.stop()
        retired = await reloader.close() if reloader is not None else []
        await stop_deployments(list(plane.state.deployments.values()) + retired)

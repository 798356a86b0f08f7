"""The router: one Starlette app that authenticates, picks a deployment, admits, and forwards to a
replica. It never runs model code; bodies travel to replicas as bytes."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from serving import admin, desired_state, metrics
from serving.admission import Admission
from serving.auth import Auth
from serving.autoscale.manual import scale_handler
from serving.errors import ScoringError, as_mlflow, error_body
from serving.gate import admission_full
from serving.limits import Limits, request_id
from serving.mirror import MirrorShare, send_copy
from serving.openapi_live import document
from serving.protocol import v2
from serving.protocol.mlflow import check_media_type
from serving.replicas.pool import Deployment
from serving.responses import error_response
from serving.traffic import SmoothWeighted
from serving.v2_routes import v2_routes
from serving.v2_triton import InferStats

log = logging.getLogger("scorer.router")
access = logging.getLogger("scorer.access")

PIN_HEADER = "azureml-model-deployment"
DEFAULT_MAX_BODY = 10 * 1024 * 1024


@dataclass
class Settings:
    max_body_bytes: int = DEFAULT_MAX_BODY
    body_timeout_s: float = 30.0  # the whole body within this, else 408 and close
    timing_header: bool = False  # x-scorer-timing on answers (SCORER_TIMING_HEADER=1), for measuring

    @classmethod
    def from_env(cls, limits: Limits | None = None) -> Settings:
        limits = limits or Limits.resolve()
        return cls(max_body_bytes=limits.max_body_bytes, body_timeout_s=limits.body_timeout_s,
                   timing_header=os.environ.get("SCORER_TIMING_HEADER", "") in ("1", "true"))


class ClientGone(ScoringError):
    """The client closed the connection before its body was in: nobody to answer, nothing to log but
    one INFO line. Status 499 (nginx's "client closed request") appears in metrics and the access log."""

    def __init__(self, message: str) -> None:
        super().__init__(499, message, "CLIENT_CLOSED_REQUEST")


class Router:
    def __init__(self, endpoint: Any, deployments: dict[str, Deployment], auth: Auth, settings: Settings) -> None:
        self.endpoint = endpoint
        self.name = endpoint.name
        self.deployments = deployments
        self.auth = auth
        self.settings = settings
        self.traffic = SmoothWeighted(endpoint.traffic)
        self.mirror_traffic = dict(endpoint.mirror_traffic)
        self.mirror_share = MirrorShare()
        self.draining = False  # set on SIGTERM: readiness fails, in-flight requests finish
        self.admissions: dict[str, Admission] = {}
        self.timeouts: dict[str, float] = {}
        self.autoscalers: dict[str, Any] = {}  # serving.autoscale.Autoscaler by deployment; set by serve()
        # by Deployment object, not name: a request that picked a deployment replaced by a reload
        # finishes with that deployment's admission, which the drain of the old one waits on
        self.slots: dict[Deployment, tuple[Admission, float]] = {}
        self.interrupted = False  # stopped by SIGINT: `scorer serve` exits 130 after draining
        self.state_owner = desired_state.ROUTER  # or FILES: admin changes answer 409
        self.reloader: Any = None  # async () -> None, set by serve(); raises ScoringError on failure
        self.stats = InferStats()  # for Triton's statistics extension
        for name, dep in deployments.items():
            self.attach(name, dep, endpoint.deployments[name].request_settings)

    def attach(self, name: str, dep: Deployment, rs: Any) -> None:
        """Admission, timeout and gauges for a deployment (at start, and for one added by a reload)."""
        adm = Admission(name, rs.max_concurrent_requests_per_instance, dep.ready_count, rs.max_queue_wait_ms)
        self.admissions[name] = adm
        self.timeouts[name] = rs.request_timeout_ms / 1000.0
        self.slots[dep] = (adm, self.timeouts[name])
        dep.on_change = adm.wake
        self._watch(name)

    def _watch(self, name: str) -> None:
        """Point the in_flight / queue_depth gauges at this deployment's admission (read at scrape)."""
        adm = self.admissions[name]
        metrics.in_flight.labels(name).set_function(lambda: adm.in_flight)
        metrics.queue_depth.labels(name).set_function(lambda: adm.queued)

    # -- scoring ----------------------------------------------------------------------------
    def choose(self, pinned: str | None) -> str:
        if pinned is not None:
            if pinned not in self.deployments:
                raise ScoringError(404, f"deployment {pinned!r} does not exist in endpoint {self.name}; "
                                   f"deployments: {', '.join(sorted(self.deployments))}")
            return pinned
        name = self.traffic.pick()
        if name is None:
            raise ScoringError(404, f"endpoint {self.name} has no deployment with traffic; pin one with the "
                               f"{PIN_HEADER} header")
        return name

    async def read_body(self, request: Request) -> bytes:
        """The whole body, within max_body_bytes (413) and body_timeout_s (408, connection closed).

        Compressed bodies are refused (415): a small gzip body can inflate without bound."""
        headers = request.headers
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            raise ScoringError(415, f"Content-Encoding {encoding!r} is not supported; send the body uncompressed")
        limit = self.settings.max_body_bytes
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise ScoringError(413, f"request body of {declared} bytes is over the limit of {limit} bytes")
        chunks = []
        size = 0
        try:
            async with asyncio.timeout(self.settings.body_timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise ScoringError(413, f"request body is over the limit of {limit} bytes")
                    chunks.append(chunk)
        except TimeoutError:
            raise ScoringError(408, f"request body not received within body_timeout_s="
                               f"{self.settings.body_timeout_s:g} ({size} bytes in)",
                               headers={"Connection": "close"}) from None
        except ClientDisconnect:  # not an error: the access log's status=499 line records it
            raise ClientGone(f"client {_client(request)} closed the connection after {size} bytes of the body") \
                from None
        return b"".join(chunks)

    async def invocations(self, request: Request) -> Response:
        """MLflow's route: answers as `mlflow models serve` (a model error is 400, a 415 is text)."""
        return await self.score(request, mlflow_api=True)

    async def score(self, request: Request, mlflow_api: bool = False) -> Response:
        started = time.monotonic()
        headers = request.headers
        rid = request_id(headers.get("x-request-id")) or uuid.uuid4().hex
        out = {"x-request-id": rid}
        try:
            self.auth.check(headers.get("authorization"))
            content_type = headers.get("content-type") or ""
            check_media_type(content_type)
            pinned = headers.get(PIN_HEADER)
            name = self.choose(pinned)
            dep = self.deployments[name]
            out[PIN_HEADER] = name
            out["x-model-version"] = dep.version
            full = admission_full(self.slots[dep][0])  # before the body: a refused body is never read
            if full is not None:
                raise full
            body = await self.read_body(request)
            reply, payload = await self._forward(dep, name, body, content_type, started)
        except ScoringError as err:
            if err.status >= 408 and err.status not in (413, 415, 429, 499):
                log.warning("request %s%s deployment %s: %d %s", rid, _trace(headers), out.get(PIN_HEADER, "-"),
                            err.status, err.message.splitlines()[0][:300])
            self.record(rid, out, err.status, started, headers, note=err.message if err.status == 499 else None)
            if mlflow_api and err.status == 415:
                return Response(err.message, status_code=415, media_type="text/plain", headers=out)
            return error_response(err, out)
        status = reply.get("status", 200)
        if mlflow_api:
            status, payload = as_mlflow(status, payload)
        if status >= 424:
            log.warning("request %s%s deployment %s: %d from the replica", rid, _trace(headers), out[PIN_HEADER],
                        status)
        if "h" in reply:
            out.update(reply["h"])
        if self.settings.timing_header:
            total = (time.monotonic() - started) * 1000
            out["x-scorer-timing"] = f"model={reply.get('t', 0) * 1000:.3f}ms total={total:.3f}ms"
        self.record(rid, out, status, started, headers, reply)
        return Response(payload, status_code=status, headers=out, media_type=reply.get("ct") or "application/json",
                        background=None if pinned is not None else self.mirror(body, content_type, status, payload))

    def mirror(self, body: bytes, content_type: str, status: int, payload: bytes) -> BackgroundTask | None:
        """The copy of this live request for the mirror deployment, run after the answer is sent."""
        for name, pct in self.mirror_traffic.items():
            if pct > 0 and self.mirror_share.take(pct):
                return BackgroundTask(send_copy, self, name, body, content_type, status, payload)
        return None

    def record(self, rid: str, out: dict[str, str], status: int, started: float, headers: Any,
               reply: dict[str, Any] | None = None, note: str | None = None) -> None:
        """Metrics and the access-log line of one answered request (`note`: why it ended, last)."""
        seconds = time.monotonic() - started
        dep = out.get(PIN_HEADER, "")
        if dep:
            self.stats.answered(dep, status, seconds, reply.get("t") if reply is not None else None)
            metrics.requests_total.labels(dep, str(status)).inc()
            metrics.request_duration_seconds.labels(dep, "total").observe(seconds)
            if reply is not None and "t" in reply:
                metrics.request_duration_seconds.labels(dep, "model").observe(reply["t"])
            if reply is not None and "b" in reply:
                metrics.batch_size.labels(dep).observe(reply["b"])
        if access.isEnabledFor(logging.INFO):
            fields = {"request_id": rid, "deployment": dep or "-", "model_version": out.get("x-model-version", "-"),
                      "status": status, "ms": round(seconds * 1000, 3)}
            tp = headers.get("traceparent")
            if tp:
                fields["traceparent"] = tp[:128]
            if note:
                fields["note"] = note
            access.info("%s", " ".join(f"{k}={v}" for k, v in fields.items()), extra={"fields": fields})

    async def _forward(self, dep: Deployment, name: str, body: bytes, content_type: str,
                       started: float) -> tuple[dict[str, Any], bytes]:
        admission, timeout = self.slots[dep]
        admitted = False
        try:
            async with asyncio.timeout_at(asyncio.get_running_loop().time() + timeout - (time.monotonic() - started)):
                queued = time.monotonic()
                await admission.acquire()
                admitted = True
                waited = time.monotonic() - queued
                metrics.request_duration_seconds.labels(name, "queue").observe(waited)
                self.stats.queued(name, waited)
                return await dep.call({"op": "score", "ct": content_type}, body)
        except TimeoutError:
            raise ScoringError(408, f"deployment {name}: no answer within request_timeout_ms="
                               f"{timeout * 1000:.0f}") from None
        finally:
            if admitted:
                admission.release()

    # -- health and info --------------------------------------------------------------------
    def ready(self) -> tuple[bool, dict[str, int]]:
        counts = {name: dep.ready_count() for name, dep in self.deployments.items()}
        live = [n for n, pct in self.traffic.shares.items() if pct > 0]
        return not self.draining and all(counts.get(n, 0) > 0 for n in live), counts

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "auth_mode": self.endpoint.auth_mode, "traffic": dict(self.traffic.shares),
                "mirror_traffic": dict(self.mirror_traffic),
                "deployments": {n: d.describe() for n, d in self.deployments.items()}}

    # -- admin ------------------------------------------------------------------------------
    def set_traffic(self, body: bytes) -> None:
        """Validate like the YAML, then swap in one step (no await between check and set)."""
        names = list(self.deployments)
        traffic = admin.full_traffic(admin.parse_shares(body, "traffic", names), names)
        admin.check(traffic, self.mirror_traffic, names)
        self.traffic.set(traffic)
        log.info("traffic set to %s", traffic)

    def set_mirror(self, body: bytes) -> None:
        names = list(self.deployments)
        mirror = admin.parse_shares(body, "mirror_traffic", names)
        admin.check(dict(self.traffic.shares), mirror, names)
        self.mirror_traffic = {n: p for n, p in mirror.items() if p > 0}
        log.info("mirror traffic set to %s", self.mirror_traffic or "none")

    def refresh_gauges(self) -> None:
        """Replica counts by state, computed when /metrics is scraped."""
        for name, dep in self.deployments.items():
            counts = dict.fromkeys(("starting", "ready", "draining", "stopped", "failed"), 0)
            for r in dep.replicas:
                counts[r.state] = counts.get(r.state, 0) + 1
            for state, n in counts.items():
                metrics.replicas.labels(name, state).set(n)
        metrics.set_deployments({n: (d.cfg.model_ref or d.cfg.scoring_script or "", d.version)
                                 for n, d in self.deployments.items()})

    async def stop(self) -> None:
        await asyncio.gather(*(d.stop() for d in self.deployments.values()), return_exceptions=True)


def _client(request: Request) -> str:
    client = request.client
    return f"{client.host}:{client.port}" if client else "-"


def _trace(headers: Any) -> str:
    tp = headers.get("traceparent")
    return f" traceparent {tp[:64]}" if tp else ""


def build_app(router: Router) -> Starlette:
    import mlflow.version

    mlflow_version = mlflow.version.VERSION

    async def ping(request: Request) -> Response:
        return Response(b"\n", media_type="application/json")

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        ok, counts = router.ready()
        return JSONResponse({"status": "ready" if ok else "not ready", "ready_replicas": counts},
                            status_code=200 if ok else 503)

    async def version(request: Request) -> Response:
        return Response(mlflow_version, media_type="application/json")

    async def openapi(request: Request) -> Response:
        return Response(orjson.dumps(document(router.deployments, router.endpoint.auth_mode)),
                        media_type="application/json")

    async def admin_endpoint(request: Request) -> Response:
        try:
            router.auth.check_admin(request.headers.get("authorization"))
        except ScoringError as err:
            return error_response(err)
        return Response(orjson.dumps(router.describe()), media_type="application/json")

    def admin_put(apply: Any) -> Any:
        async def handler(request: Request) -> Response:
            try:
                router.auth.check_admin(request.headers.get("authorization"))
                desired_state.refuse_runtime_change(router.state_owner, f"PUT {request.url.path}")
                apply(await router.read_body(request))
            except ScoringError as err:
                return error_response(err)
            return Response(orjson.dumps(router.describe()), media_type="application/json")
        return handler

    async def admin_reload(request: Request) -> Response:
        try:
            router.auth.check_admin(request.headers.get("authorization"))
            if router.reloader is None:
                raise ScoringError(404, "reload is not available: the server was not started from files")
            await router.reloader()
        except ScoringError as err:
            return error_response(err)
        return Response(orjson.dumps(router.describe()), media_type="application/json")

    async def metrics_route(request: Request) -> Response:
        router.refresh_gauges()
        text, content_type = metrics.render(request.headers.get("accept"))
        return Response(text, media_type=content_type)

    def is_v2(request: Request) -> bool:
        path = request.url.path
        return path == "/v2" or path.startswith("/v2/")

    async def not_found(request: Request, exc: Exception) -> Response:
        """MLflow's error shape, or V2's `{"error": ...}` on /v2 paths (what tritonclient decodes)."""
        status = getattr(exc, "status_code", 404)
        code = "RESOURCE_DOES_NOT_EXIST" if status == 404 else "BAD_REQUEST"
        message = f"{request.method} {request.url.path[:200]}: {getattr(exc, 'detail', '')}"
        if is_v2(request):
            message += " (V2 routes: docs/serving.md)"
        body = v2.error(status, message, code)[1] if is_v2(request) else error_body(code, message)
        return Response(body, status_code=status, media_type="application/json")

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        message = "internal error; see the server log"
        body = v2.error(500, message, "INTERNAL_ERROR")[1] if is_v2(request) else error_body("INTERNAL_ERROR", message)
        return Response(body, status_code=500, media_type="application/json")

    routes = [
        Route("/score", router.score, methods=["POST"]),
        Route("/invocations", router.invocations, methods=["POST"]),
        Route("/ping", ping, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/metrics", metrics_route, methods=["GET"]),
        Route("/admin/endpoint", admin_endpoint, methods=["GET"]),
        Route("/admin/traffic", admin_put(router.set_traffic), methods=["PUT"]),
        Route("/admin/mirror", admin_put(router.set_mirror), methods=["PUT"]),
        Route("/admin/reload", admin_reload, methods=["POST"]),
        Route("/admin/deployments/{name}/scale", scale_handler(router), methods=["POST"]),
    ]
    routes += v2_routes(router)
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found, 500: server_error})
    app.state.router = router
    return app

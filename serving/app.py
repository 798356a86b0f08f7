"""The HTTP face of the router: Starlette routes that translate requests to the data plane's
steps (`serving/dataplane.py`) and its answers back. MLflow's `/score` and `/invocations`, health,
OpenAPI, metrics and admin live here; V2 in `serving/v2_routes.py`."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from serving import desired_state, metrics
from serving.autoscale import manual
from serving.body import Settings, read_body
from serving.dataplane import PIN_HEADER, DataPlane
from serving.errors import ScoringError, as_mlflow, error_body
from serving.limits import new_request_id, request_id
from serving.openapi_live import document
from serving.protocol import v2
from serving.protocol.mlflow import check_media_type
from serving.responses import error_response
from serving.v2_routes import v2_routes

log = logging.getLogger("scorer.router")


def background(work: Callable[[], Awaitable[None]] | None) -> BackgroundTask | None:
    return BackgroundTask(work) if work is not None else None


def score_route(plane: DataPlane, settings: Settings, mlflow_api: bool) -> Callable[[Request], Awaitable[Response]]:
    """`/score` (Azure's answers) or `/invocations` (answers as `mlflow models serve`: a model error
    is 400, a 415 is text)."""

    async def score(request: Request) -> Response:
        started = time.monotonic()
        headers = request.headers
        rid = request_id(headers.get("x-request-id")) or new_request_id()
        out = {"x-request-id": rid}
        try:
            plane.auth.check(headers.get("authorization"))
            content_type = headers.get("content-type") or ""
            check_media_type(content_type)
            pinned = headers.get(PIN_HEADER)
            dep = plane.choose(pinned)
            out[PIN_HEADER] = dep.name
            out["x-model-version"] = dep.version
            plane.check_room(dep)  # before the body: a refused body is never read
            body = await read_body(request, settings)
            dep = plane.current(dep, pinned)
            out[PIN_HEADER], out["x-model-version"] = dep.name, dep.version
            reply, payload = await plane.forward(dep, body, content_type, started)
        except ScoringError as err:
            if err.status >= 408 and err.status not in (413, 415, 429, 499):
                log.warning("request %s%s deployment %s: %d %s", rid, _trace(headers), out.get(PIN_HEADER, "-"),
                            err.status, err.message.splitlines()[0][:300])
            plane.record(rid, out, err.status, started, headers, note=err.message if err.status == 499 else None)
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
        if settings.timing_header:
            total = (time.monotonic() - started) * 1000
            out["x-scorer-timing"] = f"model={reply.get('t', 0) * 1000:.3f}ms total={total:.3f}ms"
        plane.record(rid, out, status, started, headers, reply)
        mirror = None if pinned is not None else plane.mirror(body, content_type, status, payload)
        return Response(payload, status_code=status, headers=out, media_type=reply.get("ct") or "application/json",
                        background=background(mirror))

    return score


def _trace(headers: Mapping[str, str]) -> str:
    tp = headers.get("traceparent")
    return f" traceparent {tp[:64]}" if tp else ""


Handler = Callable[[Request], Awaitable[Response]]


class ScorerApp(Starlette):
    """Starlette, with the scoring routes' POSTs taken before its middleware and router: they catch
    their own errors, so the exception middlewares and the route matching only cost time there (a
    sixth of the router's time at 64 connections, measured with py-spy). Everything else, and any
    other method on those paths (405), goes through Starlette as usual."""

    def __init__(self, *args: Any, fast: dict[str, Handler] | None = None, v2_infer: Handler | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fast = fast or {}
        self.v2_infer = v2_infer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            handler = self.fast.get(path)
            if handler is not None:
                scope["app"] = self
                await _serve(handler, scope, receive, send, False)
                return
            if self.v2_infer is not None and path.endswith("/infer") and path.startswith("/v2/models/"):
                params = _v2_infer_params(path)
                if params is not None:
                    scope["app"], scope["path_params"] = self, params
                    await _serve(self.v2_infer, scope, receive, send, True)
                    return
        await super().__call__(scope, receive, send)


def _v2_infer_params(path: str) -> dict[str, str] | None:
    """`/v2/models/{name}/infer` or `/v2/models/{name}/versions/{version}/infer`, as Starlette matches them."""
    parts = path.split("/")
    if len(parts) == 5 and parts[3]:
        return {"name": parts[3]}
    if len(parts) == 7 and parts[4] == "versions" and parts[3] and parts[5]:
        return {"name": parts[3], "version": parts[5]}
    return None


def internal_error(path: str, is_v2: bool) -> Response:
    """A bug of ours: logged with its traceback, answered 500 in the route's error shape."""
    log.exception("unexpected error on %s", path)
    message = "internal error; see the server log"
    body = v2.error(500, message, "INTERNAL_ERROR")[1] if is_v2 else error_body("INTERNAL_ERROR", message)
    return Response(body, status_code=500, media_type="application/json")


async def _serve(handler: Handler, scope: Scope, receive: Receive, send: Send, is_v2: bool) -> None:
    request = Request(scope, receive, send)
    try:
        response = await handler(request)
    except Exception:  # what Starlette's server_error handler would answer
        response = internal_error(scope["path"], is_v2)
    await response(scope, receive, send)


def build_app(plane: DataPlane, settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    import mlflow.version

    mlflow_version = mlflow.version.VERSION

    async def ping(request: Request) -> Response:
        return Response(b"\n", media_type="application/json")

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        ok, counts = plane.ready()
        return JSONResponse({"status": "ready" if ok else "not ready", "ready_replicas": counts},
                            status_code=200 if ok else 503)

    async def version(request: Request) -> Response:
        return Response(mlflow_version, media_type="application/json")

    async def openapi(request: Request) -> Response:
        return Response(orjson.dumps(document(plane.state)),
                        media_type="application/json")

    async def admin_endpoint(request: Request) -> Response:
        try:
            plane.auth.check_admin(request.headers.get("authorization"))
        except ScoringError as err:
            return error_response(err)
        return Response(orjson.dumps(plane.describe()), media_type="application/json")

    def admin_put(apply: Callable[[bytes], None]) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            try:
                plane.auth.check_admin(request.headers.get("authorization"))
                desired_state.refuse_runtime_change(plane.state_owner, f"PUT {request.url.path}")
                apply(await read_body(request, settings))
            except ScoringError as err:
                return error_response(err)
            return Response(orjson.dumps(plane.describe()), media_type="application/json")
        return handler

    async def admin_reload(request: Request) -> Response:
        try:
            plane.auth.check_admin(request.headers.get("authorization"))
            if plane.reloader is None:
                raise ScoringError(404, "reload is not available: the server was not started from files")
            await plane.reloader()
        except ScoringError as err:
            return error_response(err)
        return Response(orjson.dumps(plane.describe()), media_type="application/json")

    async def metrics_route(request: Request) -> Response:
        plane.refresh_gauges()
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
        return internal_error(request.url.path, is_v2(request))

    fast = {"/score": score_route(plane, settings, mlflow_api=False),
            "/invocations": score_route(plane, settings, mlflow_api=True)}
    routes = [
        Route("/score", fast["/score"], methods=["POST"]),
        Route("/invocations", fast["/invocations"], methods=["POST"]),
        Route("/ping", ping, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/metrics", metrics_route, methods=["GET"]),
        Route("/admin/endpoint", admin_endpoint, methods=["GET"]),
        Route("/admin/traffic", admin_put(plane.set_traffic), methods=["PUT"]),
        Route("/admin/mirror", admin_put(plane.set_mirror), methods=["PUT"]),
        Route("/admin/reload", admin_reload, methods=["POST"]),
        Route("/admin/deployments/{name}/scale", scale(plane, settings), methods=["POST"]),
    ]
    v2_list = v2_routes(plane, settings)
    routes += v2_list
    infer = next(r.endpoint for r in v2_list if isinstance(r, Route) and r.path.endswith("/infer"))
    app = ScorerApp(routes=routes, exception_handlers={404: not_found, 405: not_found, 500: server_error}, fast=fast,
                    v2_infer=infer)
    app.state.plane = plane
    return app


def scale(plane: DataPlane, settings: Settings) -> Callable[[Request], Awaitable[Response]]:
    """`POST /admin/deployments/{name}/scale {"instances": N}` (admin key)."""

    async def handler(request: Request) -> Response:
        try:
            plane.auth.check_admin(request.headers.get("authorization"))
            desired_state.refuse_runtime_change(plane.state_owner, f"POST {request.url.path}")
            n = manual.parse_instances(await read_body(request, settings))
            await manual.apply(plane.state, request.path_params["name"], n)
        except ScoringError as err:
            return error_response(err)
        return Response(orjson.dumps(plane.describe()), media_type="application/json")

    return handler

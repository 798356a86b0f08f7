"""The V2 routes: `/v2`, health, model metadata and readiness, infer (each also under
`versions/{version}`), and Triton's config, statistics and repository index. A model name is the
endpoint (routed by traffic, mirrored like /score) or one of its deployments (pinned)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from serving import v2_triton as triton
from serving.body import Settings, read_body
from serving.errors import ScoringError
from serving.limits import new_request_id, request_id
from serving.protocol import jsonbody, v2

JSON = "application/json"

if TYPE_CHECKING:
    from serving.dataplane import DataPlane
    from serving.state import DeploymentState


def background(work: Callable[[], Awaitable[None]] | None) -> BackgroundTask | None:
    return BackgroundTask(work) if work is not None else None


def _json(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type=JSON, headers=headers)


def _error(err: ScoringError, headers: dict[str, str] | None = None) -> Response:
    status, body = v2.error(err.status, err.message, err.code)
    return Response(body, status_code=status, media_type=JSON, headers={**err.headers, **(headers or {})})


def v2_routes(plane: DataPlane, settings: Settings) -> list[Route]:
    import mlflow.version

    signatures: dict[tuple[str, str], v2.Signature] = {}

    def signature(dep: str) -> v2.Signature:
        key = (dep, plane.state.deployments[dep].version)  # a reload may give the name another model
        if key not in signatures:
            signatures[key] = v2.Signature.of(plane.state.deployments[dep].cfg.model_path)
        return signatures[key]

    def check_version(name: str, dep: str, request: Request) -> str:
        """The deployment serving `versions/{version}` of V2 model `name`: that version must be the
        current one (for the endpoint: of a deployment with traffic), else a V2 404."""
        version = request.path_params.get("version")
        current = plane.state.deployments[dep].version
        if version is None or version == current:
            return dep
        if name == plane.name:
            state = plane.state
            shares = state.traffic.shares
            live = [n for n, p in shares.items() if p > 0 and state.deployments[n].version == version]
            if live:
                return max(live, key=lambda n: shares[n])
        raise ScoringError(404, f"model {name!r} has no version {version[:100]!r}; its version is {current!r}")

    def resolve(name: str, pick: bool) -> tuple[str, bool]:
        """(deployment, pinned) of a V2 model name; picking consumes a traffic turn."""
        if name in plane.state.deployments:
            return name, True
        if name != plane.name:
            raise ScoringError(404, f"model {name!r} does not exist; models: {plane.name} (the endpoint), "
                               f"{', '.join(sorted(plane.state.deployments))}")
        if pick:
            return plane.choose(None).name, False
        live = [n for n, p in plane.state.traffic.shares.items() if p > 0]
        if not live:
            raise ScoringError(404, f"endpoint {plane.name} has no deployment with traffic")
        return max(live, key=lambda n: plane.state.traffic.shares[n]), False

    async def server_meta(request: Request) -> Response:
        return _json({"name": "scorer", "version": mlflow.version.VERSION,
                      "extensions": ["model_configuration", "statistics", "model_repository(index only)"]})

    async def live(request: Request) -> Response:
        return _json({"live": True})

    async def ready(request: Request) -> Response:
        ok, _ = plane.ready()
        return _json({"ready": ok}, 200 if ok else 503)

    def model_of(request: Request) -> tuple[str, str]:
        """The V2 model name in the path and the deployment it names (auth checked); no traffic pick."""
        plane.auth.check(request.headers.get("authorization"))
        name = request.path_params["name"]
        dep, _ = resolve(name, pick=False)
        return name, check_version(name, dep, request)

    async def model_meta(request: Request) -> Response:
        try:
            name, dep = model_of(request)
        except ScoringError as err:
            return _error(err)
        meta = signature(dep).metadata(name, plane.state.deployments[dep].version)
        return _json(meta)

    async def model_config(request: Request) -> Response:
        try:
            name, dep = model_of(request)
        except ScoringError as err:
            return _error(err)
        return _json(triton.config(name, plane.state.deployments[dep].version, signature(dep)))

    def stats_of(name: str, dep: str) -> dict[str, Any]:
        deps = [dep] if name != plane.name else list(plane.state.deployments)
        return plane.stats.model_stats(name, plane.state.deployments[dep].version, deps)

    async def model_stats(request: Request) -> Response:
        try:
            name, dep = model_of(request)
        except ScoringError as err:
            return _error(err)
        return _json({"model_stats": [stats_of(name, dep)]})

    async def all_stats(request: Request) -> Response:
        try:
            plane.auth.check(request.headers.get("authorization"))
        except ScoringError as err:
            return _error(err)
        return _json({"model_stats": [stats_of(n, n) for n in plane.state.deployments]})

    async def repository_index(request: Request) -> Response:
        """Every V2 model name: the endpoint and its deployments, with version and state."""
        try:
            plane.auth.check(request.headers.get("authorization"))
            body = await read_body(request, settings)
            doc = jsonbody.loads(body) if body.strip() else {}
            if not isinstance(doc, dict):
                raise ScoringError(400, f"repository index request: expected a JSON object, got {type(doc).__name__}")
            ready_only = doc.get("ready") is True
        except ScoringError as err:
            return _error(err)
        rows = []
        for n, d in plane.state.deployments.items():
            ok = d.replicas.ready_count() > 0
            if ok or not ready_only:
                rows.append({"name": n, "version": d.version, "state": "READY" if ok else "UNAVAILABLE"})
        try:
            top, _ = resolve(plane.name, pick=False)
            rows.insert(0, {"name": plane.name, "version": plane.state.deployments[top].version, "state": "READY"
                            if plane.state.deployments[top].replicas.ready_count() > 0 else "UNAVAILABLE"})
        except ScoringError:
            pass
        return _json([r for r in rows if r["state"] == "READY" or not ready_only])

    async def model_ready(request: Request) -> Response:
        try:
            name, dep = model_of(request)
        except ScoringError as err:
            return _error(err)
        ok = plane.state.deployments[dep].replicas.ready_count() > 0 and not plane.draining
        return _json({"name": name, "ready": ok}, 200 if ok else 503)

    def pick(name: str, request: Request, out: dict[str, str]) -> tuple[DeploymentState, bool]:
        """(deployment, pinned) to score a V2 infer request on, named in the answer's headers."""
        dep_name, pinned = resolve(name, pick=True)
        dep = plane.state.deployments[check_version(name, dep_name, request)]
        out["azureml-model-deployment"], out["x-model-version"] = dep.name, dep.version
        return dep, pinned

    async def infer(request: Request) -> Response:
        started = time.monotonic()
        headers = request.headers
        rid = request_id(headers.get("x-request-id")) or new_request_id()
        out = {"x-request-id": rid}
        name = request.path_params["name"]
        try:
            plane.auth.check(headers.get("authorization"))
            length = headers.get("inference-header-content-length")
            v2.check_media_type(headers.get("content-type"), length)
            dep, pinned = pick(name, request, out)
            plane.check_room(dep)  # before the body: a refused body is never read
            raw = await read_body(request, settings)
            if plane.retired(dep):  # swapped out by a reload while the body was read: pick again
                dep, pinned = pick(name, request, out)
            sig = signature(dep.name)
            body, v2_id = v2.to_dataframe_split(raw, sig, length)
            reply, payload = await plane.forward(dep, body, JSON, started)
        except ScoringError as err:
            plane.record(rid, out, err.status, started, headers)
            return _error(err, out)
        status = reply.get("status", 200)
        plane.record(rid, out, status, started, headers, reply)
        if status != 200:
            message, code = v2.replica_error(payload)
            return _json({"error": message, "error_code": code}, status, {**out, **reply.get("h", {})})
        try:
            answer = v2.to_v2_response(payload, name, dep.version, v2_id, sig)
        except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
            return _error(ScoringError(424, f"the model's output cannot be sent as V2 tensors: {exc}"), out)
        return Response(answer, media_type=JSON, headers=out,
                        background=None if pinned else background(plane.mirror(body, JSON, status, payload)))

    routes = [
        Route("/v2", server_meta, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2/models/stats", all_stats, methods=["GET"]),
        Route("/v2/repository/index", repository_index, methods=["POST"]),
    ]
    for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        routes += [
            Route(base, model_meta, methods=["GET"]),
            Route(f"{base}/ready", model_ready, methods=["GET"]),
            Route(f"{base}/infer", infer, methods=["POST"]),
            Route(f"{base}/config", model_config, methods=["GET"]),
            Route(f"{base}/stats", model_stats, methods=["GET"]),
        ]
    return routes

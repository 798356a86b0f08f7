"""Cheap rejection: decide 401 / 429 / 503 for a scoring request from its head alone.

The HTTP protocol (`serving/connection.py`) asks the gate when a request head is complete, before
an application task exists and before a byte of the body is read. A request the gate passes goes
to the router, which checks everything again (the gate only ever answers what the router would),
so the gate may pass anything it is unsure of: odd paths, unknown deployments, bad media types.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from serving.dataplane import PIN_HEADER, DataPlane
from serving.errors import ScoringError, error_body
from serving.limits import new_request_id, request_id
from serving.protocol import v2
from serving.protocol.mlflow import check_media_type

if TYPE_CHECKING:
    from serving.state import EndpointState

_SCORE_PATHS = (b"/score", b"/invocations")
_V2_PREFIX, _V2_SUFFIX = b"/v2/models/", b"/infer"


@dataclass(slots=True)
class Rejection:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]
    close: bool = False  # close the connection after the answer


def shaped(err: ScoringError, is_v2: bool) -> bytes:
    """The error body in the route's shape: V2's {"error", "error_code"}, else MLflow's."""
    return v2.error(err.status, err.message, err.code)[1] if is_v2 else error_body(err.code, err.message)


class Gate:
    """Called with the raw request head; returns the answer for a request refused before its body."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    def __call__(self, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]]) -> Rejection | None:
        if method != b"POST":
            return None
        path = url.split(b"?", 1)[0]
        if path in _SCORE_PATHS:
            is_v2, model = False, None
        elif path.startswith(_V2_PREFIX) and path.endswith(_V2_SUFFIX):
            raw = path[len(_V2_PREFIX):-len(_V2_SUFFIX)]
            if not raw or b"/" in raw or b"%" in raw:
                return None
            is_v2, model = True, raw.decode("latin-1")
        else:
            return None
        auth: str | None = None
        pin = rid = ctype = trace = auth
        for k, v in headers:
            if k == b"authorization":
                auth = v.decode("latin-1")
            elif k == b"azureml-model-deployment":
                pin = v.decode("latin-1")
            elif k == b"x-request-id":
                rid = v.decode("latin-1")
            elif k == b"content-type":
                ctype = v.decode("latin-1")
            elif k == b"traceparent":
                trace = v.decode("latin-1")
        plane = self.plane
        state = plane.state
        try:
            plane.auth.check(auth)
        except ScoringError as denied:
            return self._reject(denied, is_v2, rid, None, None, trace)
        names = self._candidates(state, pin if not is_v2 else None, model)
        if not names:
            return None
        if not is_v2:
            try:
                check_media_type(ctype)
            except ScoringError:
                return None  # the router answers 415 with its own message
        first: ScoringError | None = None
        for name in names:
            full = state.deployments[name].admission.refusal()
            if full is None:
                return None
            if first is None or (first.status == 503 and full.status == 429):
                first = full
        assert first is not None
        return self._reject(first, is_v2, rid, state.deployments[names[0]].version if len(names) == 1 else None,
                            names[0], trace)

    @staticmethod
    def _candidates(state: EndpointState, pin: str | None, model: str | None) -> list[str]:
        """The deployments the request may go to; empty when the router must decide (and answer)."""
        deployments = state.deployments
        wanted = model if model is not None and (model in deployments or model != state.name) else pin
        if wanted is not None:
            return [wanted] if wanted in deployments else []
        return [n for n in state.live() if n in deployments]

    def _reject(self, err: ScoringError, is_v2: bool, rid: str | None, version: str | None,
                deployment: str | None, trace: str | None) -> Rejection:
        started = time.monotonic()
        rid = request_id(rid) or new_request_id()
        out = {"x-request-id": rid}
        if version is not None and deployment is not None:
            out[PIN_HEADER] = deployment
            out["x-model-version"] = version
        self.plane.record(rid, out, err.status, started, {"traceparent": trace} if trace else {})
        headers = [(b"content-type", b"application/json")]
        headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in {**err.headers, **out}.items()]
        return Rejection(err.status, shaped(err, is_v2), headers)

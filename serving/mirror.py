"""Mirror traffic: a copy of a share of unpinned live requests, sent after the live answer.

The copy never waits: when the mirror deployment has no free admission slot it is dropped and
counted, so the mirror can never queue behind (or in front of) live requests. Its answer is only
compared with the live prediction and counted; it is never sent anywhere."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import orjson

from serving import metrics
from serving.errors import ScoringError

if TYPE_CHECKING:
    from serving.state import DeploymentState

log = logging.getLogger("scorer.router")


class MirrorShare:
    """Exactly `pct` copies per 100 requests, evenly spread (an accumulator, no randomness)."""

    def __init__(self) -> None:
        self.acc = 0

    def take(self, pct: int) -> bool:
        self.acc += pct
        if self.acc >= 100:
            self.acc -= 100
            return True
        return False


def _predictions(payload: bytes) -> Any:
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload
    return doc.get("predictions", doc) if isinstance(doc, dict) else doc


async def send_copy(dep: DeploymentState, body: bytes, content_type: str, live_status: int,
                    live_payload: bytes) -> None:
    """Score the copy on `dep` if a slot is free now; count the outcome and agreement."""
    name = dep.name
    if not dep.admission.try_acquire():
        metrics.mirror_requests_total.labels(name, "dropped").inc()
        return
    try:
        async with asyncio.timeout(dep.timeout_s) as scope:
            deadline = scope.when()
            reply, payload = await dep.balancer.call({"op": "score", "ct": content_type}, body, deadline)
    except (ScoringError, TimeoutError):
        metrics.mirror_requests_total.labels(name, "error").inc()
        return
    except Exception:
        log.exception("mirror copy to %s failed", name)
        metrics.mirror_requests_total.labels(name, "error").inc()
        return
    finally:
        dep.admission.release()
    if reply.get("status", 200) != 200:
        metrics.mirror_requests_total.labels(name, "error").inc()
        return
    metrics.mirror_requests_total.labels(name, "ok").inc()
    if live_status != 200:
        return
    agree = _predictions(payload) == _predictions(live_payload)
    metrics.mirror_agreement_total.labels(name, "true" if agree else "false").inc()

"""The heartbeat judges the replica, not the router: a router whose own event loop stalled (a
reload building state, uvicorn starting) must not take a healthy replica as unresponsive because
its answers sat unread in the socket meanwhile. Seen for real: both Ray replicas "lost" 1.2 s
after `scorer serve --address` started, while uvicorn came up."""

from __future__ import annotations

import asyncio
import time

from serving.replicas.connection import ReplicaConnection
from tests.foundation.test_frames_tcp import SECRET, _replica


def test_a_stalled_router_loop_does_not_lose_a_healthy_replica() -> None:
    async def scenario() -> None:
        srv, port = await _replica()
        lost: list[bool] = []
        conn = await ReplicaConnection.open_tcp("127.0.0.1", port, lambda: lost.append(True), SECRET,
                                                unresponsive_s=0.4)
        await asyncio.sleep(0.3)  # a ping or two answered
        time.sleep(1.0)  # the router's loop is blocked, far past unresponsive_s  # noqa: ASYNC251
        await asyncio.sleep(0.6)
        assert not lost and not conn.closed, conn.close_reason
        header, _ = await conn.call({"op": "score", "ct": "application/json"}, b"{}")
        assert header["status"] == 200
        conn.close()
        srv.close()

    asyncio.run(scenario())

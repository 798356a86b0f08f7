"""Frames over TCP between hosts: the HMAC handshake on the endpoint's secret, refusals of a wrong
secret and of garbage (the replica keeps serving), and a replica that stops answering is taken as
gone after `unresponsive_s`, so that its requests can be retried elsewhere.

The replica's real frame server (serving.worker.main.start_tcp) and the router's real connection
(serving.replicas.connection.ReplicaConnection) on 127.0.0.1; the scorer is a stand-in."""

from __future__ import annotations

import asyncio
import time

import pytest

from serving import handshake
from serving.protocol.mlflow import Reply
from serving.replicas.connection import ReplicaConnection
from serving.replicas.handle import ReplicaGone
from serving.worker.config import ReplicaConfig
from serving.worker.main import ReplicaServer, start_tcp

SECRET = b"the-endpoint-secret"


class Echo:
    def score(self, body: bytes, content_type: str) -> Reply:
        return Reply(200, body)

    def warm_up(self, example: object) -> None:
        return None


async def _replica() -> tuple[asyncio.Server, int]:
    server = ReplicaServer(Echo(), ReplicaConfig(deployment="d", model_path=None, model_version="1"))
    srv = await start_tcp(server, "127.0.0.1", 0, SECRET)
    return srv, srv.sockets[0].getsockname()[1]


def test_the_right_secret_gets_frames_through() -> None:
    async def scenario() -> None:
        srv, port = await _replica()
        conn = await ReplicaConnection.open_tcp("127.0.0.1", port, lambda: None, SECRET)
        header, body = await conn.call({"op": "score", "ct": "application/json"}, b"[1, 2]")
        assert header["status"] == 200 and body == b"[1, 2]"
        conn.close()
        srv.close()

    asyncio.run(scenario())


def test_a_wrong_secret_and_garbage_are_refused_and_the_replica_keeps_serving() -> None:
    async def scenario() -> None:
        srv, port = await _replica()
        with pytest.raises((handshake.HandshakeFailed, ConnectionError)):
            await ReplicaConnection.open_tcp("127.0.0.1", port, lambda: None, b"another-secret")
        # garbage: the replica closes without reading a frame (its first bytes are the challenge)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await reader.readexactly(len(handshake.MAGIC))) == handshake.MAGIC
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"\0" * 64)
        rest = await asyncio.wait_for(reader.read(), 5)  # EOF: closed
        assert len(rest) == handshake.NONCE  # the challenge, then nothing: no frame answered
        writer.close()
        # a silent client is cut after the handshake timeout, not held open
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        t0 = time.monotonic()
        await asyncio.wait_for(reader.read(), handshake.TIMEOUT_S + 5)
        assert handshake.TIMEOUT_S - 0.5 <= time.monotonic() - t0 < handshake.TIMEOUT_S + 5
        writer.close()
        conn = await ReplicaConnection.open_tcp("127.0.0.1", port, lambda: None, SECRET)
        header, _ = await conn.call({"op": "score", "ct": "application/json"}, b"{}")
        assert header["status"] == 200
        conn.close()
        srv.close()

    asyncio.run(scenario())


def test_a_router_refuses_a_peer_that_is_not_a_replica_with_the_secret() -> None:
    async def scenario() -> None:
        async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(handshake.MAGIC + b"\1" * handshake.NONCE)
            await reader.readexactly(handshake.DIGEST + handshake.NONCE)
            writer.write(b"\2" * handshake.DIGEST)  # cannot prove the secret
            await asyncio.sleep(1)
            writer.close()

        srv = await asyncio.start_server(impostor, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        with pytest.raises(handshake.HandshakeFailed, match="does not hold"):
            await ReplicaConnection.open_tcp("127.0.0.1", port, lambda: None, SECRET)
        srv.close()

    asyncio.run(scenario())


def test_a_replica_that_stops_answering_is_taken_as_gone() -> None:
    async def scenario() -> None:
        async def frozen(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await handshake.accept(reader, writer, SECRET)
            await asyncio.sleep(30)  # reads nothing, answers nothing (a link down looks the same)

        srv = await asyncio.start_server(frozen, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        closed = asyncio.Event()
        conn = await ReplicaConnection.open_tcp("127.0.0.1", port, closed.set, SECRET, unresponsive_s=0.4)
        t0 = time.monotonic()
        with pytest.raises(ReplicaGone):
            await asyncio.wait_for(conn.call({"op": "score", "ct": "application/json"}, b"{}"), 10)
        waited = time.monotonic() - t0
        assert 0.3 <= waited < 3, waited
        assert closed.is_set() and conn.closed and conn.close_reason == "unresponsive"
        srv.close()

    asyncio.run(scenario())


def test_a_busy_replica_that_answers_pings_is_not_taken_as_gone() -> None:
    async def scenario() -> None:
        class Slow(Echo):
            def score(self, body: bytes, content_type: str) -> Reply:
                time.sleep(1.2)  # in the scoring thread: the replica's loop still answers pings
                return Reply(200, body)

        server = ReplicaServer(Slow(), ReplicaConfig(deployment="d", model_path=None, model_version="1"))
        srv = await start_tcp(server, "127.0.0.1", 0, SECRET)
        port = srv.sockets[0].getsockname()[1]
        conn = await ReplicaConnection.open_tcp("127.0.0.1", port, lambda: None, SECRET, unresponsive_s=0.4)
        header, _ = await conn.call({"op": "score", "ct": "application/json"}, b"{}")
        assert header["status"] == 200 and not conn.closed
        conn.close()
        srv.close()

    asyncio.run(scenario())


def test_silence_alone_does_not_drop_the_last_ready_replica() -> None:
    """A silent replica is kept while no other replica of its deployment is ready (silence can be the
    router's own busy loop); it goes when its connection really closes."""
    async def scenario() -> None:
        release = asyncio.Event()

        async def frozen(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await handshake.accept(reader, writer, SECRET)
            await release.wait()  # silent until released, then closes
            writer.close()

        srv = await asyncio.start_server(frozen, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        closed = asyncio.Event()
        conn = await ReplicaConnection.open_tcp("127.0.0.1", port, closed.set, SECRET, unresponsive_s=0.3,
                                                others_ready=lambda: False)
        await asyncio.sleep(1.5)  # five times the silence limit
        assert not conn.closed and conn.kept_silent
        release.set()
        await asyncio.wait_for(closed.wait(), 5)
        assert conn.closed and conn.close_reason is None  # closed by the replica, not given up on
        srv.close()

    asyncio.run(scenario())

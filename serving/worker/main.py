"""The replica process: load the model once, warm it up, then answer frames on a Unix socket.

Started from a forkserver that has mlflow, pandas and sklearn imported already, so a start costs
the model load, not the imports. The router holds the other end of `status`: the replica reports
`("ready", info)` or `("error", one_line)` on it, and exits when it closes (router gone).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from serving import frames, handshake
from serving.errors import ScoringError, clip, error_body
from serving.protocol.mlflow import Reply, Scorer
from serving.worker.batcher import Batcher, spent
from serving.worker.config import ReplicaConfig
from serving.worker.load import build_scorer

log = logging.getLogger("scorer.replica")


class ReplicaServer:
    def __init__(self, scorer: Scorer, cfg: ReplicaConfig) -> None:
        self.scorer = scorer
        self.cfg = cfg
        # Requests admitted beyond `threads` wait in the executor's queue: more Python threads than
        # a few only add GIL contention for CPU-bound models. Default 1, as Azure ML's single-worker
        # inference server; SCORER_REPLICA_THREADS raises it for I/O-bound models and scripts.
        threads = min(max(1, cfg.max_concurrent), max(1, int(os.environ.get("SCORER_REPLICA_THREADS", "1"))))
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="score")
        self.busy = 0
        self.futures: dict[int, concurrent.futures.Future[Reply]] = {}
        self.batcher: Batcher | None = None
        if cfg.max_batch_size > 1 and hasattr(scorer, "schema"):  # tabular MLflow models only
            self.batcher = Batcher(scorer, self.pool, cfg.max_batch_size, cfg.max_batch_wait_ms, cfg.deployment)

    def _score(self, body: bytes, content_type: str, expires: float | None = None) -> Reply:
        if expires is not None and time.monotonic() >= expires:
            return spent()  # waited for a thread past its deadline: nobody waits for the answer
        try:
            return self.scorer.score(body, content_type)
        except ScoringError as err:
            return Reply(err.status, err.body(), headers=err.headers)
        except Exception as exc:  # a bug of ours, not the client's: still no traceback on the wire
            log.exception("deployment %s: unexpected error while scoring", self.cfg.deployment)
            return Reply(500, error_body("INTERNAL_ERROR", clip(f"{type(exc).__name__}: {exc}")))

    async def _handle_score(self, rid: int, header: dict[str, Any], body: bytes,
                            writer: frames.FrameWriter) -> None:
        loop = asyncio.get_running_loop()
        self.busy += 1
        t0 = time.perf_counter()
        budget = header.get("ms")  # what is left of the request's deadline, in ms, when it was sent
        expires = time.monotonic() + budget / 1000.0 if isinstance(budget, int | float) else None
        size = 0
        try:
            batched = self.batcher.admit(rid, body, header.get("ct") or "", expires) if self.batcher else None
            if batched is not None:
                reply, size = await batched
            else:
                cf = self.pool.submit(self._score, body, header.get("ct") or "", expires)
                self.futures[rid] = cf
                reply = await asyncio.wrap_future(cf, loop=loop)
        except ScoringError as err:  # rejected before joining a batch
            reply = Reply(err.status, err.body(), headers=err.headers)
        except Exception as exc:  # a bug of ours while admitting: answer it rather than leave it hanging
            log.exception("deployment %s: unexpected error while admitting a request", self.cfg.deployment)
            reply = Reply(500, error_body("INTERNAL_ERROR", clip(f"{type(exc).__name__}: {exc}")))
        except asyncio.CancelledError:  # the router gave up before it started: it never runs
            reply = Reply(499, error_body("CANCELLED", "cancelled before it started"))
        finally:
            self.busy -= 1
            self.futures.pop(rid, None)
        # "t": seconds spent decoding, predicting and encoding (the model stage, for metrics);
        # "b": requests merged into the predict call that answered this one (batching on)
        out = {"id": rid, "status": reply.status, "ct": reply.media_type, "t": round(time.perf_counter() - t0, 6)}
        if size:
            out["b"] = size
        if reply.headers:
            out["h"] = reply.headers
        writer.write(frames.encode(out, reply.body))

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks: set[asyncio.Task[None]] = set()
        out = frames.FrameWriter(writer)
        try:
            while True:
                header, payload = await frames.read_frame(reader)
                rid = header.get("id", 0)
                op = header.get("op")
                if op == "score":
                    t = asyncio.create_task(self._handle_score(rid, header, payload, out))
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
                elif op == "cancel":
                    target = self.futures.get(header.get("target", -1))
                    if target is not None:
                        target.cancel()  # succeeds only while it waits for a thread, never once running
                    elif self.batcher is not None:
                        self.batcher.cancel(header.get("target", -1))
                elif op in ("ping", "ready"):
                    out.write(frames.encode({"id": rid, "status": 200, "busy": self.busy, "pid": os.getpid()}))
                else:
                    out.write(frames.encode({"id": rid, "status": 400}, error_body("BAD_REQUEST", f"op {op!r}")))
                if out.buffered() > 1 << 20:
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def start_tcp(server: ReplicaServer, host: str, port: int, secret: bytes) -> asyncio.Server:
    """Frames over TCP for a router on another host: every connection passes the handshake on the
    endpoint's secret first (serving/handshake.py); one that fails is closed before a frame is read."""

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handshake.accept(reader, writer, secret)
        except (handshake.HandshakeFailed, ConnectionError) as exc:
            log.warning("deployment %s: refused a frame connection from %s: %s", server.cfg.deployment,
                        writer.get_extra_info("peername"), exc)
            writer.close()
            return
        await server.connection(reader, writer)

    return await asyncio.start_server(guarded, host, port, limit=1 << 24)


def _exit_when_router_goes(status: Any) -> None:
    def watch() -> None:
        with contextlib.suppress(EOFError, OSError):
            status.recv()
        os._exit(0)

    threading.Thread(target=watch, name="router-watch", daemon=True).start()


def replica_main(cfg: ReplicaConfig, socket_path: str, status: Any) -> None:
    """Entry point in the child process."""
    started = time.perf_counter()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the router, which stops us
    os.environ.update(cfg.environment)
    from scorer.environment import configure, settle_heap

    configure()
    from serving import logs

    logs.setup(os.environ.get("SCORER_LOG_FORMAT", "text"))
    try:
        scorer, example = build_scorer(cfg)
    except Exception as exc:
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        with contextlib.suppress(Exception):
            status.send(("error", f"{type(exc).__name__}: {line}" if type(exc).__name__ not in line else line))
        sys.exit(1)
    loaded = time.perf_counter()
    try:
        scorer.warm_up(example)
    except Exception as exc:
        log.warning("deployment %s: warm-up on the input example failed: %s", cfg.deployment, exc)
    warmed = time.perf_counter()
    server = ReplicaServer(scorer, cfg)
    settle_heap()

    async def serve() -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(socket_path)
        srv = await asyncio.start_unix_server(server.connection, path=socket_path)
        status.send(("ready", {"pid": os.getpid(), "load_s": loaded - started, "warm_s": warmed - loaded}))
        _exit_when_router_goes(status)
        async with srv:
            await srv.serve_forever()

    try:
        import uvloop

        uvloop.run(serve())
    except ImportError:
        asyncio.run(serve())

"""The client port's HTTP protocol: uvicorn's httptools protocol with every connection bounded.

Per connection, one deadline at a time: the first byte of a request (`first_byte_timeout_s`, also
between keep-alive requests), the whole request head (`header_timeout_s`, then 408 and close), the
whole body (`body_timeout_s`: the router answers 408; this closes the connection shortly after as
a backstop). Heads are capped in bytes and fields (431). At `max_connections` the connection that
has waited longest without a complete request head is closed to make room, never the new one.
Request bytes held at once are capped (`max_buffered_bytes`, 429). Scoring requests the gate
refuses (401 / 429 / 503) are answered from the head, without an application task and without
reading the body; if the body has not fully arrived, the connection is closed, else it is not
read again for `refusal_pause_s` (the Retry-After).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from serving import metrics
from serving.body import BODY_IN
from serving.errors import ScoringError
from serving.gate import Gate, Rejection, shaped
from serving.limits import MAX_REQUEST_ID, Limits

WAIT, HEAD, BODY, ACTIVE = range(4)  # waiting for a request / reading its head / its body / answering
BODY_GRACE_S = 2.0  # after body_timeout_s the router answers 408; the connection is cut this much later


class _Answered:
    """Stands in for uvicorn's request cycle when the gate answered: the parser drops the body."""

    response_complete = True
    keep_alive = False
    more_body = False
    disconnected = False

    class _NoEvent:
        def set(self) -> None:
            return None

    message_event = _NoEvent()


ANSWERED: Any = _Answered()  # stands in for a RequestResponseCycle: compared by identity


class Connections:
    """What every connection shares: the limits, the gate, the connections without a complete
    request head (oldest first, for eviction), the count of open connections and buffered bytes."""

    def __init__(self, limits: Limits, gate: Gate | None = None) -> None:
        self.limits = limits
        self.gate = gate
        self.idle: dict[Any, None] = {}
        self.open = 0
        self.buffered = 0
        metrics.connections.set_function(lambda: self.open)
        metrics.buffered_request_bytes.set_function(lambda: self.buffered)

    def evict(self, keep: Any) -> bool:
        """Close the longest-idle connection without a request head (not `keep`); False if none."""
        for proto in self.idle:
            if proto is not keep:
                proto.close_for("evicted")
                return True
        return False


class _OneWrite:
    """Stands in for the transport while an answer's head waits for its body: writes are held and
    leave together at `flush` (or before a close)."""

    __slots__ = ("transport", "parts")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def flush(self) -> None:
        if self.parts:
            data = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
            self.parts = []
            if not self.transport.is_closing():
                self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


def protocol_class(shared: Connections) -> type:
    """A protocol class for uvicorn's `http=` bound to `shared`."""
    from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

    lim = shared.limits

    class LimitedHttpTools(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._phase = WAIT
            self._timer: asyncio.TimerHandle | None = None
            self._counted = False
            self._raw_head = 0  # bytes received while the head was incomplete
            self._head_size = 0  # request target and header fields, as parsed
            self._fields = 0
            self._reserved = 0  # this connection's share of shared.buffered
            self._received = 0
            self._pending: Rejection | None = None  # decided at the head, written when the body is in
            self._resume: asyncio.TimerHandle | None = None  # reading paused after a refusal
            self._over_cap = False

        # -- connection ---------------------------------------------------------------------
        def connection_made(self, transport: Any) -> None:
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().connection_made(transport)
            shared.open += 1
            self._counted = True
            if shared.open > lim.max_connections and not shared.evict(self):
                self._over_cap = True  # every other connection is mid-request: answer 503 at the head
            self._wait(lim.first_byte_timeout_s)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._resume is not None:
                self._resume.cancel()
            shared.idle.pop(self, None)
            self._uncount()
            self._release()
            super().connection_lost(exc)

        def close_for(self, reason: str) -> None:
            """Close because of a limit (counted by reason)."""
            metrics.connections_closed_total.labels(reason).inc()
            self._disarm()
            shared.idle.pop(self, None)
            self._uncount()
            if not self.transport.is_closing():
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            if self._phase <= HEAD:
                self._raw_head += len(data)
            super().data_received(data)
            if self.transport.is_closing():
                return
            if self._pending is not None:  # refused at the head, body still arriving: do not read it
                self._answer(close=True)
            elif self._phase <= HEAD and self._raw_head > lim.max_header_bytes:
                self._refuse_now(431, f"request head over max_header_bytes={lim.max_header_bytes}", "header_limit")

        # -- parser callbacks ---------------------------------------------------------------
        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._phase, self._head_size, self._fields = HEAD, 0, 0
            self._arm(lim.header_timeout_s)

        def on_url(self, url: bytes) -> None:
            self._head_size += len(url)
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._fields += 1
            self._head_size += len(name) + len(value) + 4
            if self._fields > lim.max_headers or self._head_size > lim.max_header_bytes:
                return  # refused at the end of the head; nothing more is kept
            if len(value) > MAX_REQUEST_ID and name.lower() == b"x-request-id":
                value = value[:MAX_REQUEST_ID]
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._disarm()
            shared.idle.pop(self, None)
            self._phase, self._raw_head = BODY, 0
            self._received = 0
            pipelined = self.cycle is not None and not self.cycle.response_complete
            rejection = self._judge()
            if rejection is not None:
                if pipelined:  # an answer is still being written before this one: just cut
                    self.close_for("header_limit")
                    return
                self._pending, self.cycle = rejection, ANSWERED
                return
            super().on_headers_complete()
            self._close_if_body_unread(self.cycle)
            self._arm(lim.body_timeout_s + BODY_GRACE_S)

        def on_body(self, body: bytes) -> None:
            cycle = self.cycle
            if cycle is ANSWERED or cycle.response_complete:
                return
            self._received += len(body)
            if self._received > self._reserved:  # chunked bodies reserve as they arrive
                grow = self._received - self._reserved
                if shared.buffered + grow > lim.max_buffered_bytes:
                    if not cycle.response_started:
                        cycle.disconnected = True
                        cycle.message_event.set()
                        self._write(self._buffered_full(), close=True)
                    self.close_for("buffered_limit")
                    return
                shared.buffered += grow
                self._reserved = self._received
            super().on_body(body)

        def on_message_complete(self) -> None:
            self._disarm()
            if self.cycle is ANSWERED:
                if self._pending is not None:
                    self._answer(close=not self.parser.should_keep_alive())
                return
            self._phase = ACTIVE
            super().on_message_complete()
            if self.cycle is not None and not self.cycle.more_body:
                scope: dict[str, Any] = self.cycle.scope  # type: ignore[assignment]  # a TypedDict; the key is ours
                scope[BODY_IN] = True

        def on_response_complete(self) -> None:
            super().on_response_complete()
            cycle = self.cycle
            if self.transport.is_closing() or cycle is None or not cycle.response_complete:
                return  # closing, or a pipelined request is on its way
            self._unset_keepalive_if_required()  # this class keeps its own idle deadline
            self._release()
            if cycle.more_body:  # answered before the body was in: neither wait for it nor read it
                self.transport.close()
                return
            self._wait(lim.first_byte_timeout_s)

        @staticmethod
        def _close_if_body_unread(cycle: Any) -> None:
            """An answer that starts before the whole body is in says `connection: close`: the
            connection is closed after it (the rest of the body is never read), and a client that
            was not told would send its next request into a closing socket (a reset, not a reply).

            The answer's head is held until its first body part and both leave in one write: uvicorn
            writes them apart, and with TCP_NODELAY that is two packets, two wake-ups of the client
            and a fifth of the router's time under load (measured with py-spy at 64 connections)."""
            send = cycle.send
            transport = cycle.transport

            async def send_closing(message: Any) -> None:
                if message["type"] == "http.response.start":
                    if cycle.more_body:
                        cycle.keep_alive = False
                    cycle.transport = _OneWrite(transport)
                    await send(message)
                    return
                held = cycle.transport
                try:
                    await send(message)
                finally:
                    if held is not transport:
                        cycle.transport = transport
                        held.flush()

            cycle.send = send_closing

        # -- decisions at the head ----------------------------------------------------------
        def _judge(self) -> Rejection | None:
            if self._fields > lim.max_headers:
                return self._error(431, f"{self._fields} header fields: over max_headers={lim.max_headers}")
            if self._head_size > lim.max_header_bytes:
                return self._error(431, f"request head of {self._head_size} bytes: over "
                                   f"max_header_bytes={lim.max_header_bytes}")
            if self._over_cap:
                return self._error(503, f"the server is at max_connections={lim.max_connections}; retry later",
                                   {"Retry-After": "1"})
            declared = 0
            for name, value in self.headers:
                if name == b"content-length":
                    declared = int(value) if value.isdigit() else 0
                    break
            if declared > lim.max_body_bytes:
                declared = 0  # the router answers 413 without reading it
            if declared and shared.buffered + declared > lim.max_buffered_bytes:
                metrics.connections_closed_total.labels("buffered_limit").inc()
                return self._buffered_full()
            if shared.gate is not None:
                rejection = shared.gate(self.parser.get_method(), self.url, self.headers)
                if rejection is not None:
                    return rejection
            self._reserved += declared
            shared.buffered += declared
            return None

        def _buffered_full(self) -> Rejection:
            return self._error(429, f"the server holds its limit of request bytes (max_buffered_bytes="
                               f"{lim.max_buffered_bytes}); retry later", {"Retry-After": "1"})

        def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Rejection:
            code = "BAD_REQUEST" if status == 431 else None
            err = ScoringError(status, message, code, headers)
            hdrs = [(b"content-type", b"application/json")]
            hdrs += [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
            return Rejection(status, shaped(err, self.url.startswith(b"/v2/")), hdrs, close=status != 429)

        # -- answers and deadlines ----------------------------------------------------------
        def _write(self, rejection: Rejection, close: bool) -> None:
            parts = [STATUS_LINE[rejection.status]]
            for name, value in [*self.server_state.default_headers, *rejection.headers]:
                parts += [name, b": ", value, b"\r\n"]
            parts += [b"content-length: ", str(len(rejection.body)).encode(), b"\r\n"]
            if close:
                parts.append(b"connection: close\r\n")
            parts += [b"\r\n", rejection.body]
            self.transport.write(b"".join(parts))

        def _answer(self, close: bool) -> None:
            rejection, self._pending = self._pending, None
            assert rejection is not None
            close = close or rejection.close
            self._write(rejection, close)
            if close:
                self.transport.close()
                return
            self._wait(lim.first_byte_timeout_s + lim.refusal_pause_s)
            if lim.refusal_pause_s > 0 and self._resume is None:
                # a flood on kept-alive connections gets one refusal per connection per pause, so the
                # requests that are admitted keep the event loop (goodput under a 10x flood)
                self.transport.pause_reading()
                self._resume = self.loop.call_later(lim.refusal_pause_s, self._resume_reading)

        def _refuse_now(self, status: int, message: str, reason: str) -> None:
            if self.cycle is None or self.cycle.response_complete:
                self._write(self._error(status, message), close=True)
            self.close_for(reason)

        def _wait(self, seconds: float) -> None:
            """No request head yet: idle deadline, and first in line for eviction at the cap."""
            shared.idle[self] = None
            if self._phase != HEAD:
                self._phase = WAIT
                self._arm(seconds)

        def _arm(self, seconds: float) -> None:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _expired(self) -> None:
            self._timer = None
            if self.transport.is_closing():
                return
            if self._phase == WAIT:
                self.close_for("idle")
            elif self._phase == HEAD:
                self._refuse_now(408, f"request head not received within header_timeout_s={lim.header_timeout_s:g}",
                                 "head_timeout")
            elif self._phase == BODY:
                self.close_for("body_timeout")

        def _resume_reading(self) -> None:
            self._resume = None
            if not self.transport.is_closing():
                self.transport.resume_reading()

        def _uncount(self) -> None:
            if self._counted:
                shared.open -= 1
                self._counted = False

        def _release(self) -> None:
            shared.buffered -= self._reserved
            self._reserved = self._received = 0

    return LimitedHttpTools

"""The access log `scorer serve` writes itself: the same line the logging module would print for the
`scorer.access` record, in order with every other record, and none lost at the end."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving import logs

_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)
_fields = st.fixed_dictionaries(
    {"request_id": _text, "deployment": _text, "model_version": _text, "status": st.integers(100, 599),
     "ms": st.floats(0, 1e6, allow_nan=False)},
    optional={"traceparent": _text, "note": _text})


class _Writes(io.StringIO):
    """A stream that counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        return super().write(s)


@pytest.fixture
def own_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`logs.setup` takes the root logger, as `scorer serve` does; pytest's handlers come back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.setenv("SCORER_LOG_FORMAT", "text")
    yield
    logs.flush()
    root.handlers[:] = handlers
    root.setLevel(level)


def _setup(fmt: str, stream: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", stream)
    logs.setup(fmt)


def _formatted(handler: logging.Handler, message: str, fields: dict[str, Any], now: float) -> str:
    record = logging.LogRecord("scorer.access", logging.INFO, __file__, 1, "%s", (message,), None)
    record.created, record.msecs, record.process = now, int((now - int(now)) * 1000) + 0.0, os.getpid()
    record.fields = fields
    return handler.format(record)


@settings(max_examples=200, deadline=None)
@given(fields=_fields, now=st.floats(0, 4e9, allow_nan=False), fmt=st.sampled_from(["text", "json"]))
def test_an_access_line_is_what_the_formatter_would_print(fields: dict[str, Any], now: float, fmt: str) -> None:
    handler = logs._Handler(io.StringIO(), json=fmt == "json")
    handler.setFormatter(logs.JsonFormatter() if fmt == "json" else logging.Formatter(logs._TEXT_FORMAT))
    message = " ".join(f"{k}={v}" for k, v in fields.items())
    assert handler.line(message, fields, now) == _formatted(handler, message, fields, now)


def test_access_lines_keep_their_order_and_leave_in_one_write(own_log: None, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = _Writes()
    _setup("json", stream, monkeypatch)
    router = logging.getLogger("scorer.router")

    async def requests() -> None:
        for i in range(5):
            logs.access({"request_id": f"r{i}", "status": 200})
        router.warning("between")
        logs.access({"request_id": "r5", "status": 503})
        logs.access({"request_id": "r6", "status": 200})
        assert stream.getvalue().count("\n") == 6  # the five before the warning, then the warning
        await asyncio.sleep(0)  # the loop turns: what waited is written

    asyncio.run(requests())
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [d.get("request_id", d["message"]) for d in lines] == ["r0", "r1", "r2", "r3", "r4", "between", "r5", "r6"]
    assert lines[6]["status"] == 503 and lines[6]["logger"] == "scorer.access" and lines[6]["level"] == "info"
    assert stream.writes == 3  # five lines, the warning, two lines


def test_waiting_lines_are_written_at_flush_and_without_a_loop(own_log: None, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = _Writes()
    _setup("text", stream, monkeypatch)
    logs.access({"request_id": "outside", "status": 200})  # no event loop: at once
    assert "scorer.access[" in stream.getvalue() and "request_id=outside status=200" in stream.getvalue()

    async def last() -> None:
        logs.access({"request_id": "last", "status": 200})
        assert "request_id=last" not in stream.getvalue()  # waits for the loop to turn
        logs.flush()  # what `scorer serve` calls on its way out, when the loop may not turn again
        assert "request_id=last status=200" in stream.getvalue()

    asyncio.run(last())
    assert stream.getvalue().count("request_id=last") == 1


def test_someone_elses_logging_gets_ordinary_records(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="scorer.access"):
        logs.access({"request_id": "abc", "status": 200})
    (record,) = [r for r in caplog.records if r.name == "scorer.access"]
    assert record.getMessage() == "request_id=abc status=200"
    assert record.__dict__["fields"] == {"request_id": "abc", "status": 200}


def test_records_from_another_thread_lose_no_access_line(own_log: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A router thread that logs flushes the waiting lines while the event loop adds to them (under the
    handler's lock: an append to the list a flush had just taken would be lost)."""
    stream = _Writes()
    _setup("text", stream, monkeypatch)
    other = logging.getLogger("scorer.router")
    stop = threading.Event()

    def chatter() -> None:
        while not stop.is_set():
            other.info("from a thread")

    async def requests() -> None:
        for i in range(3000):
            logs.access({"request_id": f"r{i}"})
            if i % 10 == 9:
                await asyncio.sleep(0)
        await asyncio.sleep(0)

    thread = threading.Thread(target=chatter)
    thread.start()
    try:
        asyncio.run(requests())
    finally:
        stop.set()
        thread.join(10)
    written = [line for line in stream.getvalue().splitlines() if "scorer.access" in line]
    assert [line.rsplit("request_id=", 1)[1] for line in written] == [f"r{i}" for i in range(3000)]

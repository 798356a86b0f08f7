"""Logging for `scorer serve`: text or one JSON object per line."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from typing import Any, TextIO

import orjson

_TEXT_FORMAT = "%(asctime)s %(name)s[%(process)d] %(levelname)s %(message)s"
_access = logging.getLogger("scorer.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
               "level": record.levelname.lower(), "logger": record.name, "pid": record.process,
               "message": record.getMessage()}
        fields = getattr(record, "fields", None)  # structured access-log fields, flat in the object
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


class _Handler(logging.StreamHandler[TextIO]):
    """`setup`'s handler. It also writes the access log, whose lines wait for the end of the event
    loop's turn and leave in one write; they go out before any other record, so the log keeps its order."""

    def __init__(self, stream: TextIO, json: bool) -> None:
        super().__init__(stream)
        self.json = json
        self.pending: list[str] = []
        self._second = -1
        self._stamp = ""
        self._pid = 0

    def emit(self, record: logging.LogRecord) -> None:
        if self.pending:
            self.flush_access()
        super().emit(record)

    def access(self, message: str, fields: dict[str, Any]) -> None:
        """Queue the line `self.format` would make of the `scorer.access` record, without building the
        record: its caller lookup, process and thread ids, lock and flush per line cost the router about
        60 us a request at 64 connections."""
        line = self.line(message, fields, time.time())
        self.acquire()  # a record from another thread may be flushing `pending` meanwhile
        try:
            first = not self.pending
            self.pending.append(line)
        finally:
            self.release()
        if first:  # whoever makes `pending` non-empty sees to its flush
            try:
                asyncio.get_running_loop().call_soon(self.flush_access)
            except RuntimeError:  # no event loop in this thread: write at once
                self.flush_access()

    def line(self, message: str, fields: dict[str, Any], now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second, self._pid = second, os.getpid()
            self._stamp = (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)) if self.json else
                           time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second)))
        ms = int((now - second) * 1000)
        if not self.json:
            return f"{self._stamp},{ms:03d} scorer.access[{self._pid}] INFO {message}"
        doc = {"time": f"{self._stamp}.{ms:03d}Z", "level": "info", "logger": "scorer.access", "pid": self._pid,
               "message": message}
        doc.update(fields)
        return orjson.dumps(doc).decode()

    def flush_access(self) -> None:
        self.acquire()
        try:
            if self.pending:
                lines, self.pending = self.pending, []
                lines.append("")
                self.stream.write(self.terminator.join(lines))
                self.flush()
        except Exception:  # as logging does: a broken stream never fails a request
            self.pending = []
        finally:
            self.release()


def setup(fmt: str) -> None:
    """Configure the root logger; children (replicas) inherit the choice via SCORER_LOG_FORMAT."""
    os.environ["SCORER_LOG_FORMAT"] = fmt
    handler = _Handler(sys.stderr, json=fmt == "json")
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(_TEXT_FORMAT))
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, _Handler):
            old.flush_access()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for noisy in ("mlflow", "alembic", "urllib3", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def access_enabled() -> bool:
    return _access.isEnabledFor(logging.INFO)


def access(fields: dict[str, Any]) -> None:
    """One access-log line (`scorer.access`, INFO): `k=v` pairs as text, or keys of the JSON object.
    Where `setup` owns the log it writes the line itself; anywhere else (a host application's logging,
    pytest's caplog) the line is an ordinary record of the `scorer.access` logger."""
    message = " ".join(f"{k}={v}" for k, v in fields.items())
    handlers = logging.root.handlers
    if (len(handlers) == 1 and isinstance(handlers[0], _Handler) and not _access.handlers and _access.propagate
            and not _access.filters):
        handlers[0].access(message, fields)
    else:
        _access.info("%s", message, extra={"fields": fields})


def flush() -> None:
    """Write the access lines still waiting (at shutdown, when the event loop may not turn again)."""
    for handler in logging.root.handlers:
        if isinstance(handler, _Handler):
            handler.flush_access()

"""One bounded JSON decode for every request body (MLflow JSON, V2 JSON and the V2 binary header).

orjson parses first (fast; it refuses nesting past 1024 levels and numbers past the float range);
a body it refuses for NaN, Infinity or a float past the range is read again by Python's json, as
MLflow does. Then one walk over the containers (elements are typed in C, so a long row costs
little) enforces the nesting limit and finds integers that no float can hold, so the client gets
400 naming the field instead of a RecursionError or an OverflowError deeper down (a 500).
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import orjson

from serving.errors import ScoringError

DEFAULT_MAX_DEPTH = 64
FLOAT_MAX = 1.7976931348623157e308
_CONTAINERS = (list, dict)


@functools.cache
def max_depth() -> int:
    """SCORER_MAX_JSON_DEPTH (default 64, at most 1000): JSON nested deeper is a 400. Read once per
    process (replicas inherit the router's environment)."""
    raw = os.environ.get("SCORER_MAX_JSON_DEPTH", "")
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) <= 1000 else DEFAULT_MAX_DEPTH


class _Huge(str):
    """An integer literal no float can hold (kept as text until the walk names where it sits)."""


def _int(text: str) -> int | float | _Huge:
    """json's parse_int, made to agree with orjson: 64-bit integers stay ints, larger ones are floats,
    and one past the float range is a client error (pandas and numpy would raise OverflowError)."""
    if len(text) > 310:
        return _Huge(text)
    value = int(text)
    if -(1 << 63) <= value < (1 << 64):
        return value
    as_float = float(value) if abs(value) <= FLOAT_MAX else None
    return _Huge(text) if as_float is None else as_float


def clip_value(value: Any, limit: int = 60) -> str:
    """A short, safe rendering of a client's value for an error message."""
    if isinstance(value, _CONTAINERS):
        try:
            text = orjson.dumps(value).decode()
        except (TypeError, orjson.JSONEncodeError):
            text = type(value).__name__
    else:
        text = repr(value) if not isinstance(value, _Huge) else str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def where(path: tuple[Any, ...], root: str = "") -> str:
    """`dataframe_split.data[0][1]` for the path ("dataframe_split", "data", 0, 1)."""
    out = root
    shown = path if len(path) <= 12 else (*path[:10], "...", path[-1])
    for p in shown:
        out += f"[{p}]" if isinstance(p, int) or p == "..." else (f".{p}" if out else str(p))
    return out or "request body"


def _too_deep(what: str, limit: int) -> ScoringError:
    return ScoringError(400, f"{what}: JSON nested too deeply (nesting depth over the limit of {limit}; "
                             "SCORER_MAX_JSON_DEPTH)")


def loads(body: bytes | str, what: str = "request body", lenient: bool = True, shallow: bool = False) -> Any:
    """The decoded document, or ScoringError 400 naming the problem (never RecursionError).
    `shallow`: a document orjson parsed is returned without the depth walk (orjson yields no
    out-of-range numbers and stops at 1024 levels); the caller then calls `check` on it unless it
    recognised the whole document as one of a known, shallow shape."""
    limit = max_depth()
    try:
        doc = orjson.loads(body)
        if shallow:
            return doc
        # orjson yields no out-of-range numbers, and a document cannot nest deeper than it has
        # opening brackets: a small body (one-row requests) needs no walk at all
        raw = body.encode() if isinstance(body, str) else body
        if raw.count(b"[") + raw.count(b"{") <= limit:
            return doc
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):
            raise _too_deep(what, limit) from None
        if not lenient:
            raise ScoringError(400, f"{what} is not valid JSON: {exc}") from None
        try:  # NaN, Infinity, floats past the range: what Python's json (and MLflow) accepts
            doc = json.loads(body, parse_int=_int)
        except RecursionError:
            raise _too_deep(what, limit) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ScoringError(400, f"{what} is not valid JSON: {exc}") from None
    check(doc, limit)
    return doc


def check(doc: Any, limit: int, root: str = "") -> None:
    """Depth and out-of-range numbers, without recursion: a 400 naming the first offending field.
    A level-by-level pass first (elements typed in C, no paths kept); only a document that fails it
    is walked again with paths, to name the field."""
    if _fine(doc, limit):
        return
    if isinstance(doc, _Huge):
        raise _out_of_range((), doc, root)
    if not isinstance(doc, _CONTAINERS):
        return
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(doc, 1, ())]
    while stack:
        node, depth, path = stack.pop()
        if depth > limit:
            raise ScoringError(400, f"{where(path, root)}: JSON nested too deeply (nesting depth over the "
                                    f"limit of {limit}; SCORER_MAX_JSON_DEPTH)")
        items = node.values() if type(node) is dict else node
        kinds = set(map(type, items))
        if list not in kinds and dict not in kinds and _Huge not in kinds:
            continue
        pairs = node.items() if type(node) is dict else enumerate(node)
        for key, value in pairs:
            if type(value) is _Huge:
                raise _out_of_range((*path, key), value, root)
            if type(value) is list or type(value) is dict:
                stack.append((value, depth + 1, (*path, key)))


def _fine(doc: Any, limit: int) -> bool:
    if type(doc) is not list and type(doc) is not dict:
        return type(doc) is not _Huge
    level, depth = [doc], 0
    while level:
        depth += 1
        if depth > limit:
            return False
        below: list[Any] = []
        for node in level:
            items = node.values() if type(node) is dict else node
            kinds = set(map(type, items))
            if _Huge in kinds:
                return False
            if list in kinds or dict in kinds:
                below.extend([v for v in items if type(v) is list or type(v) is dict])
        level = below
    return True


def _out_of_range(path: tuple[Any, ...], value: str, root: str) -> ScoringError:
    return ScoringError(400, f"{where(path, root)}: number {clip_value(value, 40)} is out of range (a "
                             "JSON number must fit a 64-bit float, |x| <= 1.8e308)")

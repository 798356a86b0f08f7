"""An actor's reading of a CSV or JSON Lines mini-batch, with row-local failures.

The fast path parses the whole byte range at once. Only when that fails (a bad cell, a row with
the wrong number of fields) are the rows parsed in groups of 256, a group that fails in groups
of 16, and those row by row, all in memory, so that one bad cell fails its row alone, with its
line, column and value, and is never sent back to the scheduler to be split. Rows the planner
already failed (unbalanced quote, too long) are not even read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from batch.lines import Scanner, TextOptions
from batch.plan import MiniBatch, line_of
from batch.storage import open_input

GROUPS = (256, 16)  # rows parsed together once the fast path has failed; a failing group, in smaller ones
SHOWN = 200  # characters of a bad value or line kept in errors.jsonl


class InputChanged(Exception):
    """The bytes no longer hold the rows the plan found: the file changed during the job."""


@dataclass
class Read:
    table: pa.Table  # the rows that parsed
    rows: np.ndarray  # their row numbers (sorted)
    failures: list[dict[str, Any]] = field(default_factory=list)  # {row, line, column, value, error}, by row


@dataclass
class TextReader:
    fmt: str  # csv | jsonl
    schema: pa.Schema
    read_columns: list[str] | None
    opts: TextOptions
    threads: bool = True  # pyarrow's own threads: off where the pool's actors already fill the cores
    names: list[str] | None = None  # the CSV header's columns: the data is parsed without the header

    def _types(self) -> list[pa.Field]:
        return [pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type) for f in self.schema]

    def parse(self, header: bytes, data: bytes) -> pa.Table:
        """Typed parse, as the fast path and each group do it."""
        block = max(1 << 20, self.opts.max_line_bytes + len(header) + 2)  # a block holds the longest row
        if self.fmt == "csv":
            import pyarrow.csv as pc

            types = {f.name: f.type for f in self._types()}
            # with the header's names given, the rows need not be copied behind the header line first
            source, names = (data, self.names) if self.names is not None and data else (header + data, None)
            return pc.read_csv(pa.BufferReader(source),
                               read_options=pc.ReadOptions(block_size=block, use_threads=self.threads,
                                                           column_names=names),
                               parse_options=pc.ParseOptions(newlines_in_values=self.opts.newlines_in_values),
                               convert_options=pc.ConvertOptions(column_types=types,
                                                                 include_columns=self.read_columns or []))
        import pyarrow.json as pj

        popts = pj.ParseOptions(explicit_schema=pa.schema(self._types()), unexpected_field_behavior="ignore",
                                newlines_in_values=False)
        table = pj.read_json(pa.BufferReader(data), read_options=pj.ReadOptions(block_size=block,
                                                                              use_threads=self.threads),
                             parse_options=popts)
        return table.select(self.read_columns) if self.read_columns else table

    def read(self, mb: MiniBatch, header: bytes) -> Read:
        bad_rows = {b[0] for b in mb.bad}
        failures: list[dict[str, Any]] = [
            {"row": row, "line": line, "column": None, "value": _peek(mb.path, start, end),
             "error": f"ParseError: {why}"} for row, line, start, end, why in mb.bad]
        rows = np.array([r for r in range(mb.start, mb.stop) if r not in bad_rows], dtype=np.int64) \
            if bad_rows else np.arange(mb.start, mb.stop, dtype=np.int64)
        data = _read_bytes(mb)
        if len(rows):
            try:
                table = self.parse(header, data)
                if table.num_rows == len(rows):
                    return Read(table, rows, failures)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                pass
        else:
            return Read(self._none(header), rows, failures)
        table, good, more = self._careful(mb, header, data, rows)
        failures = sorted(failures + more, key=lambda f: int(f["row"]))
        return Read(table, good, failures)

    def _none(self, header: bytes) -> pa.Table:
        return self.parse(header, b"") if self.fmt == "csv" else _empty(self)

    def _careful(self, mb: MiniBatch, header: bytes, data: bytes, rows: np.ndarray
                 ) -> tuple[pa.Table, np.ndarray, list[dict[str, Any]]]:
        sc = Scanner(self.opts.for_format(self.fmt))
        parts = [sc.feed(data), sc.finish()]
        starts = np.concatenate([p.start[~p.blank] for p in parts])
        ends = np.concatenate([p.end[~p.blank] for p in parts])
        if len(starts) != len(rows):
            raise InputChanged(f"{mb.path}: found {len(starts)} rows in bytes {mb.byte_start}-{mb.byte_stop} where "
                               f"the plan found {len(rows)}; was the file changed during the job?")
        tables: list[tuple[int, pa.Table]] = []
        failures: list[dict[str, Any]] = []
        todo = [(g, min(len(rows), g + GROUPS[0]), 0) for g in range(0, len(rows), GROUPS[0])]
        while todo:  # groups that parse are kept; a group that fails is parsed in smaller groups
            g, h, level = todo.pop()
            one = data[int(starts[g]):int(ends[h - 1])]
            if not one.endswith(b"\n"):
                one += b"\n"
            try:
                t = self.parse(header, one)
                if t.num_rows != h - g:
                    raise pa.ArrowInvalid(f"parsed as {t.num_rows} rows")
                tables.append((g, t))
                continue
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                if h - g > 1:
                    size = GROUPS[level + 1] if level + 1 < len(GROUPS) else 1
                    todo += [(i, min(h, i + size), level + 1) for i in range(g, h, size)]
                    continue
                row = int(rows[g])
                column, value, error = self._diagnose(header, one, exc)
                failures.append({"row": row, "line": line_of(mb, row), "column": column, "value": value,
                                 "error": f"ParseError: {error}"})
        tables.sort(key=lambda x: x[0])
        good = [rows[g:g + t.num_rows] for g, t in tables]
        failures.sort(key=lambda f: int(f["row"]))
        table = pa.concat_tables([t for _, t in tables]) if tables else self._none(header)
        rows_ok = np.concatenate(good) if good else np.zeros(0, dtype=np.int64)
        return table, rows_ok, failures

    def _diagnose(self, header: bytes, one: bytes, exc: Exception) -> tuple[str | None, str, str]:
        """(column, value, message) of a row that failed to parse on its own."""
        text = one.decode("utf-8", "replace").rstrip("\r\n")
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        try:
            values = self._strings(header, one, text)
        except Exception as exc2:
            return None, text[:SHOWN], _short(exc2) or first
        for f in self._types():
            if self.read_columns and f.name not in self.read_columns:
                continue
            if pa.types.is_string(f.type) or f.name not in values:
                continue
            try:
                self._one_column(header, one, f, values)
            except Exception:
                value = values[f.name]
                return f.name, ("" if value is None else str(value))[:SHOWN], \
                    f"column {f.name!r}: cannot convert {_cut(value)!r} to {f.type}"
        return None, text[:SHOWN], first

    def _strings(self, header: bytes, one: bytes, text: str) -> dict[str, Any]:
        if self.fmt == "csv":
            import pyarrow.csv as pc

            names = [f.name for f in self.schema]
            t = pc.read_csv(pa.BufferReader(header + one),
                            parse_options=pc.ParseOptions(newlines_in_values=self.opts.newlines_in_values),
                            convert_options=pc.ConvertOptions(column_types=dict.fromkeys(names, pa.string())))
            if t.num_rows != 1:
                raise ValueError(f"not one row ({t.num_rows})")
            return {k: v[0] for k, v in t.to_pydict().items()}
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"invalid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
        return obj

    def _one_column(self, header: bytes, one: bytes, f: pa.Field, values: dict[str, Any]) -> None:
        if self.fmt == "csv":
            import pyarrow.csv as pc

            pc.read_csv(pa.BufferReader(header + one),
                        parse_options=pc.ParseOptions(newlines_in_values=self.opts.newlines_in_values),
                        convert_options=pc.ConvertOptions(column_types={f.name: f.type}, include_columns=[f.name]))
            return
        import pyarrow.json as pj

        doc = json.dumps({f.name: values[f.name]}).encode() + b"\n"
        pj.read_json(pa.BufferReader(doc), parse_options=pj.ParseOptions(explicit_schema=pa.schema([f])))


def header_names(header: bytes, opts: TextOptions) -> list[str] | None:
    """The columns a CSV header line names, read as the data is read; None when it does not parse
    alone (the data is then parsed behind the header, as before)."""
    import pyarrow.csv as pc

    try:
        table = pc.read_csv(pa.BufferReader(header), read_options=pc.ReadOptions(use_threads=False),
                            parse_options=pc.ParseOptions(newlines_in_values=opts.newlines_in_values))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    return [str(n) for n in table.column_names]


def _empty(r: TextReader) -> pa.Table:
    schema = pa.schema(r._types())
    if r.read_columns:
        schema = pa.schema([schema.field(c) for c in r.read_columns])
    return schema.empty_table()


def _cut(value: Any) -> Any:
    return value[:SHOWN] if isinstance(value, str) else value


def _short(exc: Exception) -> str:
    s = str(exc).strip()
    return s.splitlines()[0] if s else type(exc).__name__


def _peek(path: str, start: int, end: int) -> str:
    """The first characters of a row the planner failed (it may be huge: only these are read)."""
    with open_input(path) as fh:
        fh.seek(start)
        raw = bytes(fh.read(min(end - start, SHOWN * 4)))
    return raw.decode("utf-8", "replace").rstrip("\r\n")[:SHOWN]


def _read_bytes(mb: MiniBatch) -> bytes:
    """The mini-batch's byte range without the rows the planner failed (never read whole)."""
    spans = sorted((b[2], b[3]) for b in mb.bad)
    out: list[bytes] = []
    with open_input(mb.path) as fh:
        pos = mb.byte_start
        for start, end in [*spans, (mb.byte_stop, mb.byte_stop)]:
            if start > pos:
                fh.seek(pos)
                out.append(bytes(fh.read(start - pos)))
            pos = max(pos, end)
    return b"".join(out)

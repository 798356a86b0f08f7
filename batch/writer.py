"""Ordered output: mini-batch results are appended in plan order, whatever order they finish in.

A result that arrives ahead of its turn is spilled to `.scorer-batch/pending/SEQ.arrow` (Arrow
IPC) and waits there, not in the driver's memory. Each commit appends rows (CSV) or a segment
(Parquet), appends failed items to `errors.jsonl`, then writes a journal line with the file
offsets. A Parquet output is assembled from the segments at the end and appears whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv

from batch.journal import Committed, Journal
from batch.plan import MiniBatch, line_of


@dataclass
class Failure:
    """Failed items of a mini-batch: rows [start, stop) of a file, or some files."""

    error: str
    kind: str
    start: int = 0
    stop: int = 0
    files: tuple[str, ...] = ()
    line: int | None = None  # a parse failure (one row): where, which column, what value
    column: str | None = None
    value: str | None = None
    parse: bool = False


@dataclass
class Result:
    seq: int
    id: str
    name: str
    items: int
    table: pa.Table | None
    failures: list[Failure] = field(default_factory=list)
    retried: bool = False
    mb: MiniBatch | None = None
    blank: int = 0

    @property
    def failed(self) -> int:
        return sum(len(f.files) if f.files else f.stop - f.start for f in self.failures)


@dataclass
class _Pending:
    seq: int
    id: str
    name: str
    items: int
    spill: Path | None
    failures: list[Failure]
    retried: bool
    mb: MiniBatch | None
    blank: int


class OutputWriteError(Exception):
    """The output folder could not be written (disk full, I/O error): exit 3, resumable."""


class AccountingError(Exception):
    """A mini-batch's output rows and failed rows do not add up to its input rows."""


@contextlib.contextmanager
def writing(out_dir: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        where = getattr(exc, "filename", None) or out_dir
        raise OutputWriteError(f"cannot write {where}: {exc.strerror or exc}") from exc


class OrderedWriter:
    def __init__(self, out_dir: Path, journal: Journal, output_file: str | None, fmt: str,
                 committed: Committed) -> None:
        self.out_dir = out_dir
        self.journal = journal
        self.fmt = fmt
        self.output = out_dir / output_file if output_file else None
        self.work = journal.dir
        self.pending_dir = self.work / "pending"
        self.segments = self.work / "segments"
        self.next_seq = committed.count
        self._pending: dict[int, _Pending] = {}
        shutil.rmtree(self.pending_dir, ignore_errors=True)
        self.pending_dir.mkdir(parents=True, exist_ok=True)
        self.errors_path = out_dir / "errors.jsonl"
        _truncate(self.errors_path, committed.err_offset)
        self._err = open(self.errors_path, "ab")  # noqa: SIM115 (closed by finish()/close())
        self._out: Any = None
        self._schema: pa.Schema | None = None
        if self.output is not None and fmt == "csv":
            _truncate(self.output, committed.out_offset)
            self._out = open(self.output, "ab")  # noqa: SIM115 (closed by finish()/close())
        elif self.output is not None:
            self.segments.mkdir(parents=True, exist_ok=True)
            for seg in self.segments.glob("*.arrow"):
                if int(seg.stem) >= committed.count:
                    seg.unlink()
        self.max_pending = 0

    def add(self, r: Result) -> list[Result]:
        """Hand over one finished mini-batch; returns the results committed now (maybe none)."""
        rows = r.table.num_rows if r.table is not None else 0
        if rows + r.failed != r.items:
            raise AccountingError(f"mini-batch {r.id}: {rows} output rows and {r.failed} failed rows for "
                                  f"{r.items} input rows")
        with writing(self.out_dir):
            return self._add(r)

    def _add(self, r: Result) -> list[Result]:
        if r.seq != self.next_seq:
            spill = None
            if r.table is not None and self.output is not None:
                spill = self.pending_dir / f"{r.seq}.arrow"
                _write_ipc(spill, r.table)
            self._pending[r.seq] = _Pending(r.seq, r.id, r.name, r.items, spill, r.failures, r.retried, r.mb,
                                            r.blank)
            self.max_pending = max(self.max_pending, len(self._pending))
            return []
        done = [r]
        self._commit(r, None)
        while self.next_seq in self._pending:
            p = self._pending.pop(self.next_seq)
            table = None
            if p.spill is not None and self.fmt == "csv":
                with pa.memory_map(str(p.spill)) as src:
                    table = pa.ipc.open_file(src).read_all()
            res = Result(p.seq, p.id, p.name, p.items, table, p.failures, p.retried, p.mb, p.blank)
            self._commit(res, p.spill)
            done.append(res)
        return done

    def _commit(self, r: Result, spill: Path | None) -> None:
        first_errors: dict[str, dict[str, Any]] = {}
        if self.output is not None and self.fmt == "csv" and r.table is not None and r.table.num_rows:
            table = r.table
            header = self._out.tell() == 0
            if self._schema is None:
                self._schema = table.schema
            elif table.schema != self._schema:
                with contextlib.suppress(pa.ArrowInvalid, ValueError):
                    table = table.cast(self._schema)
            if header and not any(ch in n for n in table.column_names for ch in ',"\r\n'):
                self._out.write((",".join(table.column_names) + "\n").encode())
                header = False
            pcsv.write_csv(table, self._out, pcsv.WriteOptions(include_header=header, quoting_style="needed"))
            self._out.flush()
        elif self.output is not None and self.fmt == "parquet" and spill is not None:
            os.replace(spill, self.segments / f"{r.seq:09d}.arrow")
        elif self.output is not None and self.fmt == "parquet" and r.table is not None and r.table.num_rows:
            seg = self.segments / f"{r.seq:09d}.arrow"
            tmp = seg.with_suffix(".tmp")
            _write_ipc(tmp, r.table)
            os.replace(tmp, seg)
        if spill is not None and spill.exists():
            spill.unlink()
        if r.failures:
            for f in r.failures:
                first_errors.setdefault(f.kind, {"mini_batch": r.id, "error": f.error})
            self._err.write(("\n".join(_error_lines(r)) + "\n").encode())
            self._err.flush()
        self.journal.commit({
            "seq": r.seq, "id": r.id, "items": r.items, "failed": r.failed, "retried": r.retried, "blank": r.blank,
            "out": self._out.tell() if self._out is not None else 0, "err": self._err.tell(),
            **({"first_errors": first_errors} if first_errors else {}),
        })
        self.next_seq += 1

    def dump_unfinished(self, results: list[Result]) -> None:
        """At a threshold stop: failed items of mini-batches that never finished, not journaled
        (a resume cuts them off and scores those mini-batches again)."""
        with writing(self.out_dir):
            for r in results:
                lines = _error_lines(r)
                if lines:
                    self._err.write(("\n".join(lines) + "\n").encode())
            self._err.flush()

    def finish(self) -> None:
        """Close files; assemble the Parquet output from its segments (tmp file, then rename)."""
        with writing(self.out_dir):
            self._finish()

    def _finish(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        self._err.close()
        if self.output is not None and self.fmt == "parquet":
            import pyarrow.parquet as pq

            segs = sorted(self.segments.glob("*.arrow"))
            tmp = self.output.with_name(self.output.name + ".tmp")
            writer = None
            for seg in segs:
                with pa.memory_map(str(seg)) as src:
                    table = pa.ipc.open_file(src).read_all()
                if writer is None:
                    schema = table.schema
                    writer = pq.ParquetWriter(str(tmp), schema)
                elif table.schema != writer.schema:
                    table = table.cast(writer.schema)
                writer.write_table(table)
            if writer is None:
                pq.write_table(pa.table({"file": pa.array([], pa.string()), "row": pa.array([], pa.int64())}),
                               str(tmp))
            else:
                writer.close()
            os.replace(tmp, self.output)
            shutil.rmtree(self.segments, ignore_errors=True)
        shutil.rmtree(self.pending_dir, ignore_errors=True)

    def close(self) -> None:
        """Stop without finishing (interrupted or failed): committed work stays for --resume. Never
        raises: after a write error, the unflushed tail is cut off by the resume anyway."""
        for fh in (self._out, self._err):
            if fh is not None and not fh.closed:
                with contextlib.suppress(OSError):
                    fh.close()
        self._out = None
        shutil.rmtree(self.pending_dir, ignore_errors=True)


def _write_ipc(path: Path, table: pa.Table) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)


def _truncate(path: Path, offset: int) -> None:
    if path.exists():
        with open(path, "r+b") as fh:
            fh.truncate(offset)
    elif offset:
        raise FileNotFoundError(f"{path} is missing but the journal has committed data in it")


def _error_lines(r: Result) -> list[str]:
    lines: list[str] = []
    for f in r.failures:
        if f.files:
            lines.extend(json.dumps({"mini_batch": r.id, "file": p, "error": f.error}) for p in f.files)
        elif f.parse:
            lines.append(json.dumps({"mini_batch": r.id, "file": r.name, "row": f.start, "line": f.line,
                                     "column": f.column, "value": f.value, "error": f.error}))
        else:
            lines.extend(json.dumps({"mini_batch": r.id, "file": r.name, "row": i,
                                     **({"line": line_of(r.mb, i)} if r.mb is not None and r.mb.jumps else {}),
                                     "error": f.error})
                         for i in range(f.start, f.stop))
    return lines

"""Streaming, deterministic planning of mini-batches with stable ids.

The driver never holds the input: CSV and JSON Lines files are scanned in fixed-size chunks for row
ends (`batch.lines`: a row is a line unless `newlines_in_values`; blank lines are not rows; rows
with an unbalanced quote or longer than `max_line_bytes` are listed in the mini-batch as failed,
so that every row is accounted for), Parquet files are planned from their footer. Each mini-batch says
where to read (file + row range + byte range), not what is there: the actors read.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from batch.inputs import InputError, InputFile
from batch.lines import OK, SUB, Rows, Scanner, TextOptions, reason
from batch.storage import open_input, parquet_source

CHUNK = 8 << 20


@dataclass(frozen=True)
class MiniBatch:
    seq: int  # position in the job's order: the writer appends in seq order
    id: str  # stable: file name + row range, or the first..last file of a files-mode batch
    fmt: str  # csv | parquet | jsonl | files
    path: str = ""
    name: str = ""
    start: int = 0  # first row (0-based in the file)
    stop: int = 0  # one past the last row
    byte_start: int = -1  # CSV/JSONL: where the rows start; -1 = not known
    byte_stop: int = -1
    files: tuple[str, ...] = ()  # files mode
    weight: int = 0  # input bytes this batch stands for (progress)
    group: str | None = None  # Parquet: the row group it starts in (actors prefer to stay on one)
    line: int = 0  # CSV/JSONL: the physical line (1-based) of the first row
    blank: int = 0  # CSV/JSONL: blank lines in the byte range (not rows)
    bad: tuple[tuple[int, int, int, int, str], ...] = ()  # rows failed by the planner: (row, line, bytes, why)
    jumps: tuple[tuple[int, int], ...] = ()  # (row, line) where line numbers stop following row numbers

    @property
    def items(self) -> int:
        return len(self.files) if self.fmt == "files" else self.stop - self.start


def _text_rows(path: str, fmt: str, opts: TextOptions, header: list[int]) -> Iterator[tuple[Rows, int]]:
    """Rows of a CSV or JSON Lines file, chunk by chunk, with the line a still-open quote began on
    (0 if none). The CSV header is left out; `header[0]` is set to where the data starts."""
    sc = Scanner(opts)
    need_header = fmt == "csv"
    header[0] = 0

    def strip(r: Rows) -> Rows:
        nonlocal need_header
        if need_header and len(r):
            need_header = False
            if r.bad[0] != OK:
                raise InputError(f"input {path}: the header line {reason(int(r.bad[0]), opts.max_line_bytes)}")
            header[0] = int(r.end[0])
            return Rows(r.start[1:], r.end[1:], r.line[1:], r.blank[1:], r.bad[1:])
        return r

    with open_input(path) as fh:
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            for i in range(0, len(chunk), SUB):  # small blocks: the row arrays stay small too
                yield strip(sc.feed(chunk[i:i + SUB])), 0
        if not sc.open_quote():
            yield strip(sc.finish()), 0
            return
        tail = sc.rescan_tail()
        open_line = tail.row_line
        fh.seek(tail.pos)
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            for i in range(0, len(chunk), SUB):
                yield strip(tail.feed(chunk[i:i + SUB])), open_line
        yield strip(tail.finish()), open_line


@dataclass
class _Acc:
    """The mini-batch being filled."""

    start: int  # first row
    byte_start: int
    count: int = 0
    line: int = 0
    blank: int = 0
    byte_stop: int = 0
    prev_line: int = -2
    bad: list[tuple[int, int, int, int, str]] = field(default_factory=list)
    jumps: list[tuple[int, int]] = field(default_factory=list)

    def add(self, r: Rows, p0: int, p1: int, nb: np.ndarray, why: Callable[[int], str]) -> None:
        """Chunk rows [p0, p1), whose non-blank ones are at positions `nb`."""
        self.blank += (p1 - p0) - len(nb)
        if not len(nb):
            return
        lines = r.line[nb]
        prevs = np.empty_like(lines)
        prevs[0] = self.prev_line
        prevs[1:] = lines[:-1]
        jumps = np.flatnonzero(lines != prevs + 1)
        for k in jumps.tolist():
            self.jumps.append((self.start + self.count + k, int(lines[k])))
        if not self.count:
            self.line = int(lines[0])
        bad = np.flatnonzero(r.bad[nb])
        for k in bad.tolist():
            pos = int(nb[k])
            self.bad.append((self.start + self.count + k, int(r.line[pos]), int(r.start[pos]), int(r.end[pos]),
                             why(int(r.bad[pos]))))
        self.prev_line = int(lines[-1])
        self.count += len(nb)
        self.byte_stop = int(r.end[nb[-1]])

    def batch(self, seq: int, f: InputFile, fmt: str, byte_stop: int) -> MiniBatch:
        stop = self.start + self.count
        return MiniBatch(seq, f"{f.name}:{self.start}-{stop}", fmt, f.path, f.name, self.start, stop,
                         self.byte_start, byte_stop, weight=byte_stop - self.byte_start, line=self.line,
                         blank=self.blank, bad=tuple(self.bad), jumps=tuple(self.jumps))


def _plan_text(f: InputFile, fmt: str, rows: int | None, nbytes: int | None, seq: int,
               opts: TextOptions) -> Iterator[MiniBatch]:
    o = opts.for_format(fmt)
    header = [0]
    acc: _Acc | None = None
    pending: MiniBatch | None = None
    for r, open_line in _text_rows(f.path, fmt, o, header):
        if acc is None:
            acc = _Acc(0, header[0])

        def why(code: int, open_line: int = open_line) -> str:
            return reason(code, o.max_line_bytes, open_line)

        n = len(r)
        nbp = np.flatnonzero(~r.blank)
        ends_nb = r.end[nbp]
        k = p = 0
        while k < len(nbp):
            if rows is not None:
                k_end = k + rows - acc.count - 1
            else:
                assert nbytes is not None
                k_end = max(k, int(np.searchsorted(ends_nb, acc.byte_start + nbytes, side="left")))
            if k_end >= len(nbp):
                break
            p_end = int(nbp[k_end]) + 1
            acc.add(r, p, p_end, nbp[k:k_end + 1], why)
            if pending is not None:
                yield pending
            pending = acc.batch(seq, f, fmt, acc.byte_stop)
            seq += 1
            acc = _Acc(acc.start + acc.count, acc.byte_stop)
            k, p = k_end + 1, p_end
        acc.add(r, p, n, nbp[k:], why)
    if acc is not None and acc.count:
        if pending is not None:
            yield pending
        pending = acc.batch(seq, f, fmt, f.size)
    elif acc is not None and pending is not None and acc.blank:
        pending = replace(pending, blank=pending.blank + acc.blank, byte_stop=f.size,
                          weight=f.size - pending.byte_start)
    if pending is not None:
        yield pending


def line_of(mb: MiniBatch, row: int) -> int | None:
    """The 1-based physical line a row of a CSV or JSON Lines mini-batch starts on."""
    if not mb.jumps:
        return None
    k = bisect_right([j[0] for j in mb.jumps], row) - 1
    if k < 0:
        return None
    jr, jl = mb.jumps[k]
    return jl + (row - jr)


def _plan_parquet(f: InputFile, rows: int | None, nbytes: int | None, seq: int) -> Iterator[MiniBatch]:
    import pyarrow.parquet as pq

    md = pq.ParquetFile(parquet_source(f.path)).metadata
    total = md.num_rows
    if total == 0:
        return
    if rows is None:
        assert nbytes is not None
        size = sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups)) or f.size
        rows = max(1, int(nbytes * total / max(size, 1)))
    bounds = np.cumsum([md.row_group(i).num_rows for i in range(md.num_row_groups)])
    for start in range(0, total, rows):
        stop = min(total, start + rows)
        rg = int(np.searchsorted(bounds, start, side="right"))
        yield MiniBatch(seq, f"{f.name}:{start}-{stop}", "parquet", f.path, f.name, start, stop,
                        weight=max(1, f.size * (stop - start) // total), group=f"{f.path}#{rg}")
        seq += 1


def plan(files: list[InputFile], mode: str, fmt: str | None, rows: int | None,
         nbytes: int | None, text: TextOptions | None = None) -> Iterator[MiniBatch]:
    """All mini-batches of the job, in output order, one at a time."""
    seq = 0
    if mode == "files":
        group: list[InputFile] = []
        size = 0
        for f in files:
            group.append(f)
            size += f.size
            if (rows is not None and len(group) >= rows) or (nbytes is not None and size >= nbytes):
                yield _files_batch(seq, group)
                seq += 1
                group, size = [], 0
        if group:
            yield _files_batch(seq, group)
        return
    assert fmt is not None
    for f in files:
        gen = (_plan_parquet(f, rows, nbytes, seq) if fmt == "parquet"
               else _plan_text(f, fmt, rows, nbytes, seq, text or TextOptions()))
        for mb in gen:
            yield mb
            seq = mb.seq + 1


def _files_batch(seq: int, group: list[InputFile]) -> MiniBatch:
    ident = group[0].name if len(group) == 1 else f"{group[0].name}..{group[-1].name}"
    return MiniBatch(seq, ident, "files", files=tuple(f.path for f in group), weight=sum(f.size for f in group))

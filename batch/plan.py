"""Streaming, deterministic planning of mini-batches with stable ids.

The driver never holds the input: CSV and JSON Lines files are scanned in fixed-size chunks for row
ends (numpy, quote-aware for CSV), Parquet files are planned from their footer. Each mini-batch says
where to read (file + row range + byte range), not what is there: the actors read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from batch.inputs import InputFile
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

    @property
    def items(self) -> int:
        return len(self.files) if self.fmt == "files" else self.stop - self.start


def _row_ends(path: str, skip_header: bool, quote_aware: bool) -> Iterator[tuple[np.ndarray, int]]:
    """Yield (absolute offsets just past each row end, header end) chunk by chunk.

    A row ends at a newline outside double quotes (RFC 4180: "" inside a quoted field flips the
    parity twice). A last row without a trailing newline ends at the end of the file.
    """
    header_end = 0 if not skip_header else -1
    parity = 0
    pos = 0
    last_end = 0
    with open_input(path) as fh:
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            arr = np.frombuffer(chunk, dtype=np.uint8)
            nl = arr == 10
            if quote_aware:
                q = arr == 34
                if q.any():
                    par = (np.cumsum(q, dtype=np.int64) + parity) & 1
                    parity = int(par[-1])
                    nl &= par == 0
                elif parity:
                    nl[:] = False
            ends = np.flatnonzero(nl).astype(np.int64) + pos + 1
            if header_end < 0 and len(ends):
                header_end = int(ends[0])
                ends = ends[1:]
            if len(ends):
                last_end = int(ends[-1])
            pos += len(chunk)
            yield ends, max(header_end, 0)
        if header_end < 0:
            header_end = pos
        if pos > max(last_end, header_end):
            # trailing row without newline, unless it is only whitespace
            fh.seek(max(last_end, header_end))
            if fh.read().strip():
                yield np.array([pos], dtype=np.int64), header_end


def _plan_text(f: InputFile, fmt: str, rows: int | None, nbytes: int | None, seq: int) -> Iterator[MiniBatch]:
    row = 0  # rows seen in this file
    mb_row = 0
    mb_byte = -1
    for ends, header_end in _row_ends(f.path, skip_header=(fmt == "csv"), quote_aware=(fmt == "csv")):
        if mb_byte < 0:
            mb_byte = header_end
        i = 0
        n = len(ends)
        while i < n:
            if rows is not None:
                need = mb_row + rows - row  # rows to complete the current batch
                if n - i < need:
                    row += n - i
                    break
                j = i + need - 1
            else:
                assert nbytes is not None
                j = int(np.searchsorted(ends[i:], mb_byte + nbytes, side="left")) + i
                if j >= n:
                    row += n - i
                    break
            stop_byte = int(ends[j])
            row += j - i + 1
            yield MiniBatch(seq, f"{f.name}:{mb_row}-{row}", fmt, f.path, f.name, mb_row, row,
                            mb_byte, stop_byte, weight=stop_byte - mb_byte)
            seq += 1
            mb_row, mb_byte = row, stop_byte
            i = j + 1
    if row > mb_row:
        yield MiniBatch(seq, f"{f.name}:{mb_row}-{row}", fmt, f.path, f.name, mb_row, row,
                        mb_byte, f.size, weight=f.size - mb_byte)


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
         nbytes: int | None) -> Iterator[MiniBatch]:
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
        gen = _plan_parquet(f, rows, nbytes, seq) if fmt == "parquet" else _plan_text(f, fmt, rows, nbytes, seq)
        for mb in gen:
            yield mb
            seq = mb.seq + 1


def _files_batch(seq: int, group: list[InputFile]) -> MiniBatch:
    ident = group[0].name if len(group) == 1 else f"{group[0].name}..{group[-1].name}"
    return MiniBatch(seq, ident, "files", files=tuple(f.path for f in group), weight=sum(f.size for f in group))

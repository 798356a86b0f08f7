"""Where rows of a CSV or JSON Lines file begin and end, found with numpy, chunk by chunk.

One scanner serves the driver's planner (the whole file, streamed) and an actor (its own byte
range), so that both agree on what a row is. By default a row is one physical line, as Arrow's
`newlines_in_values=False` says: a CSV line with an unbalanced double quote is a bad row on its
own, and the next line is a row again. With `newlines_in_values` a newline inside double quotes
does not end a row (RFC 4180); a quote still open at the end of the file makes every line from
that row to the end a bad row. A line holding only whitespace is blank: not a row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

DEFAULT_MAX_LINE_BYTES = 1 << 20
SUB = 1 << 18  # bytes scanned at once: bounds the scanner's work arrays (about 10 bytes per byte)

OK, UNBALANCED, TOO_LONG, OPEN_AT_EOF = 0, 1, 2, 3
REASONS = {
    UNBALANCED: "unbalanced double quote: a quoted field is still open at the end of the line "
                "(set text_input.newlines_in_values to let quoted fields span lines)",
    TOO_LONG: "the line is longer than text_input.max_line_bytes ({max} bytes)",
    OPEN_AT_EOF: "a quoted field opened on line {line} is still open at the end of the file",
}

_WS = np.zeros(256, dtype=bool)
_WS[[9, 10, 11, 12, 13, 32]] = True


@dataclass(frozen=True)
class TextOptions:
    """How text inputs split into rows; part of the plan, so a resume must use the same."""

    newlines_in_values: bool = False  # CSV only: quoted fields may span lines
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES  # a longer row fails on its own, unread
    quotes: bool = True  # CSV: track double quotes; JSON Lines: no (its quotes are escaped)

    def for_format(self, fmt: str) -> TextOptions:
        if fmt == "csv":
            return self
        return TextOptions(False, self.max_line_bytes, False)


def options_from(newlines_in_values: bool, max_line_bytes: int) -> TextOptions:
    """The deployment's settings, overridden by SCORER_BATCH_NEWLINES_IN_VALUES and
    SCORER_BATCH_MAX_LINE_BYTES (for a one-off run without editing the YAML)."""
    env_nl = os.environ.get("SCORER_BATCH_NEWLINES_IN_VALUES", "").strip().lower()
    if env_nl:
        if env_nl not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError(f"SCORER_BATCH_NEWLINES_IN_VALUES={env_nl!r}: expected true or false")
        newlines_in_values = env_nl in ("1", "true", "yes")
    env_max = os.environ.get("SCORER_BATCH_MAX_LINE_BYTES", "").strip()
    if env_max:
        from scorer.spec.models import parse_size

        max_line_bytes = int(env_max) if env_max.isdigit() else parse_size(env_max)
        if max_line_bytes <= 0:
            raise ValueError("SCORER_BATCH_MAX_LINE_BYTES must be positive")
    return TextOptions(newlines_in_values, max_line_bytes)


@dataclass
class Rows:
    """Rows (blank ones included) that ended in one chunk; offsets are absolute."""

    start: np.ndarray  # first byte
    end: np.ndarray  # one past the newline (or the end of the file)
    line: np.ndarray  # 1-based physical line of the first byte
    blank: np.ndarray  # bool
    bad: np.ndarray  # OK, UNBALANCED, TOO_LONG or OPEN_AT_EOF

    def __len__(self) -> int:
        return len(self.end)


class Scanner:
    """Feed bytes in order; each feed returns the rows that ended in it. `finish()` returns the
    last row (no trailing newline). In `newlines_in_values` mode, if a quote is open at the end,
    `finish()` returns `tail_start`: the caller rescans from there with `rescan_tail()`."""

    def __init__(self, opts: TextOptions, pos: int = 0, line: int = 1) -> None:
        self.opts = opts
        self.pos = pos  # absolute offset of the next byte fed
        self.line = line  # physical line of the next byte fed
        self.row_start = pos
        self.row_line = line
        self.carry_nw = 0  # non-whitespace bytes of the row in progress
        self.carry_q = 0  # double quotes of the row in progress
        self.parity = 0
        self.force: int = OK  # OPEN_AT_EOF when rescanning a tail

    def feed(self, chunk: bytes | memoryview) -> Rows:
        """Rows that end in this chunk; scanned in blocks of SUB bytes, so that the per-byte work
        arrays stay small whatever the chunk size."""
        view = memoryview(chunk)
        if len(view) <= SUB:
            return self._feed(view)
        parts = [self._feed(view[i:i + SUB]) for i in range(0, len(view), SUB)]
        return Rows(*(np.concatenate([getattr(p, k) for p in parts])
                      for k in ("start", "end", "line", "blank", "bad")))

    def _feed(self, chunk: memoryview) -> Rows:
        # Work on positions of newlines and quotes, not on every byte: a block costs a few
        # comparisons per byte, and the per-row work is vectorised.
        arr = np.frombuffer(chunk, dtype=np.uint8)
        n = len(arr)
        all_nl = np.flatnonzero(arr == 10)
        nl_idx = all_nl
        quotes = self.opts.quotes and not self.force
        qpos = np.flatnonzero(arr == 34) if quotes else all_nl[:0]
        multiline = self.opts.newlines_in_values and quotes
        if multiline:
            if len(qpos):
                par = (np.searchsorted(qpos, all_nl) + self.parity) & 1
                nl_idx = all_nl[par == 0]
                self.parity = (self.parity + len(qpos)) & 1
            elif self.parity:
                nl_idx = all_nl[:0]
        ends_local = nl_idx.astype(np.int64) + 1
        k = len(ends_local)
        starts_local = np.empty_like(ends_local)
        if k:
            starts_local[0] = 0
            starts_local[1:] = ends_local[:-1]
        if multiline:
            line = self.line + np.searchsorted(all_nl, starts_local, side="left")
        else:
            line = self.line + np.arange(k, dtype=np.int64)
        start = starts_local + self.pos
        end = ends_local + self.pos
        if k:  # the first row began in an earlier block (or at this one's start)
            line[0] = self.row_line
            start[0] = self.row_start
        # blank rows: a row whose first byte is not whitespace is not blank (nearly every row)
        nonws = np.ones(k, dtype=bool)
        if k:
            nonws[1:] = ~_WS[arr[starts_local[1:]]]
            nonws[0] = bool(self.carry_nw) or bool((~_WS[arr[:ends_local[0]]]).any())
            cand = np.flatnonzero(~nonws[1:]) + 1
            longer = cand[(ends_local[cand] - starts_local[cand]) > 2]  # "\n" and " \n" are blank
            for i in longer.tolist():
                nonws[i] = bool((~_WS[arr[starts_local[i]:ends_local[i]]]).any())
        bad = np.zeros(k, dtype=np.int8)
        if quotes and not self.opts.newlines_in_values:
            if len(qpos):
                qc = np.searchsorted(qpos, ends_local) - np.searchsorted(qpos, starts_local)
                if k:
                    qc[0] += self.carry_q
                bad[(qc & 1) == 1] = UNBALANCED
                tail_q = len(qpos) - (int(np.searchsorted(qpos, ends_local[-1])) if k else 0)
                self.carry_q = tail_q if k else self.carry_q + tail_q
            elif k:
                if self.carry_q & 1:
                    bad[0] = UNBALANCED  # the quote came in an earlier block; none in this one
                self.carry_q = 0
        if self.force:
            bad[:] = self.force
        length = end - start - 1  # without the newline
        bad[length > self.opts.max_line_bytes] = TOO_LONG
        blank = ~nonws & (bad != TOO_LONG)
        bad[blank] = OK
        last = int(ends_local[-1]) if k else 0
        tail_nw = bool((~_WS[arr[last:]]).any()) if last < n else False
        if k:
            self.carry_nw = int(tail_nw)
            self.row_start = self.pos + last
            self.row_line = self.line + int(np.searchsorted(all_nl, last, side="left"))
        else:
            self.carry_nw = int(bool(self.carry_nw) or tail_nw)
        self.pos += n
        self.line += len(all_nl)
        return Rows(start, end, line, blank, bad)

    def open_quote(self) -> bool:
        """True at the end of the input when a quoted field never closed (newlines_in_values)."""
        return bool(self.opts.newlines_in_values and self.opts.quotes and self.parity and not self.force)

    def finish(self) -> Rows:
        """The last row when the input does not end with a newline (empty when it does)."""
        empty = np.zeros(0, dtype=np.int64)
        if self.pos <= self.row_start:
            return Rows(empty, empty, empty, np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int8))
        blank = self.carry_nw == 0
        bad = OK
        if self.pos - self.row_start > self.opts.max_line_bytes:
            bad, blank = TOO_LONG, False  # as in _feed: too long wins, even over blank
        elif not blank:
            if self.force:
                bad = self.force
            elif self.opts.quotes and not self.opts.newlines_in_values and self.carry_q & 1:
                bad = UNBALANCED
        return Rows(np.array([self.row_start]), np.array([self.pos]), np.array([self.row_line]),
                    np.array([blank]), np.array([bad], dtype=np.int8))

    def rescan_tail(self) -> Scanner:
        """A scanner for the rest of the input from the row whose quote never closed: each of its
        lines is a row of its own, and a bad one."""
        s = Scanner(TextOptions(False, self.opts.max_line_bytes, self.opts.quotes), self.row_start, self.row_line)
        s.force = OPEN_AT_EOF
        return s


def reason(code: int, max_line_bytes: int, open_line: int = 0) -> str:
    return REASONS[code].format(max=max_line_bytes, line=open_line)

"""The resume journal: which mini-batches are committed, and what the job was (model, inputs, settings).

One JSON object per line in `OUT/.scorer-batch/journal.jsonl`. The first line pins the job; each
commit line records a mini-batch after its rows and errors are flushed, with the byte offsets of
the output and errors files at that point, so that resume can cut off anything written after the
last commit (a kill -9 between the two writes). A torn last line is ignored.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

WORK_DIR = ".scorer-batch"


@dataclass
class Committed:
    count: int = 0  # mini-batches 0..count-1 are committed
    items: int = 0
    failed: int = 0
    retried: int = 0
    failed_batches: int = 0
    blank_lines: int = 0
    out_offset: int = 0
    err_offset: int = 0
    finished: dict[str, Any] | None = None
    first_errors: dict[str, dict[str, Any]] = field(default_factory=dict)


class Journal:
    def __init__(self, out_dir: Path) -> None:
        self.dir = out_dir / WORK_DIR
        self.path = self.dir / "journal.jsonl"
        self._fh: IO[bytes] | None = None

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> tuple[dict[str, Any] | None, Committed]:
        header: dict[str, Any] | None = None
        c = Committed()
        if not self.path.exists():
            return None, c
        with open(self.path, "rb") as fh:
            for raw in fh:
                try:
                    rec = json.loads(raw)
                except ValueError:
                    break  # torn write at the end
                if rec.get("type") == "header":
                    header = rec
                elif rec.get("type") == "commit":
                    if rec["seq"] != c.count:
                        break
                    c.count += 1
                    c.items += rec["items"]
                    c.failed += rec["failed"]
                    c.retried += 1 if rec.get("retried") else 0
                    c.failed_batches += 1 if rec["failed"] else 0
                    c.blank_lines += rec.get("blank", 0)
                    c.out_offset = rec["out"]
                    c.err_offset = rec["err"]
                    for kind, err in (rec.get("first_errors") or {}).items():
                        c.first_errors.setdefault(kind, err)
                elif rec.get("type") == "finished":
                    c.finished = rec
        return header, c

    def start(self, header: dict[str, Any], fresh: bool) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if fresh:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"type": "header", **header}) + "\n")
            os.replace(tmp, self.path)
        self._fh = open(self.path, "ab")  # noqa: SIM115 (held for the whole job, closed by close())

    def truncate_to(self, committed: Committed) -> None:
        """Rewrite the journal without a torn tail or a stale `finished` line."""
        lines = []
        with open(self.path, "rb") as fh:
            for raw in fh:
                try:
                    rec = json.loads(raw)
                except ValueError:
                    break
                if rec.get("type") == "header" or (rec.get("type") == "commit" and rec["seq"] < committed.count):
                    lines.append(json.dumps(rec) + "\n")
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(lines))
        os.replace(tmp, self.path)

    def commit(self, rec: dict[str, Any]) -> None:
        assert self._fh is not None, "commit before start"
        self._fh.write((json.dumps({"type": "commit", **rec}) + "\n").encode())
        self._fh.flush()

    def finish(self, status: str) -> None:
        if self._fh is not None:
            self._fh.write((json.dumps({"type": "finished", "status": status, "time": time.time()}) + "\n").encode())
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What changed between the journal's header and this run, in words."""
    out = []
    om, nm = old.get("model", {}), new.get("model", {})
    if om.get("version") != nm.get("version") or om.get("uri") != nm.get("uri"):
        out.append(f"model version changed: the journal pinned {om.get('uri')} (version {om.get('version')}), "
                   f"now {nm.get('uri')} (version {nm.get('version')})")
    oi = {x["path"]: x for x in old.get("inputs", [])}
    ni = {x["path"]: x for x in new.get("inputs", [])}
    if oi != ni:
        added = sorted(set(ni) - set(oi))
        removed = sorted(set(oi) - set(ni))
        changed = sorted(p for p in set(oi) & set(ni) if oi[p] != ni[p])
        parts = []
        if added:
            parts.append(f"added {', '.join(added[:3])}")
        if removed:
            parts.append(f"removed {', '.join(removed[:3])}")
        if changed:
            parts.append(f"modified {', '.join(changed[:3])}")
        out.append("inputs changed: " + "; ".join(parts))
    os_, ns = old.get("settings", {}), new.get("settings", {})
    for key in sorted(set(os_) | set(ns)):
        if os_.get(key) != ns.get(key):
            out.append(f"setting {key} changed: {os_.get(key)!r} -> {ns.get(key)!r}")
    return out

"""`job_summary.json`: what ran, what came out, how long it took, and the exit status."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATUS_EXIT = {"completed": 0, "completed_with_errors": 0, "failed": 1, "invalid": 2, "output_error": 3,
               "error": 4, "interrupted": 130}

RESERVE = "summary.reserve"  # in OUT/.scorer-batch: space held back so that a full disk still gets a summary
RESERVE_BYTES = 256 << 10


def reserve_summary_space(out_dir: Path) -> None:
    """Hold back some disk space for the summary (given back when the summary is written)."""
    path = out_dir / ".scorer-batch" / RESERVE
    with open(path, "wb") as fh:
        fh.write(b"\0" * RESERVE_BYTES)


def write_summary(out_dir: Path, summary: dict[str, Any]) -> Path:
    """Write atomically (tmp file, then rename); on a full disk, give back the reserved space first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "job_summary.json"
    tmp = path.with_name(path.name + ".tmp")
    text = json.dumps(summary, indent=2, default=str) + "\n"
    reserve = out_dir / ".scorer-batch" / RESERVE
    try:
        tmp.write_text(text)
    except OSError:
        reserve.unlink(missing_ok=True)
        tmp.write_text(text)
    os.replace(tmp, path)
    reserve.unlink(missing_ok=True)
    return path

"""`job_summary.json`: what ran, what came out, how long it took, and the exit status."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATUS_EXIT = {"completed": 0, "completed_with_errors": 0, "failed": 1, "invalid": 2, "interrupted": 130}


def write_summary(out_dir: Path, summary: dict[str, Any]) -> Path:
    """Write atomically (tmp file, then rename)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "job_summary.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path

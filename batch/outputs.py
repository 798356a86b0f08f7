"""The output folder, checked before Ray starts: a wrong --output costs a second, not a pool start."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from batch.storage import is_uri


class OutputPathError(Exception):
    """--output cannot be used: exit 2, one line naming the path."""


def check_output_path(raw: str) -> Path:
    """The absolute output folder; refused when it is a file, lies under a file, or is a URI.
    Creates nothing (so that a job refused for its inputs leaves no folder behind)."""
    if is_uri(raw):
        raise OutputPathError(f"--output {raw}: must be a local folder (the driver writes it)")
    out = Path(raw).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"--output {out}: is a file, not a folder")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputPathError(f"--output {out}: lies under {parent}, which is a file")
            break
    return out


def probe_output(out: Path) -> None:
    """Create the folder and write (then remove) a small file in it: the permission, read-only or
    full-disk problems that can be seen up front are seen here."""
    probe = out / f".scorer-write-probe-{os.getpid()}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as fh:
            fh.write(b"\0" * 4096)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise OutputPathError(f"--output {out}: cannot be written ({exc.strerror or exc})") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)

"""A short content hash of a model folder: the version clients see for a model given by path or by a
plain URI, so a server never shows its own folder layout and a changed model reads as a new version."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

HASH_LENGTH = 12
SMALL_FILE_BYTES = 1 << 20  # files up to this size are hashed by content, larger ones by size
DEFAULT_MAX_READ_BYTES = 64 << 20  # knob: SCORER_MODEL_HASH_MAX_READ (bytes read in all, per model)
_SKIP_NAMES = {".complete"}  # scorer's own download marker
_SKIP_DIRS = {"__pycache__"}  # written by Python when a model's code is imported


def _max_read() -> int:
    raw = os.environ.get("SCORER_MODEL_HASH_MAX_READ", "")
    try:
        return max(0, int(raw)) if raw else DEFAULT_MAX_READ_BYTES
    except ValueError:
        return DEFAULT_MAX_READ_BYTES


def _files(folder: Path) -> list[tuple[str, Path]]:
    out = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in names:
            if name in _SKIP_NAMES or name.endswith(".pyc"):
                continue
            path = Path(root) / name
            out.append((path.relative_to(folder).as_posix(), path))
    return sorted(out)


def content_version(folder: Path) -> str:
    """First 12 hex digits of a sha256 over the MLmodel file, the file listing with sizes, and the
    bytes of small files (up to SCORER_MODEL_HASH_MAX_READ in all): cheap, and equal for equal copies."""
    digest = hashlib.sha256()
    mlmodel = folder / "MLmodel"
    digest.update(b"MLmodel\0" + (mlmodel.read_bytes() if mlmodel.is_file() else b""))
    budget = _max_read()
    for rel, path in _files(folder):
        try:
            size = path.stat().st_size
        except OSError:  # a dangling link: its name still counts
            size = -1
        digest.update(f"\n{rel}\0{size}\0".encode())
        if 0 <= size <= SMALL_FILE_BYTES and size <= budget and rel != "MLmodel":
            budget -= size
            with contextlib.suppress(OSError):  # unreadable: loading will say so; name and size still count
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:HASH_LENGTH]

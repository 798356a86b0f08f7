"""A ConfigMap volume as the kubelet writes it: files are symlinks into `..data`, itself a symlink
to a timestamped folder; an update writes a new folder and renames a new `..data` link over the
old one (one atomic swap). A watcher on the file itself (inotify on `demo.yaml`) sees nothing:
the path stays the same and only what it resolves to changes."""

from __future__ import annotations

import os
import time
from pathlib import Path


def project(volume: Path, data: dict[str, str]) -> None:
    """Create or update the volume at `volume` with `data` (key -> file text), atomically."""
    volume.mkdir(parents=True, exist_ok=True)
    stamp = volume / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    stamp.mkdir()
    for key, text in data.items():
        (stamp / key).write_text(text, encoding="utf-8")
    tmp = volume / "..data_tmp"
    os.symlink(stamp.name, tmp)
    os.replace(tmp, volume / "..data")
    for key in data:
        link = volume / key
        if not link.is_symlink():
            os.symlink(f"..data/{key}", link)

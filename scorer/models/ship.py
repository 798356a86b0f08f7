"""Send a folder (a resolved model, a scoring script's code) to the nodes of a Ray cluster through
Ray's object store, so that no node needs the sender's disk: the sender resolved the model into its
own cache, a path that may not exist on another machine. Used by batch's actors and by online
replicas placed on a Ray cluster; the callers pick the size limit and its knob."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import logging
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("scorer.models")

DEFAULT_MAX_BYTES = 2 << 30


@dataclasses.dataclass(frozen=True)
class Shipped:
    """A folder in the object store: the ref to its tar bytes and their sha256 (the unpack folder's name)."""

    ref: Any  # ray.ObjectRef of the tar bytes
    digest: str


def folder_size(folder: Path) -> int:
    """Bytes of the regular files under `folder`."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def pack(folder: Path) -> bytes:
    """The folder as an uncompressed tar (model files are mostly compressed already)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(folder), arcname=".")
    return buf.getvalue()


def put_folder(folder: Path, limit: int = DEFAULT_MAX_BYTES, knob: str = "") -> Shipped | None:
    """Put a folder in Ray's object store (Ray must be initialised); None, with a warning naming
    `knob`, when it holds more than `limit` bytes (it must then be on a path every node sees)."""
    import ray

    size = folder_size(folder)
    if size > limit:
        log.warning("%s holds %d bytes, over the shipping limit %d%s: not shipped, so every node must see it "
                    "at this path", folder, size, limit, f" ({knob})" if knob else "")
        return None
    blob = pack(folder)
    return Shipped(ray.put(blob), hashlib.sha256(blob).hexdigest())


def unpack(shipped: Shipped) -> Path:
    """On the receiving node: the folder, unpacked once per node (by content) under the node's own
    temp folder, which nothing but this node's processes sees."""
    import ray

    root = Path(tempfile.gettempdir()) / "scorer-shipped"
    dest = root / shipped.digest
    if (dest / ".complete").exists():
        return dest
    root.mkdir(parents=True, exist_ok=True)
    blob = ray.get(shipped.ref)
    if hashlib.sha256(blob).hexdigest() != shipped.digest:
        raise RuntimeError("the shipped folder arrived damaged")
    work = Path(tempfile.mkdtemp(prefix=".unpack-", dir=root))
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as tar:
            tar.extractall(work, filter="data")
        (work / ".complete").touch()
        try:
            os.rename(work, dest)  # atomic; another process on this node may have won the race
        except OSError:
            if not (dest / ".complete").exists():
                raise
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(work)
    return dest

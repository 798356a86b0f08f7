"""Ship the model folder (and the scoring script's code folder) to the actors through Ray's object
store, so that the nodes of a cluster need not see the driver's disk: the driver resolved and
downloaded the model into its own cache, a path that may not exist on another machine.

Knobs: SCORER_BATCH_SHIP_MODEL = auto (default: ship when the job runs on a cluster, --address),
always, or never (every node sees the same paths, e.g. a shared disk); SCORER_BATCH_SHIP_MAX_BYTES
(default 2 GiB): a larger folder is not shipped (a warning says so) and must be on a shared path."""

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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batch.worker import WorkerConfig

log = logging.getLogger("scorer.batch")

SHIP_ENV = "SCORER_BATCH_SHIP_MODEL"
MAX_BYTES_ENV = "SCORER_BATCH_SHIP_MAX_BYTES"
DEFAULT_MAX_BYTES = 2 << 30


@dataclasses.dataclass(frozen=True)
class Shipped:
    """A folder in the object store: the ref to its tar bytes and their sha256 (the unpack folder's name)."""

    ref: Any  # ray.ObjectRef of the tar bytes
    digest: str


def wanted(on_cluster: bool) -> bool:
    """Whether to ship, from SCORER_BATCH_SHIP_MODEL (auto | always | never)."""
    mode = os.environ.get(SHIP_ENV, "auto").strip().lower() or "auto"
    if mode not in ("auto", "always", "never"):
        raise ValueError(f"{SHIP_ENV} must be auto, always or never, not {mode!r}")
    return mode == "always" or (mode == "auto" and on_cluster)


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def pack(folder: Path) -> bytes:
    """The folder as an uncompressed tar (model files are mostly compressed already)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(folder), arcname=".")
    return buf.getvalue()


def put_folder(folder: Path) -> Shipped | None:
    """Put a folder in Ray's object store; None (with a warning) when it is over the size limit."""
    import ray

    limit = int(os.environ.get(MAX_BYTES_ENV, str(DEFAULT_MAX_BYTES)))
    size = _size(folder)
    if size > limit:
        log.warning("%s holds %d bytes, over %s=%d: not shipped to the actors, so every node must see it "
                    "at this path", folder, size, MAX_BYTES_ENV, limit)
        return None
    blob = pack(folder)
    return Shipped(ray.put(blob), hashlib.sha256(blob).hexdigest())


def attach(cfg: WorkerConfig) -> WorkerConfig:
    """A copy of the WorkerConfig whose model and code folders travel with it."""
    changes: dict[str, Any] = {}
    if cfg.resolved is not None:
        changes["model_shipped"] = put_folder(Path(cfg.resolved.local_path))
    if cfg.code_dir:
        changes["code_shipped"] = put_folder(Path(cfg.code_dir))
    return dataclasses.replace(cfg, **changes)


def unpack(shipped: Shipped) -> Path:
    """On the actor's node: the folder, unpacked once per node into its temp folder (by content)."""
    import ray

    root = Path(tempfile.gettempdir()) / "scorer-shipped"
    dest = root / shipped.digest
    if (dest / ".complete").exists():
        return dest
    root.mkdir(parents=True, exist_ok=True)
    blob = ray.get(shipped.ref)
    if hashlib.sha256(blob).hexdigest() != shipped.digest:
        raise RuntimeError("the shipped model folder arrived damaged")
    work = Path(tempfile.mkdtemp(prefix=".unpack-", dir=root))
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as tar:
            tar.extractall(work, filter="data")
        (work / ".complete").touch()
        try:
            os.rename(work, dest)  # atomic; another actor on this node may have won the race
        except OSError:
            if not (dest / ".complete").exists():
                raise
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(work)
    return dest

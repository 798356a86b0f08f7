"""Ship the model folder (and the scoring script's code folder) to the actors through Ray's object
store (`scorer.models.ship`), so that the nodes of a cluster need not see the driver's disk.

Knobs: SCORER_BATCH_SHIP_MODEL = auto (default: ship when the job runs on a cluster, --address),
always, or never (every node sees the same paths, e.g. a shared disk); SCORER_BATCH_SHIP_MAX_BYTES
(default 2 GiB): a larger folder is not shipped (a warning says so) and must be on a shared path."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scorer.models import ship
from scorer.models.ship import DEFAULT_MAX_BYTES, Shipped, pack, unpack

if TYPE_CHECKING:
    from batch.worker import WorkerConfig

__all__ = ["DEFAULT_MAX_BYTES", "MAX_BYTES_ENV", "SHIP_ENV", "Shipped", "attach", "pack", "put_folder", "unpack",
           "wanted"]

SHIP_ENV = "SCORER_BATCH_SHIP_MODEL"
MAX_BYTES_ENV = "SCORER_BATCH_SHIP_MAX_BYTES"


def wanted(on_cluster: bool) -> bool:
    """Whether to ship, from SCORER_BATCH_SHIP_MODEL (auto | always | never)."""
    mode = os.environ.get(SHIP_ENV, "auto").strip().lower() or "auto"
    if mode not in ("auto", "always", "never"):
        raise ValueError(f"{SHIP_ENV} must be auto, always or never, not {mode!r}")
    return mode == "always" or (mode == "auto" and on_cluster)


def put_folder(folder: Path) -> Shipped | None:
    """Put a folder in Ray's object store; None (with a warning) when it is over SCORER_BATCH_SHIP_MAX_BYTES."""
    limit = int(os.environ.get(MAX_BYTES_ENV, str(DEFAULT_MAX_BYTES)))
    return ship.put_folder(folder, limit, MAX_BYTES_ENV)


def attach(cfg: WorkerConfig) -> WorkerConfig:
    """A copy of the WorkerConfig whose model and code folders travel with it."""
    changes: dict[str, Any] = {}
    if cfg.resolved is not None:
        changes["model_shipped"] = put_folder(Path(cfg.resolved.local_path))
    if cfg.code_dir:
        changes["code_shipped"] = put_folder(Path(cfg.code_dir))
    return dataclasses.replace(cfg, **changes)

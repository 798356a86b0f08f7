"""What one pool actor does: load the model (or `init()` the script) once, through the model
runtime serving uses too (`scorer.models.runtime`), then read and score mini-batches. It reads the
rows itself (the driver only says where), and answers with an Arrow table of output rows or with
the error, never raising, so that a model error costs no Ray exception machinery."""

from __future__ import annotations

import os
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import numpy as np
import pyarrow as pa

from batch.lines import TextOptions
from batch.parse import InputChanged, Read, TextReader, header_names
from batch.plan import MiniBatch
from batch.ship import Shipped
from batch.storage import first_line, parquet_source

if TYPE_CHECKING:
    from scorer.models.registry import ResolvedModel
    from scorer.models.runtime import ModelRuntime


@dataclass
class WorkerConfig:
    mode: str  # tabular | files
    fmt: str | None  # csv | parquet | jsonl
    schema: pa.Schema | None  # unified input schema (tabular)
    read_columns: list[str] | None  # None = all
    model_columns: list[str] | None  # what the model gets, in order (None = everything read)
    keep_columns: list[str] = field(default_factory=list)
    resolved: ResolvedModel | None = None
    code_dir: str | None = None
    script: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    log_level: str = "info"
    text: TextOptions = field(default_factory=TextOptions)  # how CSV / JSON Lines split into rows
    parse_threads: bool = True  # pyarrow threads in a CSV / JSON Lines parse (the driver sets it per pool)
    # on a cluster, the model and code folders travel through the object store (batch/ship.py)
    model_shipped: Shipped | None = None
    code_shipped: Shipped | None = None


class ActorInfo(TypedDict):
    """What ready() answers: where the actor runs, and why it cannot score (None when it can)."""

    pid: int
    node: str
    error: str | None
    ip: str


class ScoreReply(TypedDict):
    """What score() answers, never raising: output rows, or the error of the piece."""

    ok: bool
    seconds: float
    pid: int
    table: NotRequired[pa.Table | None]  # ok: output rows (None when every row failed to parse)
    row_failures: NotRequired[list[dict[str, Any]]]  # rows that failed to parse: {row, line, column, value, error}
    error: NotRequired[str]  # not ok: one line, and its exception's class name in kind
    kind: NotRequired[str]
    trace: NotRequired[str]
    splittable: NotRequired[bool]  # False: the input itself failed; halves would fail the same way


class ScoringWorker:
    """Started with `env` only, it imports the model runtime at once (the actors warm while the
    driver still prepares the job); `load(cfg)` then loads the model. `ScoringWorker(cfg)` does both."""

    def __init__(self, cfg: WorkerConfig | None = None, env: dict[str, str] | None = None) -> None:
        os.environ.update(cfg.env if cfg is not None else env or {})
        from scorer.environment import configure

        configure()
        self.cfg = cfg if cfg is not None else WorkerConfig("tabular", None, None, None, None)
        self.runtime: ModelRuntime | None = None
        self._headers: dict[str, tuple[bytes, list[str] | None]] = {}  # path: header line, its names
        self._parquet: OrderedDict[str, Any] = OrderedDict()
        self._groups: OrderedDict[tuple[str, int], pa.Table] = OrderedDict()
        self._last: tuple[str, Read] | None = None
        self.init_error: str | None = "the model is not loaded yet"
        if cfg is not None:
            self.load(cfg)
            return
        try:  # what every load needs: paid while the driver resolves the model and plans
            import pandas  # noqa: F401

            import scorer.models.runtime  # noqa: F401
        except Exception as exc:  # the load reports it
            self.init_error = f"{type(exc).__name__}: {exc}"

    def load(self, cfg: WorkerConfig) -> None:
        """Load the model (or `init()` the script); a failure is kept for ready() (the driver exits 2)."""
        os.environ.update(cfg.env)
        self.cfg = cfg
        self.init_error = None
        try:
            from scorer.models.runtime import load_runtime

            cfg = self.cfg = _local_folders(cfg)
            resolved = cfg.resolved
            if resolved is not None and not cfg.script:
                _import_loader_first(resolved.local_path)
            self.runtime = load_runtime(model_dir=resolved.local_path if resolved else None, code_dir=cfg.code_dir,
                                        script=cfg.script, name=resolved.ref.raw if resolved else None)
        except Exception as exc:  # reported by ready(): the driver exits 2
            self.init_error = f"{type(exc).__name__}: {exc}"

    def ready(self) -> ActorInfo:
        import ray

        ctx = ray.get_runtime_context()
        ip: str = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        return {"pid": os.getpid(), "node": ctx.get_node_id(), "error": self.init_error, "ip": ip}

    def _enforced(self, table: pa.Table) -> bool:
        """Whether the rows already are what MLflow's schema enforcement returns unchanged: the
        signature's double columns, in its order, float64 without nulls. Then predict skips it, as
        a replica does for such requests (for LR it was half of the actor's predict time)."""
        cols = self._runtime().double_columns
        return (cols is not None and tuple(table.column_names) == cols
                and all(t == pa.float64() for t in table.schema.types)
                and all(c.null_count == 0 for c in table.columns))

    def _runtime(self) -> ModelRuntime:
        if self.runtime is None:  # ready() reported why; the driver never scores on such an actor
            raise RuntimeError(self.init_error or "the model is not loaded")
        return self.runtime

    # --- reading -------------------------------------------------------------------------------

    def _header(self, path: str) -> tuple[bytes, list[str] | None]:
        """A CSV file's header line and the names it gives, read once per file and actor."""
        cached = self._headers.get(path)
        if cached is None:
            h = first_line(path, self.cfg.text.max_line_bytes)
            if not h.endswith(b"\n"):
                h += b"\n"
            cached = self._headers[path] = (h, header_names(h, self.cfg.text.for_format("csv")))
        return cached

    def _read_text(self, mb: MiniBatch) -> Read:
        assert self.cfg.schema is not None and mb.fmt in ("csv", "jsonl")
        header, names = self._header(mb.path) if mb.fmt == "csv" else (b"", None)
        reader = TextReader(mb.fmt, self.cfg.schema, self.cfg.read_columns, self.cfg.text.for_format(mb.fmt),
                            self.cfg.parse_threads, names)
        return reader.read(mb, header)

    def _read_parquet(self, mb: MiniBatch) -> pa.Table:
        import pyarrow.parquet as pq

        pf = self._parquet.get(mb.path)
        if pf is None:
            pf = pq.ParquetFile(parquet_source(mb.path))
            md = pf.metadata
            offsets = np.cumsum([0] + [md.row_group(i).num_rows for i in range(md.num_row_groups)])
            self._parquet[mb.path] = pf = (pf, offsets)
            while len(self._parquet) > 4:
                self._parquet.popitem(last=False)
        handle, offsets = pf
        first = int(np.searchsorted(offsets, mb.start, side="right")) - 1
        last = int(np.searchsorted(offsets, mb.stop, side="left")) - 1
        parts = []
        for rg in range(first, last + 1):
            key = (mb.path, rg)
            t = self._groups.get(key)
            if t is None:
                t = handle.read_row_group(rg, columns=self.cfg.read_columns)
                self._groups[key] = t
                while len(self._groups) > 2:
                    self._groups.popitem(last=False)
            parts.append(t)
        table = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        return table.slice(mb.start - int(offsets[first]), mb.stop - mb.start)

    def _read(self, mb: MiniBatch) -> Read:
        if self._last is not None and self._last[0] == mb.id:
            return self._last[1]
        if mb.fmt == "parquet":
            read = Read(self._read_parquet(mb), np.arange(mb.start, mb.stop, dtype=np.int64))
        else:
            read = self._read_text(mb)
        if read.table.num_rows + len(read.failures) != mb.stop - mb.start:
            raise InputChanged(f"read {read.table.num_rows} rows and {len(read.failures)} failed ones where "
                               f"the plan found {mb.stop - mb.start}")
        self._last = (mb.id, read)
        return read

    # --- scoring -------------------------------------------------------------------------------

    def score(self, mb: MiniBatch, lo: int, hi: int) -> ScoreReply:
        """Score rows [lo, hi) of a tabular mini-batch, or files [lo, hi) of a files-mode one."""
        t0 = time.perf_counter()
        try:
            if mb.fmt == "files":
                paths = list(mb.files[lo:hi])
                out = self._runtime().predict(paths)
                cols = _shape(out, len(paths))
                table = pa.table({"file": pa.array(paths, pa.string()), **cols})
            else:
                try:
                    read = self._read(mb)
                except Exception as exc:  # the input itself: retried, never split (every half would fail)
                    return {**_error(exc, t0), "splittable": False}
                a, b = (int(x) for x in np.searchsorted(read.rows, [lo, hi]))
                failed = [f for f in read.failures if lo <= f["row"] < hi]
                if b == a:
                    return {"ok": True, "table": None, "row_failures": failed,
                            "seconds": time.perf_counter() - t0, "pid": os.getpid()}
                data = read.table.slice(a, b - a)
                n = data.num_rows
                try:
                    frame_cols = self.cfg.model_columns or [c for c in data.column_names
                                                            if c not in self.cfg.keep_columns]
                    selected = data.select(frame_cols)
                    df = selected.to_pandas()
                    runtime = self._runtime()
                    out = runtime.predict_exact(df) if self._enforced(selected) else runtime.predict(df)
                    cols = _shape(out, n)
                except Exception as exc:
                    return {**_error(exc, t0), "row_failures": failed}
                arrays: dict[str, Any] = {
                    "file": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)),
                                                           pa.array([mb.name])).cast(pa.string()),
                    "row": pa.array(read.rows[a:b]),
                }
                for c in self.cfg.keep_columns:
                    arrays[c] = data.column(c)
                for k, v in cols.items():
                    arrays[k if k not in arrays else f"prediction_{k}"] = v
                return {"ok": True, "table": pa.table(arrays), "row_failures": failed,
                        "seconds": time.perf_counter() - t0, "pid": os.getpid()}
            return {"ok": True, "table": table, "seconds": time.perf_counter() - t0, "pid": os.getpid()}
        except Exception as exc:
            return _error(exc, t0)


def _local_folders(cfg: WorkerConfig) -> WorkerConfig:
    """The config with shipped model and code folders unpacked on this node (the driver's paths may
    not exist here)."""
    import dataclasses

    from batch.ship import unpack

    changes: dict[str, Any] = {}
    if cfg.model_shipped is not None and cfg.resolved is not None:
        changes["resolved"] = dataclasses.replace(cfg.resolved, local_path=unpack(cfg.model_shipped))
    if cfg.code_shipped is not None and cfg.code_dir:
        changes["code_dir"] = str(unpack(cfg.code_shipped))
    return dataclasses.replace(cfg, **changes) if changes else cfg


def _import_loader_first(model_dir: str | os.PathLike[str]) -> None:
    """Import the library that loads a skops-saved scikit-learn model before MLflow: at import,
    skops looks for each type it trusts in every loaded module, and MLflow's 2,000 make that about
    0.5 s slower per actor (docs/performance.md). A problem here is left to the load itself."""
    import importlib
    from pathlib import Path

    import yaml

    try:
        flavors = (yaml.safe_load((Path(model_dir) / "MLmodel").read_text()) or {}).get("flavors") or {}
        if (flavors.get("sklearn") or {}).get("serialization_format") == "skops":
            importlib.import_module("skops.io")
    except Exception:
        return


def _error(exc: Exception, t0: float) -> ScoreReply:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return {"ok": False, "error": f"{type(exc).__name__}: {msg}"[:2000], "kind": type(exc).__name__,
            "trace": traceback.format_exc()[-4000:], "seconds": time.perf_counter() - t0, "pid": os.getpid()}


def _shape(out: Any, n: int) -> dict[str, Any]:
    """Model or script output -> output columns: `prediction`, or the output's own column names."""
    import pandas as pd

    if isinstance(out, pd.DataFrame):
        if len(out) != n:
            raise ValueError(f"the model returned {len(out)} rows for {n} inputs")
        if out.shape[1] == 1 and not isinstance(out.columns[0], str):
            return {"prediction": pa.array(out.iloc[:, 0].to_numpy())}
        return {str(c): pa.Array.from_pandas(out[c]) for c in out.columns}
    if isinstance(out, pd.Series):
        out = out.to_numpy()
    if isinstance(out, dict):
        return _shape(pd.DataFrame(out), n)
    if isinstance(out, list | tuple):
        if out and all(isinstance(x, dict) for x in out):
            return _shape(pd.DataFrame(list(out)), n)
        if len(out) != n:
            raise ValueError(f"run() returned {len(out)} entries for {n} inputs; expected one per input")
        try:
            return {"prediction": pa.array(list(out))}
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return {"prediction": pa.array([str(x) for x in out])}
    arr = np.asarray(out)
    if arr.ndim == 0 or len(arr) != n:
        raise ValueError(f"the model returned {arr.size} values for {n} inputs")
    if arr.ndim == 1:
        return {"prediction": pa.array(arr)}
    if arr.ndim == 2:
        if arr.shape[1] == 1:
            return {"prediction": pa.array(arr[:, 0])}
        return {f"prediction_{i}": pa.array(arr[:, i]) for i in range(arr.shape[1])}
    return {"prediction": pa.array([str(x.tolist()) for x in arr])}


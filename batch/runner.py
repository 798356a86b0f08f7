"""One batch job from start to end: spec, model, inputs, output folder, Ray, pool, schedule, summary."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from batch import inputs as inp
from batch.journal import WORK_DIR, Committed, Journal, differences
from batch.lines import TextOptions, options_from
from batch.outputs import OutputPathError, check_output_path, probe_output
from batch.plan import MiniBatch, plan
from batch.progress import Progress
from batch.summary import STATUS_EXIT, reserve_summary_space, write_summary
from batch.worker import ActorInfo, WorkerConfig

if TYPE_CHECKING:
    from batch.pool import Pool
    from batch.writer import OrderedWriter
    from scorer.models import ResolvedModel
    from scorer.spec import BatchDeployment

log = logging.getLogger("scorer.batch")


@dataclass
class JobArgs:
    deployment: str
    inputs: list[str]
    output: str
    address: str | None = None
    resume: bool = False
    overwrite: bool = False
    keep_columns: list[str] = field(default_factory=list)
    progress_every: float = 5.0


class Invalid(Exception):
    """Bad configuration or input: nothing was scored, exit 2."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _setup_logging(level: str) -> None:
    lvl = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}[level]
    log.setLevel(lvl)
    if not any(getattr(h, "_scorer_batch", False) for h in log.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s scorer.batch: %(message)s", "%H:%M:%S"))
        h._scorer_batch = True  # type: ignore[attr-defined]
        log.addHandler(h)
        log.propagate = False


def _sha256(path: Path | None) -> str | None:
    if path is None or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _signature(local_path: Path) -> Any:
    from mlflow.models import Model

    try:
        return Model.load(str(local_path)).signature
    except Exception:
        return None


def _actor_env(spec: BatchDeployment) -> dict[str, str]:
    """The actors' environment: telemetry off, the driver's registry, the deployment's variables."""
    from scorer.environment import TELEMETRY_OFF

    spec_env: dict[str, str] = spec.environment_variables
    env = dict(TELEMETRY_OFF)
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "SCORER_STATE_DIR"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    env.update(spec_env)
    return env


class _Signals:
    """SIGINT/SIGTERM set a flag that the driver loop checks: a clean stop, exit 130."""

    def __init__(self) -> None:
        self.stop = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stop:  # a second signal: stop now
            raise KeyboardInterrupt
        self.stop = True
        log.warning("received %s: stopping (resume with --resume)", signal.Signals(signum).name)

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


@dataclass
class _Job:
    """What `_prepare` settled before Ray starts: the spec, the model, the inputs, the actors' config."""

    spec: BatchDeployment
    files: list[inp.InputFile]
    fmt: str | None  # csv | parquet | jsonl (tabular); None in files mode
    mode: str  # tabular | files
    resolved: ResolvedModel | None
    header: dict[str, Any]  # the journal's header: what a resume must find unchanged
    cfg: WorkerConfig
    text: TextOptions


def _check_spec(args: JobArgs, spec: BatchDeployment) -> None:
    """What the deployment alone gets wrong (exit 2), found before anything starts."""
    code = spec.code_configuration
    script = code.scoring_script if code else None
    if spec.effective_input_mode == "files" and not script:
        raise Invalid("input_mode: files needs code_configuration.scoring_script (its run() gets lists of paths)")
    if not spec.model and not script:
        raise Invalid("the deployment names no model and no scoring script: nothing would score")
    if spec.output_action == "summary_only" and args.keep_columns:
        log.warning("--keep-columns has no effect with output_action: summary_only")


def _prepare(args: JobArgs, out_dir: Path, spec: BatchDeployment | None = None) -> _Job:
    """The model, the inputs and the actors' config: what else can fail with exit 2 before anything
    is scored (in a thread, while Ray starts: batch/startup.py). Loads the spec when not given."""
    if spec is None:
        spec = _load_spec(args)
        _check_spec(args, spec)
    mode = spec.effective_input_mode
    code = spec.code_configuration
    script = code.scoring_script if code else None
    resolved = _resolve(spec.model) if spec.model else None
    signature = _signature(resolved.local_path) if resolved else None
    try:
        text = options_from(spec.text_input.newlines_in_values, int(spec.text_input.max_line_bytes))
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    try:
        files = inp.discover(args.inputs, exclude=out_dir)
        if mode != "tabular" and args.keep_columns:
            raise Invalid("--keep-columns is for tabular inputs; input_mode is files")
        fmt, schema, read_cols, model_cols = (
            _tabular_inputs(files, text, None if script else signature, args.keep_columns) if mode == "tabular"
            else (None, None, None, None))
    except inp.InputError as exc:
        raise Invalid(str(exc)) from None
    header = {
        "model": {"reference": spec.model, "uri": resolved.uri if resolved else None,
                  "version": resolved.version if resolved else None},
        "inputs": inp.file_fingerprints(files),
        "settings": {
            "input_mode": mode, "mini_batch_size": spec.mini_batch_size, "output_action": spec.output_action,
            "output_file_name": spec.output_file_name, "keep_columns": list(args.keep_columns),
            "scoring_script": _sha256(code.script_path if code else None),
            "newlines_in_values": text.newlines_in_values, "max_line_bytes": text.max_line_bytes,
        },
    }
    cfg = WorkerConfig(mode=mode, fmt=fmt, schema=schema, read_columns=read_cols, model_columns=model_cols,
                       keep_columns=list(args.keep_columns), resolved=resolved,
                       code_dir=str(code.code) if code else None, script=script,
                       env=_actor_env(spec), log_level=spec.logging_level, text=text)
    return _Job(spec, files, fmt, mode, resolved, header, cfg, text)


def _load_spec(args: JobArgs) -> BatchDeployment:
    """The deployment file, checked; its warnings logged. Configuration errors are `Invalid`."""
    from scorer.environment import configure
    from scorer.spec import SpecError, load_batch

    configure()
    from batch.ship import wanted

    try:
        wanted(False)  # a bad SCORER_BATCH_SHIP_MODEL is a configuration error, found before Ray starts
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    try:
        loaded = load_batch(Path(args.deployment))
    except SpecError as exc:
        # one problem: one line (it names the file); several: a heading, then one line each
        raise Invalid(str(exc) if len(exc.problems) == 1 else
                      f"{args.deployment}: {len(exc.problems)} problems\n{exc}") from None
    except FileNotFoundError as exc:
        raise Invalid(f"{args.deployment}: {exc}") from None
    _setup_logging(loaded.spec.logging_level)
    for w in getattr(loaded, "warnings", []) or []:
        log.warning("%s", w)
    return loaded.spec


def _resolve(model: str) -> ResolvedModel:
    from scorer.models import ModelNotFound, resolve

    try:
        return resolve(model)
    except ModelNotFound as exc:
        raise Invalid(str(exc)) from None


def _tabular_inputs(files: list[inp.InputFile], text: TextOptions, signature: Any, keep: list[str]
                    ) -> tuple[str, pa.Schema, list[str] | None, list[str] | None]:
    """(format, unified schema, columns to read, columns the model gets) of tabular inputs, checked
    against the model's signature (None for a scoring script, which takes what it gets)."""
    fmt = inp.tabular_format(files)
    schema = inp.unify([(f, inp.read_schema(f, fmt, text)) for f in files])
    if signature is not None:
        schema = inp.relax_numbers(schema, files, fmt, text, signature)
    problems = inp.check_signature(schema, signature, keep)
    if problems:
        raise Invalid("the inputs do not fit the model:\n  " + "\n  ".join(problems))
    model_cols = None
    if signature is not None and signature.inputs is not None:
        schema = inp.fit_schema(schema, signature)
        names = [s.name for s in signature.inputs.inputs if getattr(s, "name", None)]
        model_cols = [n for n in names if n in schema.names] or None
    return fmt, schema, inp.columns_to_read(schema, model_cols, keep), model_cols


def _by_ip(infos: list[ActorInfo]) -> dict[str, int]:
    """Where the pool's actors started: node IP -> actors (a cluster job says it used every node)."""
    counts: dict[str, int] = {}
    for info in infos:
        counts[str(info["ip"])] = counts.get(str(info["ip"]), 0) + 1
    return dict(sorted(counts.items()))


def _previous_job(out_dir: Path, output_file: str) -> list[str]:
    names = [WORK_DIR, output_file, "job_summary.json", "errors.jsonl"]
    return [n for n in names if (out_dir / n).exists()]


def _clear(out_dir: Path, output_file: str) -> None:
    shutil.rmtree(out_dir / WORK_DIR, ignore_errors=True)
    for n in (output_file, "job_summary.json", "errors.jsonl", output_file + ".tmp"):
        (out_dir / n).unlink(missing_ok=True)


def run_job(args: JobArgs) -> int:
    """One job; every outcome is an exit code and at most a few lines on stderr, never a traceback
    (an unexpected one goes to OUT/.scorer-batch/error.log, or a temporary file)."""
    try:
        return _run_job(args)
    except KeyboardInterrupt:
        print("scorer batch: interrupted; run again with --resume to continue", file=sys.stderr)
        return STATUS_EXIT["interrupted"]
    except Exception as exc:
        where = _save_traceback(args.output)
        print(f"scorer batch: failed: {_one_line(exc)} (traceback in {where})", file=sys.stderr)
        return STATUS_EXIT["error"]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"[:500]


def _save_traceback(output: str) -> str:
    import tempfile
    import traceback

    text = traceback.format_exc()
    log.debug("%s", text)
    work = Path(output).expanduser() / WORK_DIR
    # in the job's own folder once the job has one (creating it would look like a previous job)
    for folder in ([work] if work.is_dir() else []) + [Path(tempfile.gettempdir())]:
        try:
            path = folder / ("error.log" if folder.name == WORK_DIR else f"scorer-batch-error-{os.getpid()}.log")
            with open(path, "a") as fh:
                fh.write(f"{_now()}\n{text}\n")
            return str(path)
        except OSError:
            continue
    return "the log (logging_level: debug)"


class _Exit(Exception):
    """The job ends before scoring with one line on stderr and this exit code (2: nothing was scored)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _run_job(args: JobArgs) -> int:
    """Check the spec, then prepare (thread) while Ray and the actors start, score, summarise."""
    t0 = time.monotonic()
    started_at = _now()
    try:
        try:
            out_dir = check_output_path(args.output)
            spec = _load_spec(args)
            _check_spec(args, spec)
        except (Invalid, OutputPathError) as exc:
            raise _Exit(str(exc)) from None
        run = _JobRun(args, spec, out_dir, t0)
        run.execute()
    except _Exit as exc:
        print(f"scorer batch: {exc}", file=sys.stderr)
        return exc.code
    summary = run.summary(t0, started_at)
    return run.report(summary)


@dataclass
class _Ready:
    """What the preparation settled: the job, its output opened, the mini-batches left to score."""

    job: _Job
    journal: Journal
    committed: Committed
    fresh: bool
    planned: Iterator[MiniBatch]
    skipped_weight: int


def _get_ready(args: JobArgs, spec: BatchDeployment, out_dir: Path) -> _Ready:
    """Everything after the spec that can fail with exit 2 (`_Exit`), in the order it always ran."""
    try:
        job = _prepare(args, out_dir, spec)
    except (Invalid, OutputPathError) as exc:
        raise _Exit(str(exc)) from None
    journal = Journal(out_dir)
    committed, fresh = _open_output(args, out_dir, job.spec.output_file_name, job.header, journal)
    planned, skipped_weight = _plan(job, committed)
    try:
        probe_output(out_dir)
    except OutputPathError as exc:
        raise _Exit(str(exc)) from None
    return _Ready(job, journal, committed, fresh, planned, skipped_weight)


def _open_output(args: JobArgs, out_dir: Path, output_file: str, header: dict[str, Any],
                 journal: Journal) -> tuple[Committed, bool]:
    """(what earlier runs committed, fresh): a previous job in the folder is refused, replaced
    (--overwrite) or continued (--resume, when its journal matches this run)."""
    found = _previous_job(out_dir, output_file)
    if found and not args.resume and not args.overwrite:
        raise _Exit(f"the output folder {out_dir} holds a previous job ({', '.join(found)}); "
                    "pass --resume to continue it or --overwrite to replace it")
    if args.overwrite:
        _clear(out_dir, output_file)
    elif args.resume and journal.exists():
        old, committed = journal.read()
        diffs = differences(old or {}, header)
        if diffs:
            raise _Exit("cannot resume: " + "; ".join(diffs) + " (use --overwrite to start again)")
        if committed.finished:
            raise _Exit(f"the job in {out_dir} already finished ({committed.finished.get('status')}); "
                        "nothing to do", code=0)
        log.info("resuming after %d committed mini-batches (%d items)", committed.count, committed.items)
        return committed, False
    elif args.resume and found:
        raise _Exit(f"{out_dir} has no journal to resume from ({', '.join(found)}); use --overwrite")
    return Committed(), True


def _plan(job: _Job, committed: Committed) -> tuple[Iterator[MiniBatch], int]:
    """(the mini-batches left to score, the input weight already committed). An input without any
    row is refused before Ray starts."""
    it = plan(job.files, job.mode, job.fmt, job.spec.mini_batch_rows, job.spec.mini_batch_bytes, job.text)
    skipped_weight = 0
    first: MiniBatch | None = None
    try:
        for mb in it:
            if mb.seq >= committed.count:
                first = mb
                break
            skipped_weight += mb.weight
    except inp.InputError as exc:
        raise _Exit(str(exc)) from None
    if first is None and committed.count == 0:
        raise _Exit("the inputs hold no rows to score")
    planned: Iterator[MiniBatch] = itertools.chain([first], it) if first is not None else iter(())
    return planned, skipped_weight


class _JobRun:
    """The part of a job that runs on Ray: start Ray and the pool while the job is prepared, open
    the writer, schedule, settle the outcome into a status; then the summary and the exit code."""

    def __init__(self, args: JobArgs, spec: BatchDeployment, out_dir: Path, t0: float) -> None:
        from batch.scheduler import Counters

        self.args = args
        self.spec = spec
        self.out_dir = out_dir
        self.t0 = t0
        self.job: _Job
        self.journal: Journal | None = None
        self.committed = Committed()
        self.fresh = True
        self.skipped_weight = 0
        self.status = "failed"
        self.message = ""
        self.counters = Counters()
        self.pool: Pool | None = None
        self.writer: OrderedWriter | None = None
        self.address = ""
        self.requested = self.spec.resources.instance_count * self.spec.max_concurrency_per_instance
        self.size = self.requested
        self.ray_start_s = self.pool_start_s = self.scoring_s = self.startup_s = 0.0

    def _take(self, ready: _Ready) -> Iterator[MiniBatch]:
        self.job, self.journal, self.committed = ready.job, ready.journal, ready.committed
        self.fresh, self.skipped_weight = ready.fresh, ready.skipped_weight
        return ready.planned

    def execute(self) -> None:
        """Prepare the job in a thread while Ray starts and the actors import the model runtime;
        then load the model, score, settle the status. Ray, the pool and the journal are released
        whatever happens. A preparation or pool that fails ends the job with exit 2."""
        import ray

        from batch.pool import start_ray
        from batch.startup import Background, worth_starting
        from batch.writer import OutputWriteError

        args = self.args
        prep = Background(lambda: _get_ready(args, self.spec, self.out_dir))
        if not worth_starting(args.inputs, _previous_job(self.out_dir, self.spec.output_file_name), args.resume,
                              args.overwrite):
            prep.result()  # it raises the exit 2 here, before Ray starts
        env = _actor_env(self.spec)
        before = dict(os.environ)  # what the workers of a Ray started now inherit
        t_ray = time.monotonic()
        try:
            started_here, self.address = start_ray(args.address, self.spec.logging_level == "debug")
        except Exception:
            prep.result()  # a problem with the job comes first (exit 2), as when it was found before Ray
            raise
        self.ray_start_s = time.monotonic() - t_ray
        try:
            self._new_pool(env, inherit_env=started_here and args.address is None
                           and all(before.get(k) == v for k, v in env.items()))
            assert self.pool is not None
            if started_here and args.address is None:  # a Ray of its own: the actors warm while the
                self.pool.launch()  # thread still prepares (on a shared Ray, a job that exits 2 starts none)
            planned = self._take(prep.result())
            self._start_pool()
            writer = self._open_writer()
            self.startup_s = time.monotonic() - self.t0
            outcome = self._schedule(planned, writer)
            self._settle(outcome, writer)
        except OutputWriteError as exc:  # before scoring: the journal or the output could not be opened
            self.status, self.message = "output_error", f"{exc}; make room and run again with --resume"
            if self.writer is not None:
                self.writer.close()
        finally:
            if self.pool is not None:
                self.pool.kill_all()
            if self.journal is not None:
                with contextlib.suppress(OSError):
                    self.journal.close()
            if started_here:
                ray.shutdown()

    def _new_pool(self, env: dict[str, str], inherit_env: bool) -> None:
        from batch.pool import Pool, pool_size

        self.size = pool_size(self.requested, local=self.args.address is None)
        self.pool = Pool(env, self.size, spread=self.args.address is not None, inherit_env=inherit_env)

    def _start_pool(self) -> None:
        """Hand the model to the actors (started now if not yet) and wait until they can score."""
        from batch.pool import PoolError

        assert self.pool is not None
        import ray

        # pyarrow's threads in an actor's CSV / JSON Lines parse help only where the actors leave
        # CPUs idle; beside them they cost about a third more CPU for the same rows (docs/performance.md)
        cpus = float(ray.cluster_resources().get("CPU", 0))  # type: ignore[no-untyped-call]
        self.job.cfg.parse_threads = self.size < cpus
        self.pool.load(self.job.cfg)
        try:
            self.pool.start(timeout=float(os.environ.get("SCORER_BATCH_START_TIMEOUT", "180")))
        except PoolError as exc:
            raise _Exit(str(exc)) from None
        self.pool_start_s = time.monotonic() - self.pool.launched_at
        log.info("pool of %d actors ready in %.1f s (Ray at %s)", self.size, self.pool_start_s, self.address)

    def _open_writer(self) -> OrderedWriter:
        """The output folder, the journal (cut back to what was committed on a resume), the space
        held back for the summary, and the writer that commits mini-batches in order."""
        from batch.writer import OrderedWriter, writing

        journal = self.journal
        assert journal is not None
        with writing(self.out_dir):
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if not self.fresh:
                journal.truncate_to(self.committed)
            journal.start(self.job.header, self.fresh)
            reserve_summary_space(self.out_dir)
            output_file = self.spec.output_file_name if self.spec.output_action == "append_row" else None
            self.writer = OrderedWriter(self.out_dir, journal, output_file, self.spec.output_format,
                                        self.committed)
        return self.writer

    def _schedule(self, planned: Iterator[MiniBatch], writer: OrderedWriter) -> str:
        """Run the driver loop under the signal handlers, with progress; returns its outcome
        ('done' | 'threshold' | 'interrupted' | 'error' | 'output_error')."""
        from batch.scheduler import Counters, Stop, run_schedule
        from batch.writer import AccountingError, OutputWriteError, Result

        assert self.pool is not None
        committed, spec = self.committed, self.spec
        progress = Progress(sum(f.size for f in self.job.files), every=self.args.progress_every)
        progress.update(self.skipped_weight, committed.items, committed.failed, committed.count)

        def on_commit(results: list[Result], c: Counters) -> None:
            progress.update(self.skipped_weight + c.weight_done, committed.items + c.items,
                            committed.failed + c.items_failed, committed.count + c.batches)

        t_score = time.monotonic()
        with _Signals() as sig:
            try:
                outcome, self.counters = run_schedule(
                    planned, self.pool, writer, tabular=self.job.mode == "tabular",
                    max_retries=spec.retry_settings.max_retries, timeout=spec.retry_settings.timeout,
                    threshold=spec.error_threshold, failed_before=committed.failed,
                    should_stop=lambda: sig.stop, on_commit=on_commit, counters=self.counters)
            except Stop as exc:
                outcome, self.message = "error", str(exc)
            except KeyboardInterrupt:
                outcome = "interrupted"
            except OutputWriteError as exc:
                outcome, self.message = "output_error", str(exc)
            except (AccountingError, inp.InputError) as exc:
                outcome, self.message = "error", str(exc)
        self.scoring_s = time.monotonic() - t_score
        progress.close()
        self.pool.kill_all()
        return outcome

    def _settle(self, outcome: str, writer: OrderedWriter) -> None:
        """The job's status from the loop's outcome: finish or close the output and the journal;
        at a threshold stop, the failures of unfinished mini-batches still reach errors.jsonl."""
        from batch.writer import OutputWriteError, writing

        if outcome == "done":
            try:
                writer.finish()
                self.status = "completed_with_errors" if self.committed.failed + self.counters.items_failed \
                    else "completed"
                with writing(self.out_dir):
                    writer.journal.finish(self.status)
            except OutputWriteError as exc:
                self.message, self.status = str(exc), "output_error"
        elif outcome == "interrupted":
            writer.close()
            self.status = "interrupted"
        elif outcome in ("output_error", "error"):
            writer.close()
            self.status = outcome
            if outcome == "output_error":
                self.message += "; make room and run again with --resume"
        else:
            try:
                writer.dump_unfinished(self.counters.unfinished)
            except OutputWriteError as exc:
                log.warning("%s", exc)
            writer.close()
            self.status = "failed"
            if outcome == "threshold":
                failed_total = self.committed.failed + self.counters.failed_seen
                self.message = (f"{failed_total} failed items exceed error_threshold {self.spec.error_threshold}; "
                                f"stopped (see {self.out_dir / 'errors.jsonl'})")

    def summary(self, t0: float, started_at: str) -> dict[str, Any]:
        """job_summary.json: this run's counters on top of what earlier runs committed."""
        committed, counters, spec, job, pool = self.committed, self.counters, self.spec, self.job, self.pool
        failed_total = committed.failed + max(counters.items_failed, counters.failed_seen)
        items = committed.items + counters.items + sum(r.failed for r in counters.unfinished)
        first_errors = {**committed.first_errors, **{k: v for k, v in counters.first_errors.items()
                                                      if k not in committed.first_errors}}
        scoring_s = self.scoring_s
        return {
            "name": spec.name, "status": self.status, "exit_code": STATUS_EXIT[self.status],
            "model": job.header["model"],
            "inputs": [f.path for f in job.files], "input_mode": job.mode, "input_format": job.fmt,
            "output": str(self.out_dir / spec.output_file_name) if spec.output_action == "append_row" else None,
            "mini_batches": {"total": committed.count + counters.batches,
                             "succeeded": committed.count - committed.failed_batches + counters.batches_ok,
                             "retried": committed.retried + counters.batches_retried,
                             "failed": committed.failed_batches + counters.batches_failed},
            "items": {"total": items, "succeeded": items - failed_total, "failed": failed_total},
            "error_threshold": spec.error_threshold,
            "first_errors": first_errors,
            "retries": counters.retries, "timeouts": counters.timeouts, "actor_deaths": counters.actor_deaths,
            "splits": counters.splits,
            "blank_lines": committed.blank_lines + counters.blank_lines,
            "durations": {"total_s": round(time.monotonic() - t0, 3), "ray_start_s": round(self.ray_start_s, 3),
                          "pool_start_s": round(self.pool_start_s, 3), "startup_s": round(self.startup_s, 3),
                          "scoring_s": round(scoring_s, 3)},
            "rows_per_second": round(counters.items / scoring_s, 1) if scoring_s > 0 else None,
            "ray_address": self.address, "pool": {"requested": self.requested, "actors": self.size,
                                                  "replaced": pool.replaced if pool else 0,
                                                  "nodes": len({i["node"] for i in pool.infos}) if pool else 0,
                                                  "actors_by_node_ip": _by_ip(pool.infos) if pool else {}},
            "resumed": not self.fresh, "resumed_after_mini_batches": committed.count if not self.fresh else 0,
            "started_at": started_at, "finished_at": _now(),
            "message": self.message or None,
            "model_version": job.resolved.version if job.resolved else None,
        }

    def report(self, summary: dict[str, Any]) -> int:
        """Write the summary, say how it ended on stderr (or in the log), and return the exit code."""
        out_dir = self.out_dir
        try:
            write_summary(out_dir, summary)
        except OSError as exc:
            log.error("cannot write %s: %s", out_dir / "job_summary.json", exc.strerror or exc)
            if self.status != "output_error":
                self.status, summary["exit_code"] = "output_error", STATUS_EXIT["output_error"]
                self.message = f"cannot write {out_dir / 'job_summary.json'}: {exc.strerror or exc}"
        status, message = self.status, self.message
        items, failed = summary["items"]["total"], summary["items"]["failed"]
        if status in ("output_error", "error"):
            print(f"scorer batch: {'output error' if status == 'output_error' else 'failed'}: {message}",
                  file=sys.stderr)
        elif status == "failed":
            print(f"scorer batch: failed: {message}", file=sys.stderr)
            for kind, err in summary["first_errors"].items():
                print(f"  first {kind}: mini-batch {err['mini_batch']}: {err['error']}", file=sys.stderr)
        elif status == "interrupted":
            print(f"scorer batch: interrupted after {items} items; run again with --resume to continue",
                  file=sys.stderr)
        else:
            log.info("%s: %d items (%d failed) in %.1f s, %.0f items/s; summary %s", status, items, failed,
                     self.scoring_s, summary["rows_per_second"] or 0, out_dir / "job_summary.json")
        return STATUS_EXIT[status]

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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batch import inputs as inp
from batch.journal import WORK_DIR, Committed, Journal, differences
from batch.lines import options_from
from batch.outputs import OutputPathError, check_output_path, probe_output
from batch.plan import MiniBatch, plan
from batch.progress import Progress
from batch.summary import STATUS_EXIT, reserve_summary_space, write_summary
from batch.worker import WorkerConfig

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


def _actor_env(spec_env: dict[str, str]) -> dict[str, str]:
    from scorer.environment import TELEMETRY_OFF

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


def _prepare(args: JobArgs, out_dir: Path) -> dict[str, Any]:
    """Everything that can fail with exit 2, before Ray starts."""
    from scorer.environment import configure
    from scorer.models import ModelNotFound, resolve
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
    spec = loaded.spec
    _setup_logging(spec.logging_level)
    for w in getattr(loaded, "warnings", []) or []:
        log.warning("%s", w)
    mode = spec.effective_input_mode
    code = spec.code_configuration
    script = code.scoring_script if code else None
    if mode == "files" and not script:
        raise Invalid("input_mode: files needs code_configuration.scoring_script (its run() gets lists of paths)")
    if not spec.model and not script:
        raise Invalid("the deployment names no model and no scoring script: nothing would score")
    if spec.output_action == "summary_only" and args.keep_columns:
        log.warning("--keep-columns has no effect with output_action: summary_only")

    resolved = None
    signature = None
    if spec.model:
        try:
            resolved = resolve(spec.model)
        except ModelNotFound as exc:
            raise Invalid(str(exc)) from None
        signature = _signature(resolved.local_path)

    try:
        text = options_from(spec.text_input.newlines_in_values, int(spec.text_input.max_line_bytes))
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    try:
        files = inp.discover(args.inputs, exclude=out_dir)
        fmt = None
        schema = None
        read_cols = model_cols = None
        if mode == "tabular":
            fmt = inp.tabular_format(files)
            schema = inp.unify([(f, inp.read_schema(f, fmt, text)) for f in files])
            if not script:
                schema = inp.relax_numbers(schema, files, fmt, text, signature)
            problems = inp.check_signature(schema, signature if not script else None, args.keep_columns)
            if problems:
                raise Invalid("the inputs do not fit the model:\n  " + "\n  ".join(problems))
            if signature is not None and signature.inputs is not None and not script:
                schema = inp.fit_schema(schema, signature)
                names = [s.name for s in signature.inputs.inputs if getattr(s, "name", None)]
                model_cols = [n for n in names if n in schema.names] or None
            read_cols = inp.columns_to_read(schema, model_cols, args.keep_columns)
        elif args.keep_columns:
            raise Invalid("--keep-columns is for tabular inputs; input_mode is files")
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
                       env=_actor_env(spec.environment_variables), log_level=spec.logging_level, text=text)
    return {"spec": spec, "files": files, "fmt": fmt, "mode": mode, "resolved": resolved, "header": header,
            "cfg": cfg, "text": text}


def _by_ip(infos: list[dict]) -> dict[str, int]:
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


def _run_job(args: JobArgs) -> int:
    t0 = time.monotonic()
    started_at = _now()
    try:
        out_dir = check_output_path(args.output)
        job = _prepare(args, out_dir)
    except (Invalid, OutputPathError) as exc:
        print(f"scorer batch: {exc}", file=sys.stderr)
        return 2
    spec = job["spec"]
    journal = Journal(out_dir)
    found = _previous_job(out_dir, spec.output_file_name)
    committed = Committed()
    fresh = True
    if found and not args.resume and not args.overwrite:
        print(f"scorer batch: the output folder {out_dir} holds a previous job ({', '.join(found)}); "
              "pass --resume to continue it or --overwrite to replace it", file=sys.stderr)
        return 2
    if args.overwrite:
        _clear(out_dir, spec.output_file_name)
    elif args.resume and journal.exists():
        header, committed = journal.read()
        diffs = differences(header or {}, job["header"])
        if diffs:
            print("scorer batch: cannot resume: " + "; ".join(diffs) + " (use --overwrite to start again)",
                  file=sys.stderr)
            return 2
        if committed.finished:
            print(f"scorer batch: the job in {out_dir} already finished ({committed.finished.get('status')}); "
                  "nothing to do", file=sys.stderr)
            return 0
        fresh = False
        log.info("resuming after %d committed mini-batches (%d items)", committed.count, committed.items)
    elif args.resume and found:
        print(f"scorer batch: {out_dir} has no journal to resume from ({', '.join(found)}); "
              "use --overwrite", file=sys.stderr)
        return 2

    # The plan: skip committed mini-batches; an input without any row is refused before Ray starts.
    files = job["files"]
    rows = spec.mini_batch_rows
    nbytes = spec.mini_batch_bytes
    it = plan(files, job["mode"], job["fmt"], rows, nbytes, job["text"])
    skipped_weight = 0
    first: MiniBatch | None = None
    try:
        for mb in it:
            if mb.seq >= committed.count:
                first = mb
                break
            skipped_weight += mb.weight
    except inp.InputError as exc:
        print(f"scorer batch: {exc}", file=sys.stderr)
        return 2
    if first is None and committed.count == 0:
        print("scorer batch: the inputs hold no rows to score", file=sys.stderr)
        return 2
    planned: Any = itertools.chain([first], it) if first is not None else iter(())
    try:
        probe_output(out_dir)
    except OutputPathError as exc:
        print(f"scorer batch: {exc}", file=sys.stderr)
        return 2

    import ray

    from batch.pool import Pool, PoolError, pool_size, start_ray
    from batch.scheduler import Counters, Stop, run_schedule
    from batch.writer import AccountingError, OrderedWriter, OutputWriteError, writing

    t_ray = time.monotonic()
    started_here, address = start_ray(args.address, spec.logging_level == "debug")
    ray_start_s = time.monotonic() - t_ray
    pool = None
    status = "failed"
    counters = Counters()
    message = ""
    requested = spec.resources.instance_count * spec.max_concurrency_per_instance
    size = requested
    writer = None
    pool_start_s = 0.0
    scoring_s = 0.0
    try:
        size = pool_size(requested, local=args.address is None)
        pool = Pool(job["cfg"], size, spread=args.address is not None)
        t_pool = time.monotonic()
        try:
            pool.start(timeout=float(os.environ.get("SCORER_BATCH_START_TIMEOUT", "180")))
        except PoolError as exc:
            print(f"scorer batch: {exc}", file=sys.stderr)
            return 2
        pool_start_s = time.monotonic() - t_pool
        log.info("pool of %d actors ready in %.1f s (Ray at %s)", size, pool_start_s, address)
        with writing(out_dir):
            out_dir.mkdir(parents=True, exist_ok=True)
            if not fresh:
                journal.truncate_to(committed)
            journal.start(job["header"], fresh)
            reserve_summary_space(out_dir)
            output_file = spec.output_file_name if spec.output_action == "append_row" else None
            writer = OrderedWriter(out_dir, journal, output_file, spec.output_format, committed)
        progress = Progress(sum(f.size for f in files), every=args.progress_every)
        progress.update(skipped_weight, committed.items, committed.failed, committed.count)

        def on_commit(results: list, c: Counters) -> None:
            progress.update(skipped_weight + c.weight_done, committed.items + c.items,
                            committed.failed + c.items_failed, committed.count + c.batches)

        t_score = time.monotonic()
        with _Signals() as sig:
            try:
                outcome, counters = run_schedule(
                    planned, pool, writer, tabular=job["mode"] == "tabular",
                    max_retries=spec.retry_settings.max_retries, timeout=spec.retry_settings.timeout,
                    threshold=spec.error_threshold, failed_before=committed.failed,
                    should_stop=lambda: sig.stop, on_commit=on_commit, counters=counters)
            except Stop as exc:
                outcome, message = "error", str(exc)
            except KeyboardInterrupt:
                outcome = "interrupted"
            except OutputWriteError as exc:
                outcome, message = "output_error", str(exc)
            except (AccountingError, inp.InputError) as exc:
                outcome, message = "error", str(exc)
        scoring_s = time.monotonic() - t_score
        progress.close()
        pool.kill_all()
        failed_total = committed.failed + counters.items_failed
        if outcome == "done":
            try:
                writer.finish()
                status = "completed_with_errors" if failed_total else "completed"
                with writing(out_dir):
                    journal.finish(status)
            except OutputWriteError as exc:
                outcome, message, status = "output_error", str(exc), "output_error"
        elif outcome == "interrupted":
            writer.close()
            status = "interrupted"
        elif outcome in ("output_error", "error"):
            writer.close()
            status = outcome
            if outcome == "output_error":
                message += "; make room and run again with --resume"
        else:
            try:
                writer.dump_unfinished(counters.unfinished)
            except OutputWriteError as exc:
                log.warning("%s", exc)
            writer.close()
            status = "failed"
            failed_total = committed.failed + counters.failed_seen
            if outcome == "threshold":
                message = (f"{failed_total} failed items exceed error_threshold {spec.error_threshold}; "
                           f"stopped (see {out_dir / 'errors.jsonl'})")
    except OutputWriteError as exc:  # before scoring: the journal or the output could not be opened
        status, message = "output_error", f"{exc}; make room and run again with --resume"
        if writer is not None:
            writer.close()
    finally:
        if pool is not None:
            pool.kill_all()
        with contextlib.suppress(OSError):
            journal.close()
        if started_here:
            ray.shutdown()
    failed_total = committed.failed + max(counters.items_failed, counters.failed_seen)
    items = committed.items + counters.items + sum(r.failed for r in counters.unfinished)
    first_errors = {**committed.first_errors, **{k: v for k, v in counters.first_errors.items()
                                                  if k not in committed.first_errors}}
    resolved = job["resolved"]
    summary = {
        "name": spec.name, "status": status, "exit_code": STATUS_EXIT[status],
        "model": job["header"]["model"],
        "inputs": [f.path for f in files], "input_mode": job["mode"], "input_format": job["fmt"],
        "output": str(out_dir / spec.output_file_name) if spec.output_action == "append_row" else None,
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
        "durations": {"total_s": round(time.monotonic() - t0, 3), "ray_start_s": round(ray_start_s, 3),
                      "pool_start_s": round(pool_start_s, 3), "scoring_s": round(scoring_s, 3)},
        "rows_per_second": round(counters.items / scoring_s, 1) if scoring_s > 0 else None,
        "ray_address": address, "pool": {"requested": requested, "actors": size,
                                         "replaced": pool.replaced if pool else 0,
                                         "nodes": len({i["node"] for i in pool.infos}) if pool else 0,
                                         "actors_by_node_ip": _by_ip(pool.infos) if pool else {}},
        "resumed": not fresh, "resumed_after_mini_batches": committed.count if not fresh else 0,
        "started_at": started_at, "finished_at": _now(),
        "message": message or None,
        "model_version": resolved.version if resolved else None,
    }
    try:
        write_summary(out_dir, summary)
    except OSError as exc:
        log.error("cannot write %s: %s", out_dir / "job_summary.json", exc.strerror or exc)
        if status != "output_error":
            status, summary["exit_code"] = "output_error", STATUS_EXIT["output_error"]
            message = f"cannot write {out_dir / 'job_summary.json'}: {exc.strerror or exc}"
    if status in ("output_error", "error"):
        print(f"scorer batch: {'output error' if status == 'output_error' else 'failed'}: {message}",
              file=sys.stderr)
    elif status == "failed":
        print(f"scorer batch: failed: {message}", file=sys.stderr)
        for kind, err in first_errors.items():
            print(f"  first {kind}: mini-batch {err['mini_batch']}: {err['error']}", file=sys.stderr)
    elif status == "interrupted":
        print(f"scorer batch: interrupted after {items} items; run again with --resume to continue",
              file=sys.stderr)
    else:
        log.info("%s: %d items (%d failed) in %.1f s, %.0f items/s; summary %s", status, items, failed_total,
                 scoring_s, summary["rows_per_second"] or 0, out_dir / "job_summary.json")
    return STATUS_EXIT[status]

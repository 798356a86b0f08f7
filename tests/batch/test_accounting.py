"""Whole jobs: every input row ends in the output or in errors.jsonl, and exit codes say what
happened (0 done, 1 threshold, 2 bad input/output found before Ray, 3 output not writable
mid-run, 4 anything else)."""

from __future__ import annotations

import json
import resource
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.batch.conftest import run_cli, summary, write_yaml

N = 30_001


def _issue_csv(path: Path) -> None:
    """The issue's file: 30,001 rows; an unbalanced quote at data row 20,001, a bad cell at row
    25,001 and a blank line after row 10,001."""
    rows = [str(i) for i in range(N)]
    rows[20_000] = '"20000'
    rows[25_000] = "abc"
    rows[10_000] += "\n"
    path.write_text("x\n" + "\n".join(rows) + "\n")


def test_every_row_is_accounted_for_without_splits(ray_session, models, tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _issue_csv(data / "x.csv")
    dep = write_yaml(tmp_path / "dep.yaml", model=models["behaviour"], mini_batch_size=10_000,
                     retry_settings={"max_retries": 1, "timeout": 60})
    out = data / "out"  # the output folder inside the input folder
    t0 = time.monotonic()
    assert run_cli("batch", str(dep), "--input", str(data), "--output", str(out)) == 0
    assert time.monotonic() - t0 < 60  # before: 141 s of splitting for one bad cell
    s = summary(out)
    assert s["status"] == "completed_with_errors"
    assert s["items"] == {"total": N, "succeeded": N - 2, "failed": 2}  # before: total 20001, 10,000 rows lost
    assert s["blank_lines"] == 1 and s["splits"] == 0
    got = pd.read_csv(out / "predictions.csv")
    assert len(got) == N - 2 and got["row"].iloc[-1] == N - 1
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [(e["row"], e["line"], e["column"], e["value"]) for e in errors] == [
        (20_000, 20_003, None, '"20000'), (25_000, 25_003, "x", "abc")]
    assert "unbalanced double quote" in errors[0]["error"]
    assert errors[1]["error"] == "ParseError: column 'x': cannot convert 'abc' to double"
    # a second job over the same folder does not read the first one's output
    from batch.runner import JobArgs, _prepare

    job = _prepare(JobArgs(str(dep), [str(data)], str(out), overwrite=True), out.resolve())
    assert [f.name for f in job.files] == ["x.csv"]


def test_bad_output_is_refused_before_ray_starts(models, tmp_path, capsys) -> None:
    src = tmp_path / "x.csv"
    src.write_text("x\n1\n2\n")
    dep = write_yaml(tmp_path / "dep.yaml", model=models["behaviour"])
    a_file = tmp_path / "taken"
    a_file.write_text("")
    for output, says in ((a_file, "is a file"), (a_file / "out", "which is a file"),
                         (Path("/proc/scorer-out"), "cannot be written")):
        t0 = time.monotonic()
        assert run_cli("batch", str(dep), "--input", str(src), "--output", str(output)) == 2
        assert time.monotonic() - t0 < 15  # before: 16-21 s, after Ray and the pool had started
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0] and str(output) in err[0], err


def test_unexpected_failure_is_one_line_and_exit_4(models, tmp_path, capsys, monkeypatch) -> None:
    import batch.runner

    def boom(*a, **k):
        raise RuntimeError("planner exploded")

    monkeypatch.setattr(batch.runner, "plan", boom)
    src = tmp_path / "x.csv"
    src.write_text("x\n1\n")
    dep = write_yaml(tmp_path / "dep.yaml", model=models["behaviour"])
    out = tmp_path / "out"
    assert run_cli("batch", str(dep), "--input", str(src), "--output", str(out)) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "RuntimeError: planner exploded" in err[0], err
    log_file = Path(err[0].rsplit("(traceback in ", 1)[1].rstrip(")"))
    assert "Traceback" in log_file.read_text() and "planner exploded" in log_file.read_text()
    log_file.unlink()
    assert not (out / ".scorer-batch").exists()  # a rerun is not refused as a previous job


class _FileSizeLimit:
    """While active, writes past `limit` bytes in a file fail with EFBIG ("File too large"), as
    writes fail on a full disk. In this process only (the session's Ray runs elsewhere)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def __enter__(self) -> None:
        self.old = resource.getrlimit(resource.RLIMIT_FSIZE)
        self.sig = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, self.old[1]))

    def __exit__(self, *exc: object) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, self.old)
        signal.signal(signal.SIGXFSZ, self.sig)


@pytest.mark.slow
def test_output_write_error_is_exit_3_with_a_summary_then_resume_completes(ray_session, models, tmp_path,
                                                                         capsys) -> None:
    n = 20_000
    src = tmp_path / "x.csv"
    src.write_text("x\n" + "".join(f"{i}\n" for i in range(n)))
    dep = write_yaml(tmp_path / "dep.yaml", model=models["behaviour"], mini_batch_size=1000)
    out = tmp_path / "out"
    args = ["batch", str(dep), "--input", str(src), "--output", str(out)]
    with _FileSizeLimit(150_000):
        assert run_cli(*args) == 3
    err = [x for x in capsys.readouterr().err.splitlines() if " INFO " not in x and x.strip()]
    assert len(err) == 1 and "File too large" in err[0] and "--resume" in err[0], err
    s = summary(out)
    assert s["status"] == "output_error" and s["exit_code"] == 3 and "File too large" in s["message"]
    assert run_cli(*args, "--resume") == 0
    got = pd.read_csv(out / "predictions.csv")
    assert got["row"].tolist() == list(range(n))  # every row, exactly once
    assert summary(out)["status"] == "completed"

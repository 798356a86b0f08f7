"""Ordered writer, journal and progress without Ray."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow as pa

from batch.journal import Journal, differences
from batch.progress import Progress
from batch.writer import Failure, OrderedWriter, Result


def _result(seq: int, rows: range, failures: list[Failure] | None = None) -> Result:
    bad = {i for f in failures or [] for i in range(f.start, f.stop)}
    good = [r for r in rows if r not in bad]  # a failed row is not in the output
    table = pa.table({"file": ["a.csv"] * len(good), "row": good, "prediction": [float(r) for r in good]})
    return Result(seq, f"a.csv:{rows.start}-{rows.stop}", "a.csv", len(rows), table, failures or [])


def _writer(out: Path, header: dict | None = None) -> tuple[Journal, OrderedWriter]:
    journal = Journal(out)
    _, committed = journal.read()
    journal.start(header or {"model": {}, "inputs": [], "settings": {}}, fresh=not journal.exists())
    return journal, OrderedWriter(out, journal, "predictions.csv", "csv", committed)


def test_out_of_order_results_wait_on_disk_and_commit_in_order(tmp_path: Path) -> None:
    journal, w = _writer(tmp_path)
    assert w.add(_result(2, range(20, 30))) == []
    assert w.add(_result(1, range(10, 20), [Failure("ValueError: bad", "ValueError", 12, 13)])) == []
    assert sorted(p.name for p in w.pending_dir.iterdir()) == ["1.arrow", "2.arrow"]  # on disk, not in memory
    assert (tmp_path / "predictions.csv").read_text() == ""  # nothing before the ordered prefix is complete
    committed = w.add(_result(0, range(0, 10)))
    assert [r.seq for r in committed] == [0, 1, 2]
    assert list(w.pending_dir.iterdir()) == []
    w.finish()
    journal.finish("completed")
    journal.close()
    lines = (tmp_path / "predictions.csv").read_text().splitlines()
    assert lines[0] == "file,row,prediction"
    assert [int(x.split(",")[1]) for x in lines[1:]] == [i for i in range(30) if i != 12]
    errors = [json.loads(x) for x in (tmp_path / "errors.jsonl").read_text().splitlines()]
    assert errors == [{"mini_batch": "a.csv:10-20", "file": "a.csv", "row": 12, "error": "ValueError: bad"}]
    _, c = Journal(tmp_path).read()
    assert (c.count, c.items, c.failed, c.finished["status"]) == (3, 30, 1, "completed")


def test_resume_cuts_off_rows_written_after_the_last_commit(tmp_path: Path) -> None:
    journal, w = _writer(tmp_path)
    w.add(_result(0, range(0, 10)))
    w.close()
    journal.close()
    with open(tmp_path / "predictions.csv", "a") as fh:  # a killed driver wrote rows but no journal line
        fh.write("a.csv,10,10.0\na.csv,11,1")
    with open(journal.path, "a") as fh:
        fh.write('{"type": "commit", "seq": 1, "id"')  # and a torn journal line
    _, c = Journal(tmp_path).read()
    assert c.count == 1
    journal2, w2 = _writer(tmp_path)
    journal2.truncate_to(c)
    w2.add(_result(1, range(10, 20)))
    w2.finish()
    rows = [int(x.split(",")[1]) for x in (tmp_path / "predictions.csv").read_text().splitlines()[1:]]
    assert rows == list(range(20))


def test_differences_name_what_changed() -> None:
    old = {"model": {"uri": "models:/m/1", "version": "1"}, "inputs": [{"path": "/a", "size": 1, "mtime_ns": 1}],
           "settings": {"mini_batch_size": 10}}
    new = {"model": {"uri": "models:/m/2", "version": "2"}, "inputs": [{"path": "/a", "size": 2, "mtime_ns": 1}],
           "settings": {"mini_batch_size": 20}}
    diffs = differences(old, new)
    assert diffs[0].startswith("model version changed: the journal pinned models:/m/1 (version 1)")
    assert diffs[1] == "inputs changed: modified /a"
    assert diffs[2] == "setting mini_batch_size changed: 10 -> 20"
    assert differences(old, old) == []


def test_progress_logs_plain_lines_off_a_terminal(caplog) -> None:
    caplog.set_level(logging.INFO, logger="scorer.batch")
    logging.getLogger("scorer.batch").propagate = True
    p = Progress(100, every=0, tty=False)
    p.update(50, 5000, 1, 3)
    p.close()
    assert "progress: 50% (3 mini-batches, 5000 items, 1 failed" in caplog.text


def test_rows_that_do_not_add_up_are_refused_and_parse_errors_carry_their_place(tmp_path: Path) -> None:
    import pytest

    from batch.plan import MiniBatch
    from batch.writer import AccountingError

    journal, w = _writer(tmp_path)
    short = _result(0, range(0, 10))
    short.items = 11  # a row that is neither in the output nor in the errors
    with pytest.raises(AccountingError, match="10 output rows and 0 failed rows for 11 input rows"):
        w.add(short)
    mb = MiniBatch(0, "a.csv:0-10", "csv", "/a.csv", "a.csv", 0, 10, line=2, jumps=((0, 2), (5, 9)))
    fails = [Failure("ParseError: column 'x': cannot convert 'abc' to double", "ParseError", 3, 4, line=5,
                     column="x", value="abc", parse=True),
             Failure("ValueError: model", "ValueError", 7, 8)]
    r = _result(0, range(0, 10), fails)
    r.mb = mb
    w.add(r)
    w.finish()
    journal.close()
    errors = [json.loads(x) for x in (tmp_path / "errors.jsonl").read_text().splitlines()]
    assert errors == [
        {"mini_batch": "a.csv:0-10", "file": "a.csv", "row": 3, "line": 5, "column": "x", "value": "abc",
         "error": "ParseError: column 'x': cannot convert 'abc' to double"},
        {"mini_batch": "a.csv:0-10", "file": "a.csv", "row": 7, "line": 11, "error": "ValueError: model"}]

"""Every input row is accounted for: the planner and an actor's reading, without Ray."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch import plan as plan_mod
from batch.inputs import InputError, discover, read_schema
from batch.lines import Scanner, TextOptions
from batch.outputs import OutputPathError, check_output_path, probe_output
from batch.parse import TextReader, header_names
from batch.plan import MiniBatch, line_of, plan
from batch.worker import ScoringWorker, WorkerConfig


def _worker(schema: pa.Schema, fmt: str, text: TextOptions) -> ScoringWorker:
    w = ScoringWorker.__new__(ScoringWorker)
    w.cfg = WorkerConfig("tabular", fmt, schema, None, None, text=text)
    w._headers, w._last = {}, None
    return w


def _read_all(path: Path, fmt: str, rows: int, text: TextOptions = TextOptions(),
              schema: pa.Schema | None = None) -> tuple[list[MiniBatch], list[dict], list[dict]]:
    """(mini-batches, good rows as dicts with their row number, failures) of a whole file."""
    files = discover([str(path)])
    schema = schema or read_schema(files[0], fmt, text)
    w = _worker(schema, fmt, text)
    mbs = list(plan(files, "tabular", fmt, rows, None, text))
    good: list[dict] = []
    failed: list[dict] = []
    for mb in mbs:
        r = w._read(mb)
        good += [{"row": int(i), **d} for i, d in zip(r.rows, r.table.to_pylist(), strict=True)]
        failed += r.failures
    return mbs, good, failed


def _data_lines(n: int) -> list[str]:
    return [f"{i},{i * 2},{i % 7}" for i in range(n)]


def test_unbalanced_quote_fails_its_line_only(tmp_path: Path) -> None:
    lines = _data_lines(3000)
    lines[2000] = '1,"2,3,4'
    path = tmp_path / "q.csv"
    path.write_text("a,b,c\n" + "\n".join(lines) + "\n")
    mbs, good, failed = _read_all(path, "csv", 1000)
    assert sum(m.items for m in mbs) == 3000  # before: 2001 (the rest of the file was one field)
    assert len(good) == 2999 and [f["row"] for f in failed] == [2000]
    assert failed[0]["line"] == 2002 and "unbalanced double quote" in failed[0]["error"]
    assert good[-1] == {"row": 2999, "a": 2999, "b": 5998, "c": 2999 % 7}


def test_newlines_in_values_opt_in_fails_every_line_after_an_unclosed_quote(tmp_path: Path) -> None:
    lines = _data_lines(100)
    lines[10] = '10,"multi\nline",3'  # one row over two lines
    lines[60] = '60,"never closed,3'
    path = tmp_path / "m.csv"
    path.write_text("a,b,c\n" + "\n".join(lines) + "\n")
    text = TextOptions(newlines_in_values=True)
    schema = pa.schema([("a", pa.int64()), ("b", pa.string()), ("c", pa.int64())])
    mbs, good, failed = _read_all(path, "csv", 32, text, schema)
    assert [g["row"] for g in good] == list(range(60))
    assert good[10]["b"] == "multi\nline"
    # rows 60.. are the physical lines 63..102, each failed and reported
    assert [f["line"] for f in failed] == list(range(63, 103))
    assert all("opened on line 63" in f["error"] for f in failed)
    assert sum(m.items for m in mbs) == 60 + 40
    with pytest.raises(AssertionError):  # by default the same file splits at every newline
        assert _read_all(path, "csv", 32, TextOptions(), schema)[2] == failed


def test_bad_cell_fails_its_row_with_line_column_and_value(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    lines = _data_lines(5000)
    lines[4321] = "4321,abc,1"
    path.write_text("a,b,c\n" + "\n".join(lines) + "\n")
    schema = pa.schema([("a", pa.int64()), ("b", pa.float64()), ("c", pa.int64())])
    _, good, failed = _read_all(path, "csv", 5000, schema=schema)
    assert len(good) == 4999
    assert failed == [{"row": 4321, "line": 4323, "column": "b", "value": "abc",
                       "error": "ParseError: column 'b': cannot convert 'abc' to double"}]


def test_blank_lines_are_not_rows(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text("a,b,c\n1,2,3\n\n4,5,6\n  \r\n7,8,9\n\n\n")
    mbs, good, failed = _read_all(path, "csv", 2)
    assert [g["a"] for g in good] == [1, 4, 7] and not failed
    assert [(m.start, m.stop) for m in mbs] == [(0, 2), (2, 3)]
    assert sum(m.blank for m in mbs) == 4
    assert [line_of(mbs[0], 0), line_of(mbs[0], 1), line_of(mbs[1], 2)] == [2, 4, 6]


def test_a_line_over_max_line_bytes_fails_alone_and_is_not_read(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan_mod, "CHUNK", 1 << 16)
    path = tmp_path / "l.csv"
    huge = "5," + "9" * 500_000 + ",1"
    path.write_text("a,b,c\n1,2,3\n" + huge + "\n4,5,6")  # no trailing newline
    text = TextOptions(max_line_bytes=100_000)
    schema = pa.schema([("a", pa.int64()), ("b", pa.string()), ("c", pa.int64())])
    mbs, good, failed = _read_all(path, "csv", 10, text, schema)
    assert [g["row"] for g in good] == [0, 2] and [f["row"] for f in failed] == [1]
    assert "longer than text_input.max_line_bytes (100000 bytes)" in failed[0]["error"]
    assert len(failed[0]["value"]) <= 200
    from batch.parse import _read_bytes

    assert len(_read_bytes(mbs[0])) < 100  # the actor reads around it


def test_json_lines_rows_fail_alone(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text('{"x": 1}\n\n{"x": "a"}\n{not json\n{"x": 4}\n' + '{"x": ' + "1" * 300 + "}\n")
    _, good, failed = _read_all(path, "jsonl", 3, TextOptions(max_line_bytes=100))
    assert good == [{"row": 0, "x": 1}, {"row": 3, "x": 4}]
    assert [(f["row"], f["line"], f["column"]) for f in failed] == [(1, 3, "x"), (2, 4, None), (4, 6, None)]
    assert "invalid JSON" in failed[1]["error"] and "max_line_bytes" in failed[2]["error"]


def test_schema_inference_skips_rows_that_fail_alone(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text('a,b\n1,2\n3,"4\n\n5,6,7\n8,9\n')
    assert read_schema(discover([str(path)])[0], "csv").types == [pa.int64(), pa.int64()]


def test_csv_files_name_their_columns_in_their_own_order(tmp_path: Path) -> None:
    """An actor parses a CSV mini-batch with the header's names instead of the header line in front
    of the rows: each file's own header still decides which column is which."""
    (tmp_path / "a.csv").write_text('id,"b,x",c\n' + "".join(f'{i},{i * 10},{-i}\n' for i in range(50)))
    (tmp_path / "b.csv").write_text('c,id,"b,x"\n' + "".join(f'{-i},{i},{i * 10}\n' for i in range(50, 90)))
    files = discover([str(tmp_path)])
    schema = read_schema(files[0], "csv", TextOptions())
    w = _worker(schema, "csv", TextOptions())
    rows = [d for mb in plan(files, "tabular", "csv", 16, None, TextOptions()) for d in w._read(mb).table.to_pylist()]
    assert rows == [{"id": i, "b,x": i * 10, "c": -i} for i in range(90)]
    assert {path: names for path, (_, names) in w._headers.items()} == {
        str(tmp_path / "a.csv"): ["id", "b,x", "c"], str(tmp_path / "b.csv"): ["c", "id", "b,x"]}


_cell = st.text(alphabet='az1 ,"\u00e9', max_size=4)


@settings(max_examples=80, deadline=None)
@given(names=st.lists(st.text(alphabet='ab ,"\u00e9', min_size=1, max_size=4), min_size=1, max_size=4, unique=True),
       data=st.data(), threads=st.booleans())
def test_csv_parsed_with_the_header_names_equals_parsed_behind_the_header(names: list[str], data: st.DataObject,
                                                                          threads: bool) -> None:
    rows = data.draw(st.lists(st.lists(_cell, min_size=len(names), max_size=len(names)), min_size=1, max_size=6))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    header = out.getvalue().encode()
    out.seek(0), out.truncate()
    writer.writerows(rows)
    body = out.getvalue().encode()
    schema = pa.schema([(n, pa.string()) for n in names])
    parsed = header_names(header, TextOptions())
    assert parsed == names
    fast = TextReader("csv", schema, None, TextOptions(), threads, parsed).parse(header, body)
    behind = TextReader("csv", schema, None, TextOptions()).parse(header, body)
    assert fast.equals(behind)
    assert fast.column_names == names


_WS = b" \t\n\r\x0b\x0c"


def _reference(data: bytes, opts: TextOptions) -> list[tuple[int, int, int, int, int]]:
    """What the scanner must find, written the slow, obvious way: (start, end, line, blank, bad)."""

    def lines(pos: int, line: int, force: int) -> list[tuple[int, int, int, int, int]]:
        out = []
        while pos < len(data):
            cut = data.find(b"\n", pos)
            end = len(data) if cut < 0 else cut + 1
            seg = data[pos:end]
            blank = seg.strip(_WS) == b""
            bad = force or (1 if opts.quotes and seg.count(b'"') % 2 else 0)
            if len(seg.rstrip(b"\n")) > opts.max_line_bytes:
                bad, blank = 2, False
            out.append((pos, end, line, int(blank), 0 if blank else bad))
            pos, line = end, line + 1
        return out

    if not (opts.newlines_in_values and opts.quotes):
        return lines(0, 1, 0)
    rows, parity, start, line = [], 0, 0, 1
    for i, b in enumerate(data):
        parity ^= b == 34
        if b == 10 and not parity:
            seg = data[start:i + 1]
            too_long = len(seg) - 1 > opts.max_line_bytes
            rows.append((start, i + 1, line, int(seg.strip(_WS) == b"" and not too_long), 2 if too_long else 0))
            line, start = line + seg.count(b"\n"), i + 1
    if parity:
        return rows + lines(start, line, 3)
    if start < len(data):
        seg = data[start:]
        too_long = len(seg) > opts.max_line_bytes
        rows.append((start, len(data), line, int(seg.strip(_WS) == b"" and not too_long), 2 if too_long else 0))
    return rows


def test_scanner_matches_a_reference_in_any_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    """The planner scans in blocks; rows must be the obvious ones wherever the blocks end."""
    from batch import lines

    rnd = random.Random(7)
    alphabet = [b"a", b"1", b",", b'"', b"\n", b" ", b"\r", b"\t"]
    for _ in range(400):
        data = b"".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 150)))
        opts = TextOptions(newlines_in_values=rnd.random() < 0.5, max_line_bytes=rnd.choice([3, 8, 1000]),
                           quotes=rnd.random() < 0.8)
        want = _reference(data, opts)
        for sub in (1, 5, 1 << 18):
            monkeypatch.setattr(lines, "SUB", sub)
            sc = Scanner(opts)
            parts = [sc.feed(data)]
            if sc.open_quote():
                tail = sc.rescan_tail()
                parts += [tail.feed(data[tail.pos:]), tail.finish()]
            else:
                parts.append(sc.finish())
            got = [tuple(map(int, t)) for p in parts for t in zip(p.start, p.end, p.line, p.blank, p.bad,
                                                                  strict=True)]
            assert got == want, (data, opts, sub)


def test_output_folder_is_never_an_input(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "out").mkdir(parents=True)
    (data / "a.csv").write_text("x\n1\n")
    (data / "out" / "predictions.csv").write_text("file,row,prediction\n")
    assert [f.name for f in discover([str(data)], exclude=data / "out")] == ["a.csv"]
    assert len(discover([str(data)])) == 2  # before: the second run read the first one's output
    with pytest.raises(InputError, match="lies in the output folder"):
        discover([str(data / "out" / "predictions.csv")], exclude=data / "out")


def test_bad_output_paths_are_named(tmp_path: Path) -> None:
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(OutputPathError, match="is a file"):
        check_output_path(str(f))
    with pytest.raises(OutputPathError, match="which is a file"):
        check_output_path(str(f / "sub" / "out"))
    with pytest.raises(OutputPathError, match="local folder"):
        check_output_path("s3://bucket/out")
    with pytest.raises(OutputPathError, match="cannot be written"):
        probe_output(Path("/proc/scorer-test-out"))
    ok = check_output_path(str(tmp_path / "new" / "out"))
    assert not ok.exists()
    probe_output(ok)
    assert ok.is_dir() and not list(ok.iterdir())


def test_plan_rows_match_numpy_line_count(tmp_path: Path) -> None:
    path = tmp_path / "n.csv"
    n = 123_457
    path.write_text("x\n" + "".join(f"{i}\n" for i in range(n)))
    mbs = list(plan(discover([str(path)]), "tabular", "csv", 10_000, None))
    assert sum(m.items for m in mbs) == n and mbs[-1].stop == n
    assert np.all(np.diff([m.byte_start for m in mbs]) > 0)


def test_a_bad_ship_setting_exits_2_before_ray(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    data = tmp_path / "in.csv"
    data.write_text("x\n1\n")
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "scorer.cli", "batch", str(repo / "configs/batch/demo-batch.yaml"),
                           "--input", str(data), "--output", str(tmp_path / "out")], cwd=tmp_path,
                          env={**os.environ, "SCORER_BATCH_SHIP_MODEL": "bogus"}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "scorer batch: SCORER_BATCH_SHIP_MODEL must be auto, always or never, not 'bogus'"


def test_a_batch_endpoint_file_is_accepted_beside_its_deployment(tmp_path: Path) -> None:
    """Azure's `az ml batch-deployment create -f deployment.yml` comes with an endpoint file:
    `scorer batch endpoint.yml deployment.yml` takes both (either order) and checks they match."""
    from batch.cli import _Refused, deployment_file

    root = Path(__file__).resolve().parents[1] / "fixtures/azureml/batch/deploy-models/mnist-classifier"
    ep, dep = str(root / "endpoint.yml"), str(root / "deployment-torch/deployment.yml")
    assert deployment_file([ep, dep]) == dep and deployment_file([dep, ep]) == dep
    assert deployment_file([dep]) == dep
    other = tmp_path / "endpoint.yml"
    other.write_text("$schema: https://azuremlschemas.azureedge.net/latest/batchEndpoint.schema.json\n"
                     "name: another-endpoint\n")
    with pytest.raises(_Refused, match="endpoint_name 'mnist-batch' is not the batch endpoint given beside it"):
        deployment_file([str(other), dep])
    with pytest.raises(_Refused, match="one batch endpoint file and one batch deployment file"):
        deployment_file([dep, dep])
    with pytest.raises(_Refused, match="got 3 files"):
        deployment_file([ep, dep, dep])

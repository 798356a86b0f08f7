"""Planning and input checks: no Ray needed."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from batch import plan as plan_mod
from batch.inputs import InputError, discover, read_schema, tabular_format, unify
from batch.lines import TextOptions
from batch.plan import plan
from batch.worker import ScoringWorker, WorkerConfig


def _csv(path: Path, n: int) -> Path:
    pd.DataFrame({"x": np.arange(n, dtype=float), "s": [f"v{i}" for i in range(n)]}).to_csv(path, index=False)
    return path


def test_plan_is_deterministic_with_stable_ids(tmp_path: Path) -> None:
    files = discover([str(_csv(tmp_path / "a.csv", 25)), str(_csv(tmp_path / "b.csv", 7))])
    a = list(plan(files, "tabular", "csv", 10, None))
    b = list(plan(files, "tabular", "csv", 10, None))
    assert a == b
    assert [m.id for m in a] == ["a.csv:0-10", "a.csv:10-20", "a.csv:20-25", "b.csv:0-7"]
    assert [m.seq for m in a] == [0, 1, 2, 3]


def test_csv_byte_ranges_read_back_exact_rows_even_with_quoted_newlines(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    df = pd.DataFrame({"x": np.arange(50, dtype=float),
                       "s": [f'line "{i}"\nsecond, part' if i % 7 == 0 else f"v{i}" for i in range(50)]})
    df.to_csv(path, index=False)
    files = discover([str(path)])
    text = TextOptions(newlines_in_values=True)  # opt-in: by default a row is one line
    schema = read_schema(files[0], "csv", text)
    mbs = list(plan(files, "tabular", "csv", 8, None, text))
    assert sum(m.items for m in mbs) == 50
    w = ScoringWorker.__new__(ScoringWorker)
    w.cfg = WorkerConfig("tabular", "csv", schema, None, None, text=text)
    w._headers, w._last = {}, None
    got = pa.concat_tables([w._read(m).table for m in mbs]).to_pandas()
    assert got["x"].tolist() == df["x"].tolist()
    assert got["s"].tolist() == df["s"].tolist()


def test_jsonl_and_parquet_plans(tmp_path: Path) -> None:
    df = pd.DataFrame({"x": np.arange(23, dtype=float)})
    df.to_json(tmp_path / "a.jsonl", orient="records", lines=True)
    df.to_parquet(tmp_path / "a.parquet")
    for name in ("a.jsonl", "a.parquet"):
        files = discover([str(tmp_path / name)])
        mbs = list(plan(files, "tabular", files[0].fmt, 5, None))
        assert [(m.start, m.stop) for m in mbs] == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 23)]


def test_size_based_mini_batches(tmp_path: Path) -> None:
    files = discover([str(_csv(tmp_path / "a.csv", 5000))])
    mbs = list(plan(files, "tabular", "csv", None, 16 * 1024))
    assert len(mbs) > 3
    assert all(m.byte_stop - m.byte_start <= 16 * 1024 + 200 for m in mbs)
    assert sum(m.items for m in mbs) == 5000


def test_files_mode_groups_files(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"f{i}.txt").write_text(str(i))
    mbs = list(plan(discover([str(tmp_path)]), "files", None, 2, None))
    assert [len(m.files) for m in mbs] == [2, 2, 1]
    assert mbs[0].id == "f0.txt..f1.txt"


def test_planner_memory_stays_flat_as_input_grows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 10x larger input must not need 10x the driver's memory: the plan streams."""
    monkeypatch.setattr(plan_mod, "CHUNK", 1 << 20)
    small = _csv(tmp_path / "small.csv", 20_000)
    big = _csv(tmp_path / "big.csv", 200_000)
    peaks = []
    for path in (small, big):
        files = discover([str(path)])
        tracemalloc.start()
        n = 0
        for mb in plan(files, "tabular", "csv", 1000, None):
            n += mb.items
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert n == (20_000 if path is small else 200_000)
    assert big.stat().st_size > 9 * small.stat().st_size
    assert peaks[1] < 2 * peaks[0] + (1 << 20), peaks


def test_input_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        discover([str(tmp_path / "nope.csv")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no file"):
        discover([str(tmp_path / "empty")])
    _csv(tmp_path / "a.csv", 3)
    pd.DataFrame({"x": [1.0]}).to_parquet(tmp_path / "b.parquet")
    with pytest.raises(InputError, match="mix formats"):
        tabular_format(discover([str(tmp_path / "a.csv"), str(tmp_path / "b.parquet")]))
    (tmp_path / "z.csv").write_text("")
    with pytest.raises(InputError, match="empty"):
        read_schema(discover([str(tmp_path / "z.csv")])[0], "csv")
    pd.DataFrame({"y": [1.0]}).to_csv(tmp_path / "c.csv", index=False)
    fa, fc = discover([str(tmp_path / "a.csv"), str(tmp_path / "c.csv")])
    with pytest.raises(InputError, match="columns differ"):
        unify([(fa, read_schema(fa, "csv")), (fc, read_schema(fc, "csv"))])

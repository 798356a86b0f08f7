"""The batch benchmark's verdicts on issue 12 goal 4: ratios point the right way, roles follow the
estimator (not the order of --models), and a row count is a count of data lines. No Ray, no models."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("batch_bench", REPO / "benchmarks" / "batch_bench.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["batch_bench"] = module
    spec.loader.exec_module(module)
    return module


def _cell(whole: float, scoring: float, peak: float = 300, beyond: float | None = None) -> dict[str, float]:
    cell = {"whole_s": whole, "scoring_s": scoring, "peak_mb": peak}
    return cell if beyond is None else {**cell, "beyond_ray_init_s": beyond}


def test_goals_ratios_and_verdicts(bench):
    rf = {"ref": "m:/rf", "label": "RandomForestClassifier(100)"}
    lr = {"ref": "m:/lr", "label": "LogisticRegression"}
    medians = {
        ("m:/rf", "parquet", "scorer"): {**_cell(10, 1, 300, beyond=1.2), "private_peak_mb": 190},
        ("m:/rf", "parquet", "loop"): _cell(15, 1.5),
        ("m:/rf", "parquet", "raydata"): _cell(40, 30),
        ("m:/lr", "parquet", "scorer"): _cell(8, 0.5, beyond=2.0),
        ("m:/lr", "parquet", "loop"): _cell(6, 0.6),
    }
    got = {g["goal"]: g for g in bench.goals(medians, rf, lr, ["parquet"], {"peak_mb": 360, "private_peak_mb": 199.5},
                                             4)}
    rfp = "RandomForestClassifier(100) parquet: "
    assert got[rfp + "whole process vs pandas loop"]["value"] == pytest.approx(1.5)
    assert got[rfp + "whole process vs pandas loop"]["met"] is True
    assert got[rfp + "scoring phase vs pandas loop"]["value"] == pytest.approx(1.5)
    assert got[rfp + "scoring phase vs pandas loop"]["met"] is False  # target 1.8
    assert got[rfp + "scorer start-up beyond ray.init"]["met"] is True  # 1.2 s <= 1.5 s
    assert got[rfp + "whole process vs Ray Data"]["value"] == pytest.approx(4.0)
    assert got["LogisticRegression parquet: scoring phase vs pandas loop"]["value"] == pytest.approx(1.2)
    memory = got["driver peak at 4x rows / at 1x (Parquet)"]
    assert memory["value"] == pytest.approx(1.2) and memory["met"] is False
    private = got["driver private (RssAnon) peak at 4x rows / at 1x (Parquet)"]
    assert private["value"] == pytest.approx(1.05) and private["met"] is True


def test_missing_cells_are_not_applicable(bench):
    rf = {"ref": "m:/rf", "label": "RandomForestClassifier(100)"}
    medians = {("m:/rf", "csv", "scorer"): _cell(10, 1, beyond=1.0)}
    got = bench.goals(medians, rf, None, ["csv"], None, 4)
    by_name = {g["goal"]: g for g in got}
    assert by_name["RandomForestClassifier(100) csv: whole process vs pandas loop"]["met"] is None
    assert by_name["LR csv: scoring phase vs pandas loop"]["value"] is None
    assert by_name["RandomForestClassifier(100) csv: scorer start-up beyond ray.init"]["met"] is True


def test_roles_follow_the_estimator(bench):
    lr = {"ref": "models:/x/1", "label": "LogisticRegression"}
    rf = {"ref": "models:/x/2", "label": "RandomForestClassifier(100)"}
    assert bench.roles([lr, rf]) == (rf, lr)
    assert bench.roles([lr]) == (None, lr)  # an LR alone is not reported as the RF
    other = {"ref": "models:/y/1", "label": "xgboost"}
    assert bench.roles([other, lr]) == (other, lr)


def test_count_rows_counts_data_lines(bench, tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("file,row,prediction\n" + "".join(f'"a.parquet",{i},1\n' for i in range(12345)))
    assert bench.count_rows(path) == 12345
    (tmp_path / "empty.csv").write_text("")
    assert bench.count_rows(tmp_path / "empty.csv") == 0

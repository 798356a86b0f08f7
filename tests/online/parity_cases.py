"""The parity battery: requests sent alike to `mlflow models serve` and to scorer's /invocations.

Each case: (model, content type or None, body). MIXED_SPLIT is the mixed model's valid frame."""

from __future__ import annotations

import json
from typing import Any

_COLS = ["x", "name"]
_ROWS = [[0.1, "a"], [0.6, "b"]]


def _j(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _split(rows: list[list[Any]], cols: list[str] = _COLS, **extra: Any) -> bytes:
    return _j({"dataframe_split": {"columns": cols, "data": rows}, **extra})


def _raw_split(data: str) -> bytes:
    return b'{"dataframe_split": {"columns": ["x", "name"], "data": ' + data.encode() + b"}}"


def _demo_split(reverse: bool = False, ints: bool = False) -> bytes:
    """Two rows for the demo LR (30 `double` columns): scorer builds the frame itself and skips
    MLflow's schema enforcement for these, in any column order."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    cols = [str(c).replace(" ", "_") for c in data.feature_names]
    rows = [[round(float(v), 4) for v in row] for row in data.data[:2]]
    if ints:
        rows = [[int(v) for v in row] for row in rows]
    if reverse:
        cols, rows = cols[::-1], [r[::-1] for r in rows]
    return _split(rows, cols)


JSON = "application/json"
CSV = "text/csv"
CASES: dict[str, tuple[str, str | None, bytes]] = {
    "split": ("mixed", JSON, _split(_ROWS)),
    "records": ("mixed", JSON, _j({"dataframe_records": [{"x": 0.1, "name": "a"}]})),
    "instances": ("mixed", JSON, _j({"instances": [{"x": 0.1, "name": "a"}]})),
    "inputs_columns": ("mixed", JSON, _j({"inputs": {"x": [0.1, 0.6], "name": ["a", "b"]}})),
    "csv": ("mixed", CSV, b"x,name\n0.1,a\n0.6,b\n"),
    "csv_charset": ("mixed", "text/csv; charset=utf-8", b"x,name\n0.1,a\n"),
    "json_charset": ("mixed", "application/json; charset=utf-8", _split(_ROWS)),
    "params": ("mixed", JSON, _split(_ROWS, params={"scale": 3.0})),
    "params_int_for_double": ("mixed", JSON, _split(_ROWS, params={"scale": 3})),
    "params_wrong_type": ("mixed", JSON, _split(_ROWS, params={"scale": "big"})),
    "params_unknown_key": ("mixed", JSON, _split(_ROWS, params={"other": 1})),
    "params_not_object": ("mixed", JSON, _split(_ROWS, params=[1, 2])),
    "params_null": ("mixed", JSON, _split(_ROWS, params=None)),
    "missing_column": ("mixed", JSON, _split([[0.1]], ["x"])),
    "extra_column": ("mixed", JSON, _split([[0.1, "a", 5]], ["x", "name", "extra"])),
    "wrong_type_string_for_double": ("mixed", JSON, _split([["abc", "a"]])),
    "int_for_double": ("mixed", JSON, _split([[1, "a"]])),
    "bool_for_double": ("mixed", JSON, _split([[True, "a"]])),
    "number_for_string": ("mixed", JSON, _split([[0.1, 5]])),
    "nan": ("mixed", JSON, _raw_split('[[NaN, "a"]]')),
    "null": ("mixed", JSON, _split([[None, "a"]])),
    "infinity": ("mixed", JSON, _raw_split('[[Infinity, "a"]]')),
    "empty_rows": ("mixed", JSON, _split([])),
    "empty_records": ("mixed", JSON, _j({"dataframe_records": []})),
    "empty_body": ("mixed", JSON, b""),
    "bad_json": ("mixed", JSON, b'{"dataframe_split": '),
    "top_level_list": ("mixed", JSON, b"[1, 2]"),
    "no_format_key": ("mixed", JSON, _j({"data": [[1]]})),
    "two_format_keys": ("mixed", JSON, _j({"inputs": {"x": [0.1]}, "instances": [{"x": 0.1}]})),
    "csv_missing_column": ("mixed", CSV, b"x\n0.1\n"),
    "csv_not_utf8": ("mixed", CSV, b"x,name\n0.1,\xff\xfe\n"),
    "csv_empty": ("mixed", CSV, b""),
    "text_plain": ("mixed", "text/plain", b"hello"),
    "no_content_type": ("mixed", None, _split(_ROWS)),
    "charset_latin1": ("mixed", "application/json; charset=latin-1", _split(_ROWS)),
    "unknown_ct_param": ("mixed", "application/json; format=pandas-split", _split(_ROWS)),
    "model_raises": ("raiser", JSON, _split([[1.0]], ["x"])),
    "model_raises_csv": ("raiser", CSV, b"x\n1.0\n"),
    "demo_split": ("blue", JSON, _demo_split()),
    "demo_split_reordered_columns": ("blue", JSON, _demo_split(reverse=True)),
    "demo_split_ints_for_doubles": ("blue", JSON, _demo_split(ints=True)),
    "demo_string_in_numeric": ("blue", JSON, b'{"dataframe_split": {"columns": ["mean_radius"], "data": [["x"]]}}'),
}

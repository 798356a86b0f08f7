"""Request bodies for the demo models (breast-cancer features) and the mixed-type model."""

from __future__ import annotations

import json
from functools import cache
from typing import Any


@cache
def demo_frame() -> Any:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    return frame.drop(columns=["target"])


def demo_rows(n: int = 3, start: int = 0) -> Any:
    return demo_frame().iloc[start:start + n]


def split_body(n: int = 3, start: int = 0) -> dict[str, Any]:
    df = demo_rows(n, start)
    return {"dataframe_split": json.loads(df.to_json(orient="split", index=False))}


def bodies(df: Any) -> dict[str, tuple[str, bytes]]:
    """The same frame in every format: name -> (content type, body)."""
    split = json.loads(df.to_json(orient="split", index=False))
    records = json.loads(df.to_json(orient="records"))
    columns = {c: json.loads(df[c].to_json(orient="values")) for c in df.columns}
    return {
        "dataframe_split": ("application/json", json.dumps({"dataframe_split": split}).encode()),
        "dataframe_records": ("application/json", json.dumps({"dataframe_records": records}).encode()),
        "instances": ("application/json", json.dumps({"instances": records}).encode()),
        "inputs": ("application/json", json.dumps({"inputs": columns}).encode()),
        "csv": ("text/csv", df.to_csv(index=False).encode()),
        "csv_charset": ("text/csv; charset=utf-8", df.to_csv(index=False).encode()),
    }

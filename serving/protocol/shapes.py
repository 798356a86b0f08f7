"""Shape checks of an MLflow scoring payload before MLflow's parser sees it.

MLflow's parser and pandas raise TypeError, OverflowError or RecursionError on some malformed
bodies (a column name that is a list, a cell nested 900 deep), and pandas pads ragged rows with
NaN that the model then fails on (a 424 for the client's mistake). Each check here answers 400
naming the field, the value (clipped) and what was expected. Lists and objects in a cell are
refused only where the signature says the column holds scalars; without a signature they pass.
"""

from __future__ import annotations

from typing import Any

from scorer.models.loading import required_columns
from serving.errors import ScoringError
from serving.protocol.jsonbody import clip_value

_NESTED = (list, dict)


def _kind(value: Any) -> str:
    return {list: "a list", dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def _bad(field: str, value: Any, expected: str) -> ScoringError:
    return ScoringError(400, f"{field}: got {_kind(value)} {clip_value(value)}; expected {expected}")


def scalar_columns(schema: Any) -> dict[str, str]:
    """Signature columns whose type is a scalar (double, string, ...): name -> type name."""
    try:
        from mlflow.types import ColSpec, DataType

        if schema is None or not schema.has_input_names() or schema.is_tensor_spec():
            return {}
        return {str(c.name): c.type.name for c in schema.inputs if isinstance(c, ColSpec)
                and isinstance(c.type, DataType)}
    except Exception:
        return {}


def _input_names(schema: Any) -> list[str]:
    try:
        return [str(n) for n in schema.input_names()] if schema is not None and schema.has_input_names() else []
    except Exception:
        return []


def check_payload(fmt: str, payload: Any, schema: Any) -> None:
    """400 for a payload of format `fmt` that MLflow would choke on or pad; silent when it is fine."""
    if fmt == "dataframe_split":
        _split(payload, schema)
    elif fmt == "dataframe_records":
        _records(payload, schema)


def _names(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise _bad(field, value, "a list of column names (strings)")
    for i, name in enumerate(value):
        if not isinstance(name, (str, int)) or isinstance(name, bool):
            raise _bad(f"{field}[{i}]", name, "a column name (a string)")
    return value


def _split(payload: Any, schema: Any) -> None:
    if not isinstance(payload, dict):
        raise _bad("dataframe_split", payload, "an object with columns and data")
    data = payload.get("data")
    if not isinstance(data, list):
        raise _bad("dataframe_split.data", data, "a list of rows")
    columns = _names(payload["columns"], "dataframe_split.columns") if "columns" in payload else None
    width = len(columns) if columns is not None else None
    typed = scalar_columns(schema)
    names = [str(c) for c in columns] if columns is not None else _input_names(schema)
    for i, row in enumerate(data):
        if not isinstance(row, list):
            if isinstance(row, dict):
                raise _bad(f"dataframe_split.data[{i}]", row, "a row (a list of values)")
            continue
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise ScoringError(400, f"dataframe_split.data[{i}]: row has {len(row)} values, expected "
                               f"{width} (one per column)")
        if typed:
            kinds = set(map(type, row))
            if list in kinds or dict in kinds:
                for j, cell in enumerate(row):
                    name = names[j] if j < len(names) else None
                    if isinstance(cell, _NESTED) and name in typed:
                        raise _bad(f"dataframe_split.data[{i}][{j}] (column {name!r})", cell,
                                   f"a {typed[name]} (the signature's type)")


def _records(payload: Any, schema: Any) -> None:
    if not isinstance(payload, list):
        raise _bad("dataframe_records", payload, "a list of records")
    required = required_columns(schema)
    typed = scalar_columns(schema)
    for i, rec in enumerate(payload):
        if not isinstance(rec, dict):
            continue  # MLflow's parser names the problem
        missing = [c for c in required if c not in rec]
        if missing:
            raise ScoringError(400, f"dataframe_records[{i}]: missing column{'s' if len(missing) > 1 else ''} "
                               f"{', '.join(repr(c) for c in missing[:10])}")
        if typed:
            kinds = set(map(type, rec.values()))
            if list in kinds or dict in kinds:
                for name, cell in rec.items():
                    if isinstance(cell, _NESTED) and name in typed:
                        raise _bad(f"dataframe_records[{i}].{name}", cell, f"a {typed[name]} (the signature's type)")

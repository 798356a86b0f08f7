"""The V2 translation's fast recogniser (`_plain`) against its general path: on any document the
fast one accepts, both give the same MLflow table; whatever a client sends, the translation answers
a body or a 400, nothing else; and the shapes clients send most often do take the fast path."""

from __future__ import annotations

import os
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.errors import ScoringError
from serving.protocol import v2

EXAMPLES = int(os.environ.get("SCORER_FUZZ_EXAMPLES", "300"))
SIG = v2.Signature(inputs=[("a", "FP64"), ("b", "FP64"), ("c", "FP64")])
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)

scalars = st.one_of(st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                    st.text(max_size=3), st.none())
numbers = st.one_of(st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=False))


@st.composite
def requests(draw: Any) -> dict[str, Any]:
    """A valid request (per-column tensors or one 2-D tensor), then, half the time, one thing wrong."""
    rows = draw(st.integers(0, 4))
    if draw(st.integers(0, 2)):
        names = draw(st.permutations("abc"))[:draw(st.integers(1, 3))]
        inputs = [{"name": n, "shape": draw(st.sampled_from([[rows], [rows, 1]])),
                   "datatype": draw(st.sampled_from(["FP64", "FP32", "INT64"])),
                   "data": draw(st.lists(numbers, min_size=rows, max_size=rows))} for n in names]
    else:
        width = draw(st.sampled_from([3, 3, 1, 4]))
        inputs = [{"name": "x", "shape": [rows, width], "datatype": "FP64",
                   "data": draw(st.lists(numbers, min_size=rows * width, max_size=rows * width))}]
    for t in inputs:
        if draw(st.integers(0, 4)) == 0:
            t["parameters"] = draw(st.dictionaries(st.sampled_from(["content_type", "binary_data_size", "k"]),
                                                   scalars | st.lists(scalars, max_size=2), max_size=2))
    doc: dict[str, Any] = {"inputs": inputs}
    if draw(st.booleans()):
        doc["id"] = draw(st.text(max_size=5) | st.integers(-10, 10))
    if draw(st.integers(0, 6)) == 0:
        doc["parameters"] = draw(st.dictionaries(st.text(max_size=3), scalars | st.lists(scalars), max_size=2))
    if draw(st.booleans()):  # one thing wrong
        t = draw(st.sampled_from(inputs))
        key = draw(st.sampled_from(["name", "shape", "datatype", "data", "data", "extra", "outputs"]))
        if key == "outputs":
            doc["outputs"] = [{"name": "predictions"}]
        elif key == "data" and t["data"] and draw(st.booleans()):
            t["data"][draw(st.integers(0, len(t["data"]) - 1))] = draw(scalars | st.just([1.0]))
        else:
            wrong = {"name": ["x", "", "a", "b", 5, None],
                     "shape": [[rows + 1], [rows, 2], [rows, 3], [rows, 1, 1], [-1], [], "3", [1.5]],
                     "datatype": ["BOOL", "BYTES", "fp64", 5, None, ["FP64"]],
                     "data": [[], [[1.0]] * rows, None, "1", [1.0] * (rows + 1), [True] * rows],
                     "extra": [1, "x", [1], {"k": 1}]}[key]
            t[key] = draw(st.sampled_from(wrong))
    return doc


def general(doc: Any) -> tuple[list[str], list[list[Any]], str | None]:
    return v2._general(doc, b"", SIG)


@FUZZ
@given(requests())
def test_fast_path_agrees_with_the_general_path(doc: dict[str, Any]) -> None:
    fast = v2._plain(doc, SIG)
    columns = v2._plain_columns(doc["inputs"], SIG.column_set) if "id" not in doc else None
    try:
        slow = general(doc)
    except ScoringError as err:
        assert fast is None, f"the fast path accepted what the general path refuses: {err.message}"
        assert columns is None, f"the column-wise check accepted what the general path refuses: {err.message}"
        return
    if fast is not None:
        assert fast == slow
    if columns is not None:
        assert (*columns, None) == slow


@FUZZ
@given(requests())
def test_translation_answers_a_body_or_a_400(doc: dict[str, Any]) -> None:
    try:
        body, rid = v2.to_dataframe_split(orjson.dumps(doc), SIG)
    except ScoringError as err:
        assert err.status == 400
        return
    split = orjson.loads(body)["dataframe_split"]
    assert set(split) == {"columns", "data"}
    assert rid == doc.get("id") if isinstance(doc.get("id"), str) else rid is None


@pytest.mark.parametrize("doc", [
    {"inputs": [{"name": n, "shape": [1], "datatype": "FP64", "data": [float(i)]} for i, n in enumerate("abc")]},
    {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP64", "data": [1, 2, 3, 4, 5, 6]}], "id": "r1"},
    {"inputs": [{"name": n, "shape": [2, 1], "datatype": "FP32", "data": [1.5, 2],
                 "parameters": {"content_type": "np"}} for n in "cba"]},
], ids=["per-column", "one-2d", "with-parameters"])
def test_common_requests_take_the_fast_path(doc: dict[str, Any]) -> None:
    fast = v2._plain(doc, SIG)
    assert fast is not None
    assert fast == general(doc)


def test_one_tensor_per_column_is_checked_column_wise() -> None:
    """The commonest request (what tritonclient and MLServer's codecs send for a table) is
    recognised a field at a time across its tensors, without the tensor-at-a-time loop."""
    doc = {"inputs": [{"name": n, "shape": [2], "datatype": "FP64", "data": [float(i), 1]}
                      for i, n in enumerate("cab")]}
    assert v2._plain_columns(doc["inputs"], SIG.column_set) == (["c", "a", "b"], [[0.0, 1.0, 2.0], [1, 1, 1]])


def _cols(*tensors: tuple[str, list[int], list[Any]], datatype: Any = "FP64") -> dict[str, Any]:
    return {"inputs": [{"name": n, "shape": sh, "datatype": datatype, "data": d} for n, sh, d in tensors]}


@pytest.mark.parametrize("doc", [
    _cols(("a", [1], [1.0]), ("x", [1], [2.0])),  # not a signature column
    _cols(("a", [1], [1.0]), ("a", [1], [2.0])),  # the same name twice
    _cols(("a", [1], [1.0]), ("b", [2], [2.0, 3.0])),  # rows differ
    _cols(("a", [1, 2], [1.0, 2.0]), ("b", [1], [2.0])),  # [n, 2] among several inputs
    _cols(("x", [1, 2], [1.0, 2.0])),  # 2 columns, the signature has 3
    _cols(("a", [2], [1.0])),  # shape needs 2 values
    _cols(("a", [1], [True])),  # a bool is no number
    _cols(("a", [1], ["1"])),
    _cols(("a", [1], [[1.0]])),  # nested data: the general path flattens and checks it
    _cols(("a", [1], [1.0]), datatype="BOOL"),
    _cols(("a", [1], [1.0]), datatype=["FP64"]),
    _cols(("a", [-1], [])),
    _cols(("a", [], [1.0])),
    _cols(("a", [True], [1.0])),  # true is no dimension
    {**_cols(("a", [1], [1.0])), "id": 5},  # kept out of the answer by the general path
    {"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0], "parameters": {"binary_data_size": 8}}]},
    {"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0], "more": 1}]},
], ids=["stray-name", "twice", "rows", "wide-among-several", "width", "count", "bool", "string", "nested",
        "datatype", "datatype-list", "negative-dim", "no-dims", "bool-dim", "int-id", "binary-size", "extra-key"])
def test_the_fast_path_leaves_every_other_request_to_the_general_path(doc: dict[str, Any]) -> None:
    """Each check of the general path, one at a time: the fast path declines, so the client gets
    the general path's answer (its 400 naming the field, or its table)."""
    assert v2._plain(doc, SIG) is None


def test_deep_nesting_outside_the_plain_shape_is_still_a_400(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fields the fast path does not read are walked as before: SCORER_MAX_JSON_DEPTH still holds."""
    monkeypatch.delenv("SCORER_MAX_JSON_DEPTH", raising=False)
    deep: Any = 1
    for _ in range(80):
        deep = [deep]
    doc = {"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0]}], "parameters": {"k": deep}}
    with pytest.raises(ScoringError, match="nested too deeply") as err:
        v2.to_dataframe_split(orjson.dumps(doc), SIG)
    assert err.value.status == 400

"""Property-based guard on the YAML reader: whatever bytes or structures a file holds, `scorer
validate` answers 0 or 2, never a traceback, in bounded time.

CI runs a short pass; `make soak` (marker `soak`) runs many more examples."""

from __future__ import annotations

import io
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scorer.validate import run_validate

SHORT, LONG = 120, 5000
TOKENS = ["name: ep", "deployments:", "blue:", "model: models:/m/1", "traffic:", "{", "}", "[", "]", ",", ":",
          "- ", "\n", "  ", "\t", "&a ", "*a", "&b ", "*b", "<<: ", "!!binary ", "!!python/object ", "!!int ",
          "!!timestamp ", "? ", "'", '"', "#", "---\n", "...\n", "|\n", ">\n", "%YAML 1.1\n", "100", "-1", "1e999",
          "2001-02-30", "~", "null", "yes", "\\x", "\u00e9", "\ufeff", "\x00", "instance_count: ", "99999999999"]


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="scorer-fuzz-") as d:
        yield Path(d)


def validate_bytes(workdir: Path, content: bytes) -> None:
    """The property: exit 0 or 2, nothing raised, well under the time bound."""
    path = workdir / "fuzz.yaml"
    path.write_bytes(content)
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    code = run_validate([str(path)], out, err, offline=True)  # the reader is under test, not the registry
    assert code in (0, 2)
    assert time.perf_counter() - start < 5
    assert "Traceback" not in out.getvalue() + err.getvalue()
    if code == 2:
        assert str(path) in err.getvalue()


def fuzz(examples: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return settings(max_examples=examples, deadline=None, database=None, derandomize=examples == SHORT,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
structures = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                          | st.dictionaries(st.text(max_size=10), inner, max_size=5), max_leaves=60)
endpoints = st.fixed_dictionaries({"name": st.text(max_size=8) | st.just("ep"), "deployments": st.dictionaries(
    st.sampled_from(["blue", "green", ""]), st.fixed_dictionaries({"model": st.just("models:/m/1") | scalars},
                                                                   optional={"instance_count": scalars,
                                                                             "scale_settings": structures}),
    max_size=2)}, optional={"traffic": structures, "auth_mode": scalars})


def _bytes(workdir: Path, data: bytes) -> None:
    validate_bytes(workdir, data)


def _tokens(workdir: Path, parts: list[str]) -> None:
    validate_bytes(workdir, "".join(parts).encode("utf-8", "surrogatepass"))


def _structures(workdir: Path, doc: Any, depth: int) -> None:
    if depth == 0:
        text = yaml.safe_dump(doc, allow_unicode=True)
    else:  # `depth` lists around it, written by hand: PyYAML's own dumper recurses
        inner = yaml.safe_dump([doc], default_flow_style=True, width=10**9, allow_unicode=True).strip()
        text = "[" * (depth - 1) + inner + "]" * (depth - 1) + "\n"
    validate_bytes(workdir, text.encode("utf-8", "surrogatepass"))


@fuzz(SHORT)
@given(data=st.binary(max_size=2000))
def test_random_bytes(workdir, data):
    _bytes(workdir, data)


@fuzz(SHORT)
@given(parts=st.lists(st.sampled_from(TOKENS), max_size=120))
def test_yaml_token_soup(workdir, parts):
    _tokens(workdir, parts)


@fuzz(SHORT)
@given(doc=structures | endpoints, depth=st.integers(0, 1500))
def test_random_nested_structures(workdir, doc, depth):
    _structures(workdir, doc, depth)


@pytest.mark.soak
@fuzz(LONG)
@given(data=st.binary(max_size=20000))
def test_random_bytes_soak(workdir, data):
    _bytes(workdir, data)


@pytest.mark.soak
@fuzz(LONG)
@given(parts=st.lists(st.sampled_from(TOKENS), max_size=600))
def test_yaml_token_soup_soak(workdir, parts):
    _tokens(workdir, parts)


@pytest.mark.soak
@fuzz(LONG)
@given(doc=structures | endpoints, depth=st.integers(0, 5000))
def test_random_nested_structures_soak(workdir, doc, depth):
    _structures(workdir, doc, depth)


"""The project's own files carry `$schema: ../schema/*.json` for editors: `validate`, `serve` and
`batch` read it to tell what the file is and must not warn about it on every command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scorer.spec.loader import load_any, load_batch, load_endpoint

REPO = Path(__file__).resolve().parents[2]
OWN = {"configs/endpoints/demo.yaml": "endpoint", "configs/batch/demo-batch.yaml": "batch_deployment"}


def _mentions_schema(warnings: list) -> list[str]:  # type: ignore[type-arg]
    return [str(w) for w in warnings if "$schema" in str(w)]


@pytest.mark.parametrize("path, kind", OWN.items())
def test_own_schema_names_the_kind_without_a_warning(path: str, kind: str) -> None:
    assert "$schema: ../schema/" in (REPO / path).read_text()
    loaded = load_any(REPO / path)
    assert loaded.kind == kind
    assert _mentions_schema(loaded.warnings) == []


def test_serve_and_batch_loaders_do_not_warn_about_it() -> None:
    endpoint = load_endpoint(REPO / "configs/endpoints/demo.yaml", check_paths=True)
    batch = load_batch(REPO / "configs/batch/demo-batch.yaml", check_paths=True)
    assert _mentions_schema(endpoint.warnings) == [] and _mentions_schema(batch.warnings) == []


def test_validate_prints_no_schema_warning() -> None:
    out = subprocess.run([sys.executable, "-m", "scorer.cli", "validate", "--offline", *OWN], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "$schema" not in out.stdout + out.stderr

"""A deployment's `replica_handle: python:MODULE:CALLABLE`: a third party's handle serves for real
(tests/online/assets/handles/recording_handle.py, the example in docs/serving.md), and one that
cannot be loaded stops `scorer serve` with exit code 2 and one line naming the field and value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.online.conftest import ADMIN_KEY, API_KEYS, ASSETS, REPO, admin, start_server, stop_server

HANDLES = ASSETS / "handles"
DOC_SECTION = "## Replicas elsewhere: your own ReplicaHandle"


def _pythonpath() -> str:
    return os.pathsep.join(p for p in (str(HANDLES), os.environ.get("PYTHONPATH", "")) if p)


def _endpoint(path: Path, model: Path, handle: str, record: Path) -> Path:
    path.write_text(f"""
name: plugged
auth_mode: key
deployments:
  mixed:
    model: {model}
    replica_handle: {handle}
    environment_variables: {{RECORD_FILE: {record}}}
""")
    return path


def test_third_party_handle_starts_serves_and_closes_the_replica(work_dir: Path,
                                                                test_models: dict[str, Path]) -> None:
    folder = work_dir / "plugged"
    folder.mkdir()
    record = folder / "record.txt"
    endpoint = _endpoint(folder / "plugged.yaml", test_models["mixed"], "python:recording_handle:factory", record)
    srv = start_server(endpoint, folder, {"PYTHONPATH": _pythonpath(), "SCORER_API_KEY": API_KEYS[0],
                                          "SCORER_ADMIN_KEY": ADMIN_KEY})
    try:
        body = {"dataframe_split": {"columns": ["x", "name"], "data": [[0.25, "a"], [0.75, "b"]]}}
        r = httpx.post(f"{srv.url}/score", json=body, headers={"Authorization": f"Bearer {API_KEYS[0]}"},
                       timeout=30)
        assert r.status_code == 200, r.text
        predictions = r.json()["predictions"]
        assert [p["label"] for p in predictions] == ["a-lo", "b-hi"]
        assert set(predictions[0]) == {"label", "score", "count", "flag"}
        assert record.read_text().splitlines() == ["start 0"], "the deployment's factory made the replica"
        (replica,) = admin(srv)["deployments"]["mixed"]["replicas"]
        assert replica["where"] == "recorded" and replica["ready"] is True, "the handle's Started is shown"
    finally:
        stop_server(srv)
    assert srv.proc.returncode == 0, srv.logs()
    assert record.read_text().splitlines() == ["start 0", "close 0"], "closed through the handle on shutdown"


@pytest.mark.parametrize(("handle", "problem"), [
    ("python:no_such_handles_module:factory", "cannot import no_such_handles_module"),
    ("python:recording_handle:no_such_factory", "module recording_handle has no no_such_factory"),
])
def test_a_handle_that_cannot_be_loaded_stops_serve_with_one_line(tmp_path: Path, test_models: dict[str, Path],
                                                                   handle: str, problem: str) -> None:
    endpoint = _endpoint(tmp_path / "bad.yaml", test_models["mixed"], handle, tmp_path / "record.txt")
    out = subprocess.run([sys.executable, "-m", "scorer.cli", "serve", str(endpoint), "--port", "1"],
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": _pythonpath(), "SCORER_API_KEY": API_KEYS[0]},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("scorer serve:")]
    assert len(lines) == 1 and lines[0].startswith(f"scorer serve: replica_handle {handle!r}: {problem}"), out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "record.txt").exists(), "no replica was started"


def test_the_docs_example_is_the_tested_module() -> None:
    doc = (REPO / "docs" / "serving.md").read_text()
    section = doc.split(DOC_SECTION, 1)[1].split("\n## ", 1)[0]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert example.strip() in (HANDLES / "recording_handle.py").read_text()

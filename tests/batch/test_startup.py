"""Start-up overlap (batch/startup.py): the job is prepared while Ray starts and the actors warm;
what fails still fails the way it did, with exit 2 and one clear message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.batch.conftest import REPO, run_cli, write_x, write_yaml

FAILING_INIT = "import os\ndef init():\n    raise RuntimeError(os.environ.get('WHY', 'no reason given'))\n" \
               "def run(mini_batch):\n    return list(mini_batch)\n"


def _failing_script_job(tmp_path: Path, env: dict[str, str]) -> tuple[Path, Path]:
    code = tmp_path / "src"
    code.mkdir()
    (code / "score.py").write_text(FAILING_INIT)
    data = tmp_path / "docs"
    data.mkdir()
    for i in range(4):
        (data / f"doc{i}.txt").write_text(f"text{i}")
    dep = write_yaml(tmp_path / "dep.yaml", code_configuration={"code": "./src", "scoring_script": "score.py"},
                     mini_batch_size=2, environment_variables=env)
    return dep, data


def test_a_script_that_fails_to_load_exits_2_on_a_shared_ray(ray_session, tmp_path, capsys) -> None:
    dep, data = _failing_script_job(tmp_path, {"WHY": "no weights here"})
    out = tmp_path / "out"
    assert run_cli("batch", str(dep), "--input", str(data), "--output", str(out)) == 2
    err = capsys.readouterr().err
    assert "the model or scoring script failed to load: ScriptError: " in err
    assert "init() raised RuntimeError: no weights here" in err
    assert not (out / "job_summary.json").exists() and not (out / ".scorer-batch").exists()


def test_a_script_that_fails_to_load_exits_2_while_its_own_ray_starts(tmp_path) -> None:
    """A job that starts its own Ray launches the actors before the model is handed to them, in the
    worker processes Ray started with it (no environment_variables: no runtime_env of their own)."""
    dep, data = _failing_script_job(tmp_path, {})
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "scorer.cli", "batch", str(dep), "--input", str(data),
                           "--output", str(out)], cwd=str(REPO), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "the model or scoring script failed to load: ScriptError: " in done.stderr
    assert "init() raised RuntimeError: no reason given" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (out / "job_summary.json").exists() and not (out / ".scorer-batch").exists()


@pytest.fixture
def ray_starts(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Every start_ray call of the job (passed through to the session's Ray)."""
    import batch.pool

    calls: list[str | None] = []
    real = batch.pool.start_ray

    def recording(address: str | None, debug: bool) -> tuple[bool, str]:
        calls.append(address)
        return real(address, debug)

    monkeypatch.setattr(batch.pool, "start_ray", recording)
    return calls


def test_cheap_mistakes_exit_2_before_ray_starts(ray_session, models, tmp_path, capsys, ray_starts) -> None:
    src = write_x(tmp_path / "x.csv", np.arange(10))
    dep = write_yaml(tmp_path / "dep.yaml", model=models["behaviour"])
    out = tmp_path / "out"
    assert run_cli("batch", str(dep), "--input", str(tmp_path / "missing.csv"), "--output", str(out)) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert ray_starts == []
    (out / ".scorer-batch").mkdir(parents=True)
    assert run_cli("batch", str(dep), "--input", str(src), "--output", str(out)) == 2
    assert "holds a previous job" in capsys.readouterr().err
    assert ray_starts == []
    assert run_cli("batch", str(dep), "--input", str(src), "--output", str(out), "--overwrite") == 0
    assert ray_starts == [None]

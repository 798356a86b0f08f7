"""`scorer validate` as a user runs it: a subprocess, exit codes, and what it prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from scorer.spec import schema

REPO = Path(__file__).resolve().parents[2]


def scorer(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scorer.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env={**os.environ})


def test_validate_shipped_configs_exit_zero_with_summary():
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "configs").rglob("*.yaml"))
    out = scorer("validate", "--offline", *files)  # the seeds name models no registry here holds
    assert out.returncode == 0, out.stderr
    assert "configs/endpoints/demo.yaml: ok, endpoint" in out.stdout
    assert "traffic: blue 90%, green 10%" in out.stdout
    assert "configs/seeds/batch-deployment.yaml: ok, batch deployment" in out.stdout
    assert "workers: 10 instance(s) x 1" in out.stdout
    assert "runs-on: ignored" in out.stdout and "deployments.blue.sku: ignored" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_validate_bad_file_exit_two_every_problem_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: ep\ntraffic: {blue: 80}\ndeployments:\n  blue:\n    model: models:/m/1\n"
                   "    request_settings: {request_timeout_ms: -5}\n    instance_cont: 2\n")
    good = REPO / "configs" / "endpoints" / "demo.yaml"
    out = scorer("validate", "--offline", str(bad), str(good))
    assert out.returncode == 2
    err = out.stderr
    assert f"{bad}: invalid (3 problems)" in err
    assert f"{bad}:6: error: deployments.blue.request_settings.request_timeout_ms: got -5" in err
    assert f"{bad}:7: error: deployments.blue.instance_cont: unknown field (did you mean 'instance_count'?)" in err
    assert f"{bad}:2: error: traffic: got {{'blue': 80}} (sum 80)" in err
    assert "demo.yaml: ok" in out.stdout  # the good file is still checked
    assert "Traceback" not in err


def test_validate_unreadable_and_broken_yaml(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [\n")
    out = scorer("validate", str(broken), str(tmp_path / "missing.yaml"))
    assert out.returncode == 2
    assert "not valid YAML" in out.stderr and "cannot read file" in out.stderr
    assert "Traceback" not in out.stderr


def test_json_schema_is_in_sync_with_the_models():
    """Regenerate with `python -m scorer.spec.schema` when this fails."""
    for name, text in schema.render().items():
        committed = (REPO / "configs" / "schema" / name).read_text()
        assert committed == text, f"configs/schema/{name} is stale: run python -m scorer.spec.schema"


def test_json_schema_accepts_the_seed_and_demo_files():
    import jsonschema
    import yaml

    checks = {
        "endpoint.schema.json": ["configs/endpoints/demo.yaml", "configs/seeds/realtime-endpoint.yaml"],
        "batch.schema.json": ["configs/batch/demo-batch.yaml", "configs/seeds/batch-deployment.yaml"],
    }
    for name, files in checks.items():
        doc = json.loads((REPO / "configs" / "schema" / name).read_text())
        for f in files:
            jsonschema.validate(yaml.safe_load((REPO / f).read_text()), doc)
    endpoint = json.loads((REPO / "configs" / "schema" / "endpoint.schema.json").read_text())
    bad = {"name": "x", "deployments": {"b": {"model": "m", "request_settings": {"request_timout_ms": 1}}}}
    try:
        jsonschema.validate(bad, endpoint)
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("schema accepted an unknown field")
    scale = endpoint["$defs"]["ScaleSettings"]["properties"]
    assert "scale_down_delay" in scale and "hook" in scale
    hooked = {"name": "x", "deployments": {"b": {"model": "m", "scale_settings": {"hook": "ftp://nope"}}}}
    try:
        jsonschema.validate(hooked, endpoint)
    except jsonschema.ValidationError as exc:
        assert "ftp://nope" in str(exc.message)
    else:
        raise AssertionError("schema accepted a malformed hook")
    hooked["deployments"]["b"]["scale_settings"]["hook"] = "webhook:http://127.0.0.1:9/scale"
    jsonschema.validate(hooked, endpoint)


def test_dockerfile_copies_files_that_exist():
    lines = (REPO / "Dockerfile").read_text().splitlines()
    copied = [part for line in lines if line.startswith("COPY") and "--from" not in line
              for part in line.split()[1:-1] if not part.startswith("--")]
    assert copied, "Dockerfile copies nothing"
    for part in copied:
        assert (REPO / part).exists(), f"Dockerfile copies {part}, which is not in the repository"
    text = "\n".join(lines)
    assert "USER " in text and "HEALTHCHECK" in text and "/ping" in text
    assert "constraints.txt" in text and "examples/training/train.py" in text


def test_validate_imports_a_replica_handle_factory(tmp_path):
    """A `replica_handle` that cannot be imported fails validate (not only serve), naming the field."""
    ep = tmp_path / "ep.yaml"
    for value, code, words in [("python:no_such_module_here:factory", 2, "cannot import no_such_module_here"),
                               ("python:json:no_such_name", 2, "module json has no callable no_such_name"),
                               ("python:json:loads", 0, "replicas run through: python:json:loads")]:
        ep.write_text(f"name: ep\ntraffic: {{a: 100}}\ndeployments:\n  a:\n    model: models:/m/1\n"
                      f"    replica_handle: {value}\n")
        out = scorer("validate", "--offline", str(ep))
        assert out.returncode == code, out.stdout + out.stderr
        assert words in out.stdout + out.stderr
        if code:
            assert f"deployments.a.replica_handle '{value}'" in out.stderr
        assert "Traceback" not in out.stdout + out.stderr

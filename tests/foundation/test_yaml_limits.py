"""The YAML reader's bounds: hostile or broken files end in exit 2 and one line naming the file,
quickly and in flat memory; duplicate keys and absurd replica counts are errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml

from scorer.spec import Endpoint, SpecError, load_any, yamlfile
from scorer.spec.limits import local_replica_problem
from scorer.spec.yamlfile import read_yaml

REPO = Path(__file__).resolve().parents[2]

# 9 levels of 9 aliases: 445 bytes that stand for 9**9 (387 million) strings.
LAUGHS = 'lol: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
DEEP = "name: ep\ndeployments: " + "[" * 5000 + "]" * 5000 + "\n"
MINIMAL = "name: ep\ndeployments:\n  blue:\n    model: models:/m/1\n"


def scorer(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scorer.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def write(tmp_path: Path, text: str | bytes, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text).lstrip())
    return path


def refusal(path: Path) -> str:
    with pytest.raises(SpecError) as info:
        read_yaml(path)
    assert len(info.value.problems) >= 1
    return str(info.value)


def test_billion_laughs_is_refused_at_once_in_flat_memory(tmp_path):
    path = write(tmp_path, LAUGHS)
    assert len(path.read_bytes()) < 500
    tracemalloc.start()
    start = time.perf_counter()
    try:
        message = refusal(path)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 5, elapsed  # about 10 ms; generous for a loaded machine
    assert peak < 20 * 1024 * 1024, peak
    assert "more than 10000 YAML nodes" in message and str(path) in message


@pytest.mark.parametrize("name, content, fragment", [
    ("laughs.yaml", LAUGHS, "YAML nodes"),
    ("deep.yaml", DEEP, "nested deeper than 100 levels"),
    ("latin1.yaml", b"name: caf\xe9\n", "not UTF-8 text: byte 0xe9 at offset 9"),
    ("binary.yaml", bytes(range(256)) * 4, "not UTF-8 text"),
    ("nul.yaml", b"name: ep\x00\n", "not allowed"),
    ("dup.yaml", "name: ep\ntraffic: {blue: 100}\ntraffic: {blue: 0}\ndeployments: {blue: {model: models:/m/1}}\n",
     "traffic: duplicate key at lines 2 and 3"),
])
def test_validate_refuses_with_one_line_naming_the_file(tmp_path, name, content, fragment):
    path = write(tmp_path, content, name)
    out = scorer("validate", str(path))
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(str(path)) and fragment in lines[0], lines[0]


@pytest.mark.parametrize("command", [["serve"], ["batch", "--input", "x.csv", "--output", "out"]])
def test_serve_and_batch_refuse_hostile_yaml_with_exit_two(tmp_path, command):
    path = write(tmp_path, LAUGHS)
    start = time.monotonic()
    out = scorer(command[0], str(path), *command[1:])
    assert out.returncode == 2, out.stderr[-2000:]
    assert "YAML nodes" in out.stderr and str(path) in out.stderr
    assert "Traceback" not in out.stderr
    assert time.monotonic() - start < 60


def test_duplicate_keys_anywhere_name_both_lines(tmp_path):
    path = write(tmp_path, """
        name: ep
        deployments:
          blue:
            model: models:/m/1
            instance_count: 1
            request_settings: {request_timeout_ms: 100, request_timeout_ms: 200}
            instance_count: 3
    """)
    with pytest.raises(SpecError) as info:
        load_any(path)
    msgs = sorted(str(p) for p in info.value.problems)
    assert msgs == [
        f"{path}:6: error: deployments.blue.request_settings.request_timeout_ms: duplicate key at lines 6 and 6; "
        "expected each key once (YAML would keep only the last)",
        f"{path}:7: error: deployments.blue.instance_count: duplicate key at lines 5 and 7; "
        "expected each key once (YAML would keep only the last)",
    ]


def test_merge_keys_and_aliases_within_bounds_still_work(tmp_path):
    path = write(tmp_path, """
        base: &base {model: models:/m/1, instance_count: 2}
        blue: {<<: *base, instance_count: 3}
        green: *base
        '1': string key
        1: int key
    """)
    data = read_yaml(path).data
    assert data["blue"] == {"model": "models:/m/1", "instance_count": 3}
    assert data["green"] == {"model": "models:/m/1", "instance_count": 2}
    assert data["1"] == "string key" and data[1] == "int key"


def test_node_and_depth_limits_are_exact_and_have_knobs(tmp_path, monkeypatch):
    env = {f"V{i}": i for i in range(4900)}  # 9,800 nodes + 6 around them
    path = write(tmp_path, yaml.safe_dump({"name": "ep", "deployments": {"b": {"environment_variables": env}}}))
    assert len(read_yaml(path).data["deployments"]["b"]["environment_variables"]) == 4900
    env.update({f"W{i}": i for i in range(200)})
    path = write(tmp_path, yaml.safe_dump({"name": "ep", "deployments": {"b": {"environment_variables": env}}}))
    assert "more than 10000 YAML nodes" in refusal(path)

    nested = write(tmp_path, "[" * 100 + "]" * 100, "nested.yaml")
    with pytest.raises(SpecError, match="got list; expected a mapping"):  # read fine, then not a mapping
        read_yaml(nested)
    assert "nested deeper than 100" in refusal(write(tmp_path, "[" * 101 + "]" * 101, "nested.yaml"))

    small = write(tmp_path, MINIMAL, "small.yaml")
    monkeypatch.setenv("SCORER_YAML_MAX_NODES", "5")
    assert "more than 5 YAML nodes (aliases expanded, SCORER_YAML_MAX_NODES)" in refusal(small)
    monkeypatch.setenv("SCORER_YAML_MAX_NODES", "lots")
    assert "SCORER_YAML_MAX_NODES='lots': expected a positive integer" in refusal(small)
    monkeypatch.delenv("SCORER_YAML_MAX_NODES")
    monkeypatch.setenv("SCORER_YAML_MAX_DEPTH", "2")
    assert "nested deeper than 2 levels" in refusal(small)
    monkeypatch.delenv("SCORER_YAML_MAX_DEPTH")
    monkeypatch.setenv("SCORER_YAML_MAX_BYTES", "20")
    assert "larger than 20 bytes (SCORER_YAML_MAX_BYTES)" in refusal(small)


def test_endless_input_is_read_only_up_to_the_byte_limit():
    out = scorer("validate", "/dev/zero", env={"SCORER_YAML_MAX_BYTES": "100000"})
    assert out.returncode == 2 and out.stderr.strip() == (
        "/dev/zero: error: larger than 100000 bytes (SCORER_YAML_MAX_BYTES); expected an endpoint or "
        "deployment document")


def test_twelve_megabytes_parse_once_and_fast(tmp_path):
    long = write(tmp_path, MINIMAL + "description: '" + "x" * 12_000_000 + "'\n", "long.yaml")
    start = time.perf_counter()
    loaded = load_any(long)
    assert time.perf_counter() - start < 15  # about 0.3 s with libyaml
    assert isinstance(loaded.spec, Endpoint)
    lines = [f"  V{i:07d}: value-{i:07d}-abcdefghij" for i in range(330_000)]
    many = write(tmp_path, MINIMAL + "    environment_variables:\n" + "\n".join(lines) + "\n", "many.yaml")
    start = time.perf_counter()
    assert "YAML nodes" in refusal(many)
    assert time.perf_counter() - start < 5  # stops at the 10,001st node


def test_the_text_is_parsed_once_with_the_c_loader_where_available(tmp_path, monkeypatch):
    if yaml.__with_libyaml__:
        assert yamlfile.LOADER is yaml.CSafeLoader
    made: list[str] = []

    class Counting(yamlfile.LOADER):  # type: ignore[name-defined]
        def __init__(self, stream: str) -> None:
            made.append(stream)
            super().__init__(stream)

    monkeypatch.setattr(yamlfile, "LOADER", Counting)
    load_any(write(tmp_path, MINIMAL))
    assert len(made) == 1


@pytest.mark.parametrize("text, fragment", [
    ("when: 2001-02-30\n", "day is out of range"),
    ("n: " + "9" * 5000 + "\n", "not valid YAML"),
    ("a: *nowhere\n", "alias *nowhere refers to no anchor"),
    ("a: &x [1, *x]\n", "alias *x refers to no anchor"),
    ("a: 1\n---\nb: 2\n", "a second document"),
    ("a: !!python/object:os.system {}\n", "not valid YAML"),
    ("a: !!binary 'a'\n", "not valid YAML"),
    ("a: !!bool xyz\n", "not valid YAML"),
    ("a: !!timestamp xyz\n", "not valid YAML"),
    ("a: !!int xyz\n", "not valid YAML"),
    ("? [1, 2]\n: x\n", "not valid YAML"),
    ("a:\tb\n\t- c\n", "not valid YAML"),
])
def test_odd_yaml_is_a_spec_error_not_an_exception(tmp_path, text, fragment):
    assert fragment in refusal(write(tmp_path, text))


@pytest.mark.parametrize("body, loc", [
    ("instance_count: 1025", "deployments.blue.instance_count: got 1025; expected at most 1024"),
    ("scale_settings: {type: target_utilization, max_instances: 5000}",
     "deployments.blue.scale_settings.max_instances: got 5000; expected at most 1024"),
])
def test_replica_counts_are_capped_at_1024(tmp_path, monkeypatch, body, loc):
    path = write(tmp_path, MINIMAL + f"    {body}\n")
    with pytest.raises(SpecError) as info:
        load_any(path)
    assert any(loc in str(p) for p in info.value.problems), info.value
    ok = write(tmp_path, MINIMAL + "    instance_count: 1024\n", "ok.yaml")
    assert load_any(ok).spec.deployments["blue"].instance_count == 1024
    monkeypatch.setenv("SCORER_MAX_INSTANCES", "2000")
    load_any(write(tmp_path, MINIMAL + "    instance_count: 1025\n", "more.yaml"))
    monkeypatch.setenv("SCORER_MAX_INSTANCES", "0")
    with pytest.raises(SpecError, match="SCORER_MAX_INSTANCES='0': expected a positive integer"):
        load_any(ok)


def test_batch_instance_count_is_capped(tmp_path):
    path = write(tmp_path, "name: b\ntype: batch\nmodel: models:/m/1\nresources: {instance_count: 4096}\n")
    with pytest.raises(SpecError, match="resources.instance_count: got 4096; expected at most 1024"):
        load_any(path)


def _endpoint(**deployments: dict) -> Endpoint:
    return Endpoint.model_validate({"name": "ep", "deployments": {
        n: {"model": "models:/m/1", **d} for n, d in deployments.items()}})


def test_serve_refuses_more_local_replicas_than_8_per_cpu(monkeypatch):
    assert local_replica_problem(_endpoint(blue={"instance_count": 16}), cpus=2) is None
    problem = local_replica_problem(_endpoint(blue={"instance_count": 10}, green={"instance_count": 7}), cpus=2)
    assert problem == ("17 local replicas requested (blue 10, green 7); at most 16 on this machine (8 per CPU x "
                       "2 CPUs, SCORER_MAX_REPLICAS_PER_CPU); lower instance_count or scale_settings.max_instances, "
                       "or raise SCORER_MAX_REPLICAS_PER_CPU")
    autoscaled = _endpoint(blue={"scale_settings": {"type": "target_utilization", "max_instances": 9}})
    assert local_replica_problem(autoscaled, cpus=1) is not None  # the peak counts, not the start
    elsewhere = _endpoint(blue={"scale_settings": {"type": "target_utilization", "max_instances": 9,
                                                   "hook": "webhook:http://127.0.0.1:9/scale"}})
    assert local_replica_problem(elsewhere, cpus=1) is None  # a non-local hook starts nothing here
    fixed = _endpoint(blue={"instance_count": 2, "scale_settings": {"max_instances": 100}})
    assert local_replica_problem(fixed, cpus=1) is None  # fixed scaling never goes past instance_count
    monkeypatch.setenv("SCORER_MAX_REPLICAS_PER_CPU", "20")
    assert local_replica_problem(_endpoint(blue={"instance_count": 17}), cpus=1) is None
    monkeypatch.setenv("SCORER_MAX_REPLICAS_PER_CPU", "x")
    assert "SCORER_MAX_REPLICAS_PER_CPU='x'" in str(local_replica_problem(_endpoint(blue={}), cpus=1))


def test_scorer_serve_exits_two_before_starting_anything(tmp_path):
    from scorer.spec.limits import usable_cpus

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "score.py").write_text("def init():\n    pass\n\ndef run(raw):\n    return raw\n")
    path = write(tmp_path, f"""
        name: ep
        deployments:
          blue:
            code_configuration: {{code: src, scoring_script: score.py}}
            instance_count: {usable_cpus() + 1}
    """)
    out = scorer("serve", str(path), "--port", "9", env={"SCORER_MAX_REPLICAS_PER_CPU": "1"})
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"scorer serve: {usable_cpus() + 1} local replicas"), lines

"""The endpoint YAML contract: aliases, rules, and error messages naming path, line and value."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from scorer.spec import BatchDeployment, Endpoint, SpecError, detect_kind, load_any, load_batch, load_endpoint

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def problems(path: Path, loader=load_any, **kw) -> list[str]:
    with pytest.raises(SpecError) as info:
        loader(path, **kw)
    return [str(p) for p in info.value.problems]


MINIMAL = """
name: ep
deployments:
  blue:
    model: models:/m/1
"""


def test_minimal_endpoint_fills_defaults_and_gives_lone_deployment_all_traffic(tmp_path):
    loaded = load_any(write(tmp_path, MINIMAL))
    ep = loaded.spec
    assert isinstance(ep, Endpoint) and ep.auth_mode == "key"
    assert ep.traffic == {"blue": 100}
    dep = ep.deployments["blue"]
    assert dep.instance_count == 1 and dep.request_settings.request_timeout_ms == 5000
    assert dep.request_settings.max_concurrent_requests_per_instance == 1
    assert dep.request_settings.max_queue_wait_ms == 500
    assert dep.liveness_probe.failure_threshold == 30 and dep.readiness_probe.failure_threshold == 3
    assert dep.batching.max_batch_size == 1
    assert "only deployment" in loaded.notes[0]


# --- every alias of the design's table ------------------------------------------------------------

def test_seed_realtime_endpoint_maps_every_alias():
    loaded = load_any(REPO / "configs/seeds/realtime-endpoint.yaml")
    ep = loaded.spec
    dep = ep.deployments["blue"]
    assert ep.auth_mode == "token" and ep.uses_tokens
    assert dep.model == "ws:/thatmodel:1"
    assert dep.code_configuration.code == (REPO / "configs/seeds/src/onlinescoring/m1").resolve()
    assert dep.code_configuration.scoring_script == "score.py"  # entry_script included the code folder
    assert dep.scale_settings.type == "target_utilization"  # scale_type: auto
    assert dep.instance_count == 3  # scale_settings.instance_count
    assert (dep.scale_settings.min_instances, dep.max_instances) == (1, 5)
    assert dep.request_settings.request_timeout_ms == 3000  # scoring_timeout_ms
    ignored = {".".join(map(str, w.loc)) for w in loaded.ignored}
    assert ignored == {"compute", "deployments.blue.environment", "deployments.blue.sku"}


def test_seed_batch_deployment_maps_every_alias():
    loaded = load_any(REPO / "configs/seeds/batch-deployment.yaml")
    dep = loaded.spec
    assert isinstance(dep, BatchDeployment)
    assert dep.endpoint_name == "mnist-sklearn-endpoint"  # endpoint:
    assert dep.type == "batch"  # type: Batch
    assert dep.code_configuration.code == (REPO / "configs/seeds/src").resolve()
    assert dep.code_configuration.scoring_script is None  # code without script: sys.path, MLflow scores
    assert dep.effective_input_mode == "tabular"
    assert dep.resources.instance_count == 10  # node_count
    assert dep.mini_batch_rows == 20  # partitioning_scheme.mini_batch_size
    assert dep.output_action == "append_row"  # output_configuration.append: row
    assert dep.error_threshold == 3
    assert dep.retry_settings.timeout == 30  # timeout_in_seconds
    ignored = {".".join(map(str, w.loc)) for w in loaded.ignored}
    assert ignored == {"environment", "runs-on"}
    assert any("under 1000 rows" in w.message for w in loaded.warnings)


def test_scale_type_manual_and_summary_append(tmp_path):
    ep = load_any(write(tmp_path, """
        name: ep
        deployments:
          blue:
            model: models:/m/1
            scale_settings: {scale_type: manual}
    """)).spec
    assert ep.deployments["blue"].scale_settings.type == "default"
    batch = load_any(write(tmp_path, """
        name: b
        type: batch
        model: models:/m/1
        batch_settings:
          output_configuration: {append: summary}
          retry_settings: {max_retries: 5}
    """, "b.yaml")).spec
    assert batch.output_action == "summary_only" and batch.retry_settings.max_retries == 5


def test_entry_script_relative_to_code_folder(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "score.py").write_text("def init(): pass\ndef run(d): return d\n")
    ep = load_any(write(tmp_path, """
        name: ep
        deployments:
          blue: {code: ./src, entry_script: score.py}
    """)).spec
    cc = ep.deployments["blue"].code_configuration
    assert cc.scoring_script == "score.py" and cc.script_path == (tmp_path / "src" / "score.py").resolve()
    assert load_any(write(tmp_path, """
        name: ep
        deployments:
          blue: {code: ./src, entry_script: ./src/score.py}
    """)).spec.deployments["blue"].code_configuration.scoring_script == "score.py"


def test_azure_newer_shapes(tmp_path):
    (tmp_path / "model").mkdir()
    ep = load_any(write(tmp_path, """
        name: ep
        deployments:
          blue:
            model: {path: ./model}
            readiness_probe: {success_threshold: 2, period: 5}
          green:
            model: azureml:credit:3
          red:
            model: azureml:credit@latest
        traffic: {blue: 50, green: 50, red: 0}
    """)).spec
    assert ep.deployments["blue"].model == str((tmp_path / "model").resolve())
    assert ep.deployments["blue"].readiness_probe.success_threshold == 2
    batch = load_any(write(tmp_path, """
        name: b
        type: batch
        model: models:/m@champion
        resources: {instance_count: 2}
        settings:
          max_concurrency_per_instance: 3
          mini_batch_size: 64MB
          output_file_name: out.parquet
          retry_settings: {max_retries: 1, timeout: 10}
          error_threshold: 7
          logging_level: WARNING
    """, "b.yaml")).spec
    assert batch.max_concurrency_per_instance == 3 and batch.mini_batch_bytes == 64 * 1024**2
    assert batch.mini_batch_rows is None and batch.output_format == "parquet"
    assert batch.error_threshold == 7 and batch.logging_level == "warning"


def test_deployment_files_merge_into_endpoint(tmp_path):
    endpoint = write(tmp_path, "name: ep\ntraffic: {blue: 90, green: 10}\n", "endpoint.yaml")
    blue = write(tmp_path, "name: blue\nendpoint_name: ep\nmodel: models:/m/1\n", "blue.yaml")
    green = write(tmp_path, "name: green\nendpoint: ep\nmodel: models:/m/2\n", "green.yaml")
    loaded = load_endpoint(endpoint, [blue, green], check_paths=False)
    assert set(loaded.spec.deployments) == {"blue", "green"} and loaded.spec.traffic == {"blue": 90, "green": 10}
    assert detect_kind({"name": "blue", "endpoint_name": "ep"}) == "online_deployment"
    assert load_any(blue).kind == "online_deployment"
    wrong = write(tmp_path, "name: red\nendpoint_name: other\nmodel: models:/m/2\n", "red.yaml")
    msgs = problems(endpoint, lambda p, **k: load_endpoint(p, [blue, green, wrong], check_paths=False))
    assert any("red.yaml:2" in m and "endpoint_name" in m and "'other'" in m for m in msgs), msgs


@pytest.mark.parametrize("data,kind", [
    ({"type": "BATCH"}, "batch_deployment"),
    ({"name": "x", "mini_batch_size": 5}, "batch_deployment"),
    ({"name": "x", "batch_settings": {}}, "batch_deployment"),
    ({"name": "x", "endpoint_name": "e"}, "online_deployment"),
    ({"name": "x", "deployments": {}}, "endpoint"),
])
def test_kind_detection(data, kind):
    assert detect_kind(data) == kind


# --- rules: one good and one bad case each --------------------------------------------------------

BAD_CASES = [
    ("traffic sums to 90", "traffic: {blue: 50, green: 40}", "traffic", "sum 90"),
    ("traffic not integer", "traffic: {blue: 50.5, green: 49.5}", "traffic.blue", "50.5"),
    ("traffic names undefined", "traffic: {blue: 50, gren: 50}", "traffic.gren", "no deployment named 'gren'"),
    ("mirror has live traffic", "traffic: {blue: 50, green: 50}\nmirror_traffic: {green: 10}",
     "mirror_traffic.green", "live traffic"),
    ("mirror over 50", "traffic: {blue: 100}\nmirror_traffic: {green: 60}", "mirror_traffic.green", "got 60"),
    ("mirror two deployments", "traffic: {blue: 100}\nmirror_traffic: {green: 10, blue: 0}",
     "mirror_traffic", "one deployment"),
    ("mirror undefined", "traffic: {blue: 100}\nmirror_traffic: {red: 10}", "mirror_traffic.red", "no deployment"),
    ("auth mode", "auth_mode: password", "auth_mode", "'password'"),
]


def _two(extra: str, green: str = "") -> str:
    deployments = "deployments:\n  blue:\n    model: models:/m/1\n  green:\n    model: models:/m/2\n"
    return f"name: ep\n{extra}\n{deployments}{green}"


@pytest.mark.parametrize("title,extra,loc,fragment", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_endpoint_rule_violations_name_field_line_and_value(tmp_path, title, extra, loc, fragment):
    path = write(tmp_path, _two(extra))
    msgs = problems(path)
    hit = [m for m in msgs if f": {loc}: " in m]
    assert hit and fragment in hit[0], msgs
    line = 3 if loc.startswith("mirror_traffic") else 2  # where that field is in the file
    assert hit[0].startswith(f"{path}:{line}: error: "), hit


@pytest.mark.parametrize("extra", [
    "traffic: {blue: 90, green: 10}",
    "traffic: {blue: 0, green: 0}",
    "traffic: {blue: 100, green: 0}\nmirror_traffic: {green: 50}",
    "traffic: {blue: 100}\nmirror_traffic: {green: 20}",
    "auth_mode: AML_TOKEN",
])
def test_endpoint_rules_accept_good_values(tmp_path, extra):
    load_any(write(tmp_path, _two(extra)))


DEP_BAD = [
    ("min above count", "instance_count: 1\n    scale_settings: {min_instances: 2}",
     "deployments.blue.scale_settings.min_instances", "got 2"),
    ("count above max", "instance_count: 6\n    scale_settings: {max_instances: 5}",
     "deployments.blue.instance_count", "got 6"),
    ("timeout not positive", "request_settings: {request_timeout_ms: 0}",
     "deployments.blue.request_settings.request_timeout_ms", "got 0"),
    ("queue wait negative", "request_settings: {max_queue_wait_ms: -5}",
     "deployments.blue.request_settings.max_queue_wait_ms", "got -5"),
    ("concurrency not positive", "request_settings: {max_concurrent_requests_per_instance: 0}",
     "deployments.blue.request_settings.max_concurrent_requests_per_instance", "got 0"),
    ("batch size zero", "batching: {max_batch_size: 0}", "deployments.blue.batching.max_batch_size", "got 0"),
    ("probe period", "liveness_probe: {period: 0}", "deployments.blue.liveness_probe.period", "got 0"),
    ("bad hook", "scale_settings: {hook: 'ftp://x'}", "deployments.blue.scale_settings.hook", "webhook"),
    ("utilization over 100", "scale_settings: {target_utilization_percentage: 150}",
     "deployments.blue.scale_settings.target_utilization_percentage", "got 150"),
    ("bad scale type", "scale_settings: {type: fast}", "deployments.blue.scale_settings.type", "'fast'"),
    ("bad model ref", "model: 'models:/only-name'", "deployments.blue.model", "models:/NAME/VERSION"),
    ("malformed azureml ref", "model: 'azureml:x'", "deployments.blue.model", "malformed model reference"),
]


@pytest.mark.parametrize("title,body,loc,fragment", DEP_BAD, ids=[c[0] for c in DEP_BAD])
def test_deployment_rule_violations(tmp_path, title, body, loc, fragment):
    text = f"name: ep\ndeployments:\n  blue:\n    model: models:/m/1\n    {body}\n"
    text = text.replace("    model: models:/m/1\n    model:", "    model:")
    msgs = problems(write(tmp_path, text))
    hit = [m for m in msgs if f": {loc}: " in m]
    assert hit and fragment in hit[0], msgs


def test_deployment_good_bounds_and_hooks(tmp_path):
    ep = load_any(write(tmp_path, """
        name: ep
        deployments:
          blue:
            model: models:/m/1
            instance_count: 2
            scale_settings:
              type: target_utilization
              min_instances: 1
              max_instances: 3
              polling_interval: 1
              scale_down_delay: 5
              hook: webhook:http://127.0.0.1:9/scale
          green:
            model: runs:/abc123/model
            scale_settings: {hook: "command:echo scale"}
          red:
            model: models:/m/latest
            scale_settings: {hook: "python:mypkg.hooks:on_scale"}
        traffic: {blue: 100}
    """)).spec
    assert ep.deployments["blue"].scale_settings.hook.startswith("webhook:")
    assert ep.deployments["blue"].scale_settings.scale_down_delay == 5


def test_unknown_field_suggests_the_right_one(tmp_path):
    path = write(tmp_path, """
        name: ep
        deployments:
          blue:
            model: models:/m/1
            request_settings:
              request_timout_ms: 100
        trafic: {blue: 100}
    """)
    msgs = problems(path)
    hit = [m for m in msgs if "request_timout_ms" in m][0]
    assert ":6:" in hit and "did you mean 'request_timeout_ms'" in hit
    assert any(": trafic: " in m and "did you mean 'traffic'" in m and ":7:" in m for m in msgs), msgs


def test_every_problem_is_reported_not_just_the_first(tmp_path):
    path = write(tmp_path, """
        name: ep
        traffic: {blue: 70}
        deployments:
          blue:
            model: models:/m/1
            instance_count: 0
            request_settings: {request_timeout_ms: -1}
            batching: {max_batch_wait_ms: -2}
    """)
    msgs = problems(path)
    assert len(msgs) >= 3, msgs
    assert any("instance_count" in m and ":6:" in m for m in msgs)
    assert any("request_timeout_ms" in m and "-1" in m for m in msgs)
    assert any("max_batch_wait_ms" in m for m in msgs)


def test_yaml_syntax_error_names_the_line(tmp_path):
    msgs = problems(write(tmp_path, "name: ep\ndeployments:\n  blue: [unclosed\n"))
    assert len(msgs) == 1 and "not valid YAML" in msgs[0], msgs
    assert ":3: " in msgs[0] or ":4: " in msgs[0], msgs


def test_not_a_mapping(tmp_path):
    msgs = problems(write(tmp_path, "- a\n- b\n"))
    assert "expected a mapping" in msgs[0]


def test_relative_paths_resolve_against_the_yaml_folder(tmp_path, monkeypatch):
    sub = tmp_path / "cfg"
    sub.mkdir()
    (sub / "models" / "m").mkdir(parents=True)
    path = write(sub, "name: ep\ndeployments:\n  blue: {model: ./models/m}\n")
    monkeypatch.chdir(tmp_path.parent)
    assert load_any(path).spec.deployments["blue"].model == str((sub / "models" / "m").resolve())


def test_missing_local_paths_warn_at_validate_and_fail_at_serve(tmp_path):
    path = write(tmp_path, "name: ep\ndeployments:\n  blue: {model: ./nowhere}\n")
    loaded = load_any(path, check_paths=False)
    assert any("no such model folder" in w.message for w in loaded.warnings)
    msgs = problems(path, load_endpoint)
    assert "deployments.blue.model" in msgs[0] and "nowhere" in msgs[0]


# --- batch rules ----------------------------------------------------------------------------------

BATCH_BAD = [
    ("threshold below -1", "error_threshold: -2", "error_threshold", "got -2"),
    ("retries negative", "retry_settings: {max_retries: -1}", "retry_settings.max_retries", "got -1"),
    ("timeout zero", "retry_settings: {timeout: 0}", "retry_settings.timeout", "got 0"),
    ("output name", "output_file_name: out.txt", "output_file_name", ".csv or .parquet"),
    ("mini batch size", "mini_batch_size: lots", "mini_batch_size", "64MB"),
    ("mini batch zero", "mini_batch_size: 0", "mini_batch_size", "got 0"),
    ("output action", "output_action: append_everything", "output_action", "append_row"),
    ("files without script", "input_mode: files", "input_mode", "scoring_script"),
    ("logging level", "logging_level: loud", "logging_level", "'loud'"),
    ("concurrency", "max_concurrency_per_instance: 0", "max_concurrency_per_instance", "got 0"),
    ("instances", "resources: {instance_count: 0}", "resources.instance_count", "got 0"),
    ("legacy append", "batch_settings: {output_configuration: {append: column}}",
     "batch_settings.output_configuration.append", "row or summary"),
]


@pytest.mark.parametrize("title,body,loc,fragment", BATCH_BAD, ids=[c[0] for c in BATCH_BAD])
def test_batch_rule_violations(tmp_path, title, body, loc, fragment):
    path = write(tmp_path, f"name: b\ntype: batch\nmodel: models:/m/1\n{body}\n")
    msgs = problems(path, load_batch, check_paths=False)
    hit = [m for m in msgs if f": {loc}: " in m]
    assert hit and fragment in hit[0], msgs
    assert ":4:" in hit[0], hit


def test_batch_good_values(tmp_path):
    dep = load_batch(write(tmp_path, """
        name: b
        type: batch
        model: models:/m/1
        error_threshold: -1
        retry_settings: {max_retries: 0, timeout: 0.5}
        mini_batch_size: "2048"
        output_action: summary_only
    """), check_paths=False).spec
    assert dep.error_threshold == -1 and dep.mini_batch_rows == 2048 and dep.retry_settings.max_retries == 0


def test_batch_defaults_by_mode(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "s.py").write_text("def init(): pass\ndef run(b): return b\n")
    files = load_batch(write(tmp_path, "name: b\ntype: batch\ncode_configuration: {code: src, scoring_script: s.py}\n"))
    assert files.spec.effective_input_mode == "files" and files.spec.mini_batch_rows == 10
    tab = load_batch(write(tmp_path, "name: b\ntype: batch\nmodel: models:/m/1\n", "t.yaml"))
    assert tab.spec.effective_input_mode == "tabular" and tab.spec.mini_batch_rows == 10000


def test_all_shipped_configs_validate():
    for path in sorted((REPO / "configs").rglob("*.yaml")):
        load_any(path, check_paths=False)


def test_batching_larger_than_the_concurrency_limit_warns(tmp_path):
    path = write(tmp_path, """
        name: ep
        deployments:
          blue:
            model: models:/m/1
            batching: {max_batch_size: 16}
    """)
    loaded = load_any(path)
    hit = [w for w in loaded.warnings if w.loc[-1] == "max_batch_size"]
    assert hit and "batches stay at most 1" in hit[0].message and hit[0].line == 5
    ok = write(tmp_path, """
        name: ep
        deployments:
          blue:
            model: models:/m/1
            batching: {max_batch_size: 16}
            request_settings: {max_concurrent_requests_per_instance: 16}
    """, "ok.yaml")
    assert not [w for w in load_any(ok).warnings if w.loc[-1] == "max_batch_size"]

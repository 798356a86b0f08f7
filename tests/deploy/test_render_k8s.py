"""`scorer render k8s`: every manifest valid offline, the committed demo current, and the contract
the pods rely on (mounted ConfigMap, Secret, probes, drain, resources, autoscaling)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scorer.cli import main
from scorer.spec import load_endpoint
from tests.deploy import kubelet
from tests.deploy.manifests import REPO, kubernetes_validate, manifests, ray_errors

DEMO = ["configs/endpoints/demo.yaml", "configs/batch/demo-batch.yaml"]
RAY_KINDS = {"RayCluster", "RayJob"}


def render(out: Path, *args: str, files: list[str] = DEMO) -> int:
    cwd = os.getcwd()
    os.chdir(REPO)  # the demo's headers name the files as `make deploy-demo` passes them
    try:
        return main(["render", "k8s", *files, "--out", str(out), *args])
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("render")
    for placement in ("pods", "ray"):
        assert render(root / placement, "--placement", placement) == 0
    return {"pods": root / "pods", "ray": root / "ray"}


def by_kind(folder: Path) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in manifests(folder).values()}


def router(folder: Path) -> dict[str, Any]:
    return by_kind(folder)["Deployment"]["spec"]["template"]


def test_committed_demo_equals_a_fresh_render(rendered):
    """`make deploy-demo` output is committed: it may not drift from the renderer or the demo YAML."""
    for placement, fresh in rendered.items():
        committed = REPO / "deploy" / placement
        names = sorted(str(p.relative_to(fresh)) for p in fresh.rglob("*") if p.is_file())
        assert sorted(str(p.relative_to(committed)) for p in committed.rglob("*") if p.is_file()) == names
        for name in names:
            stale = f"deploy/{placement}/{name}: run make deploy-demo"
            assert (committed / name).read_text() == (fresh / name).read_text(), stale


def test_builtin_kinds_pass_kubernetes_validate_strict(rendered):
    files = [p for folder in (*rendered.values(), REPO / "deploy") for p in sorted(folder.rglob("*.yaml"))
             if manifests(p.parent)[p.name]["kind"] not in RAY_KINDS]
    kinds = {manifests(p.parent)[p.name]["kind"] for p in files}
    assert kinds == {"ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget",
                     "HorizontalPodAutoscaler", "CronJob"}
    out = kubernetes_validate(files)
    assert out.returncode == 0, out.stdout + out.stderr


def test_ray_kinds_match_the_kuberay_crds(rendered):
    docs = [d for folder in (*rendered.values(), REPO / "deploy" / "ray") for d in manifests(folder).values()
            if d["kind"] in RAY_KINDS]
    assert {d["kind"] for d in docs} == RAY_KINDS
    for doc in docs:
        assert ray_errors(doc) == [], doc["kind"]


def test_validators_refuse_an_unknown_field(rendered, tmp_path):
    """The checks above can fail: a misspelt field is refused by both validators."""
    docs = by_kind(rendered["ray"])
    cluster = docs["RayCluster"]
    cluster["spec"]["workerGroupSpecs"][0]["replica"] = 2
    assert any("replica" in e for e in ray_errors(cluster))
    job = docs["RayJob"]
    job["spec"]["entrypoint"] = 7
    assert ray_errors(job)
    bad = (rendered["pods"] / "router-service.yaml").read_text().replace("  selector:", "  selectr:")
    (tmp_path / "svc.yaml").write_text(bad)
    assert kubernetes_validate([tmp_path / "svc.yaml"]).returncode != 0


def test_pods_placement_serves_the_mounted_configmap_with_shared_keys(rendered):
    pod = router(rendered["pods"])
    (c,) = pod["spec"]["containers"]
    assert c["command"] == ["scorer", "serve", "/etc/scorer/endpoint/demo.yaml", "--host", "0.0.0.0", "--port", "8000"]
    env = {e["name"]: e for e in c["env"]}
    assert env["SCORER_DESIRED_STATE"]["value"] == "files"
    for key in ("SCORER_API_KEY", "SCORER_ADMIN_KEY", "SCORER_TOKEN_SECRET"):
        ref = env[key]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "demo-keys", "key": key}  # not optional: no pod runs with keys of its own
    secret = manifests(rendered["pods"])["secrets/keys.yaml"]
    assert secret["metadata"]["name"] == "demo-keys"
    assert set(secret["stringData"]) == set(env) - {"SCORER_DESIRED_STATE"}
    # a directory mount (subPath mounts never see ConfigMap updates) of the ConfigMap holding the files
    (m,) = c["volumeMounts"]
    assert m == {"name": "endpoint", "mountPath": "/etc/scorer/endpoint", "readOnly": True}
    (vol,) = pod["spec"]["volumes"]
    cm = manifests(rendered["pods"])["configmap-endpoint.yaml"]
    assert vol["configMap"]["name"] == cm["metadata"]["name"]
    assert cm["data"] == {"demo.yaml": (REPO / "configs/endpoints/demo.yaml").read_text()}
    # probes, drain, metrics
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready" and c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "10"]
    assert pod["spec"]["terminationGracePeriodSeconds"] == 10 + 5 + 5
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    # router 500m/512Mi + blue and green at 500m/1Gi each (the demo sets no resources)
    assert c["resources"] == {"requests": {"cpu": "1500m", "memory": "2560Mi"}}


def test_the_hpa_owns_the_pod_count_and_selectors_match(rendered):
    docs = by_kind(rendered["pods"])
    dep, hpa = docs["Deployment"], docs["HorizontalPodAutoscaler"]
    assert "replicas" not in dep["spec"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "demo-router"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    labels = dep["spec"]["template"]["metadata"]["labels"]
    for sel in (dep["spec"]["selector"]["matchLabels"], docs["Service"]["spec"]["selector"],
                docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]):
        assert sel.items() <= labels.items()


def test_ray_placement_routers_join_the_raycluster(rendered):
    docs = by_kind(rendered["ray"])
    (c,) = router(rendered["ray"])["spec"]["containers"]
    assert c["command"][-2:] == ["--address", "ray://demo-head-svc:10001"]
    assert "SCORER_DESIRED_STATE" not in {e["name"] for e in c["env"]}
    assert c["resources"] == {"requests": {"cpu": "500m", "memory": "512Mi"}}  # the router alone
    cluster = docs["RayCluster"]
    assert cluster["metadata"]["name"] == "demo"  # KubeRay names its head Service demo-head-svc
    groups = {g["groupName"]: g for g in cluster["spec"]["workerGroupSpecs"]}
    assert set(groups) == {"blue", "green"} and all(g["replicas"] == 1 for g in groups.values())
    job = docs["RayJob"]["spec"]
    assert job["entrypoint"] == ("scorer batch /etc/scorer/batch/demo-batch.yaml --input /data/input "
                                 "--output /data/output --resume --address auto")
    assert job["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "2", "memory": "4Gi"}}


def test_cronjob_runs_the_mounted_batch_file_and_does_not_retry_what_cannot_succeed(rendered):
    cron = by_kind(rendered["pods"])["CronJob"]["spec"]
    job = cron["jobTemplate"]["spec"]
    (c,) = job["template"]["spec"]["containers"]
    assert c["command"] == ["scorer", "batch", "/etc/scorer/batch/demo-batch.yaml", "--input", "/data/input",
                            "--output", "/data/output", "--resume"]
    assert c["resources"]["requests"] == {"cpu": "2", "memory": "4Gi"}
    assert job["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [1, 2]
    cm = manifests(rendered["pods"])["configmap-batch-demo-nightly.yaml"]
    assert cm["data"] == {"demo-batch.yaml": (REPO / "configs/batch/demo-batch.yaml").read_text()}


def _resource_endpoint(tmp_path: Path) -> Path:
    ep = tmp_path / "ep.yaml"
    ep.write_text(
        "name: risk\ntraffic: {a: 100}\ndeployments:\n"
        "  a:\n    model: models:/m/1\n    instance_count: 3\n"
        "    resources: {requests: {cpu: 250m, memory: 1Gi}, limits: {cpu: '1', memory: 2Gi}}\n"
        "  b:\n    model: models:/m/2\n    instance_count: 2\n"
        "    resources: {requests: {cpu: '2'}, limits: {nvidia.com/gpu: 1}}\n"
        "    scale_settings: {type: target_utilization, min_instances: 1, max_instances: 5,"
        " target_utilization_percentage: 60, scale_down_delay: 120}\n")
    return ep


def test_pod_requests_are_the_sum_over_its_replicas_plus_the_router(tmp_path):
    assert render(tmp_path / "out", files=[str(_resource_endpoint(tmp_path))]) == 0
    docs = by_kind(tmp_path / "out")
    (c,) = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    # cpu: 500m + 3 x 250m + 2 x 2; memory: 512Mi + 3 x 1Gi + 2 x 1Gi (default); gpu: 2 x 1, request == limit;
    # cpu and memory limits are left out: b sets none, so a sum would cap the pod below b's needs
    assert c["resources"] == {"requests": {"cpu": "5250m", "memory": "5632Mi", "nvidia.com/gpu": "2"},
                              "limits": {"nvidia.com/gpu": "2"}}
    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300  # a keeps the default 300 s
    assert render(tmp_path / "ray", "--placement", "ray", files=[str(_resource_endpoint(tmp_path))]) == 0
    cluster = by_kind(tmp_path / "ray")["RayCluster"]["spec"]
    b = [g for g in cluster["workerGroupSpecs"] if g["groupName"] == "b"][0]
    assert (b["replicas"], b["minReplicas"], b["maxReplicas"]) == (2, 1, 5) and cluster["enableInTreeAutoscaling"]
    assert b["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}
    assert ray_errors(by_kind(tmp_path / "ray")["RayCluster"]) == []
    assert kubernetes_validate([tmp_path / "out" / "router-deployment.yaml"]).returncode == 0


def test_secrets_are_placeholders_unless_generated(tmp_path, rendered):
    for folder in (rendered["pods"], REPO / "deploy" / "pods", REPO / "deploy" / "ray"):
        assert not (folder / "secret.yaml").exists()  # `kubectl apply -f DIR` never overwrites the real one
        assert set(manifests(folder)["secrets/keys.yaml"]["stringData"].values()) == {""}
    assert render(tmp_path / "a", "--generate-secrets") == 0
    assert render(tmp_path / "b", "--generate-secrets") == 0
    a, b = (manifests(tmp_path / x)["secret.yaml"]["stringData"] for x in "ab")
    assert all(len(v) >= 32 for v in a.values()) and not set(a.values()) & set(b.values())
    assert not (tmp_path / "a" / "secrets").exists()


def test_mounted_configmap_swap_changes_what_serve_reads(rendered, tmp_path):
    """The contract for `--placement pods`: the command's files are the ConfigMap's keys, mounted
    as a kubelet does; editing the ConfigMap swaps what those same paths hold."""
    cm = manifests(rendered["pods"])["configmap-endpoint.yaml"]
    (c,) = router(rendered["pods"])["spec"]["containers"]
    volume = tmp_path / "etc-scorer-endpoint"
    files = [volume / Path(a).name for a in c["command"] if a.startswith("/etc/scorer/endpoint/")]
    kubelet.project(volume, cm["data"])
    assert load_endpoint(files[0], files[1:], check_paths=False).spec.traffic == {"blue": 90, "green": 10}
    edited = cm["data"]["demo.yaml"].replace("traffic: {blue: 90, green: 10}", "traffic: {blue: 0, green: 100}")
    kubelet.project(volume, {"demo.yaml": edited})
    assert load_endpoint(files[0], files[1:], check_paths=False).spec.traffic == {"blue": 0, "green": 100}


def scorer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scorer.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


def test_cli_mistakes_exit_two_in_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: ep\ntraffic: {blue: 100}\ndeployments:\n  blue: {model: models:/m/1, instance_cont: 2}\n")
    a_file = tmp_path / "file"
    a_file.write_text("")
    quantity = tmp_path / "q.yaml"
    quantity.write_text("name: ep\ndeployments:\n  blue:\n    model: models:/m/1\n"
                        "    resources: {requests: {cpu: lots}}\n")
    cases = [
        (["render", "k8s", str(bad), "--out", str(tmp_path / "o1")], "instance_cont"),
        (["render", "k8s", *DEMO, "--out", str(a_file)], "is a file"),
        (["render", "k8s", str(quantity), "--out", str(tmp_path / "o2")], "deployments.blue.resources.requests.cpu"),
        (["render", "k8s", DEMO[0], DEMO[0], "--out", str(tmp_path / "o3")], "expected online or batch"),
        (["render", "k8s", *DEMO, "--out", str(tmp_path / "o4"), "--target-cpu", "0"], "--target-cpu"),
    ]
    for argv, needle in cases:
        out = scorer(*argv)
        assert out.returncode == 2, (argv, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and needle in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()

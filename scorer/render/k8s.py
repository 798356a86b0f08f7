"""Render one endpoint (and its batch deployments) into Kubernetes manifests, one object a file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from scorer.render import batchjobs, ray, router
from scorer.render.objects import Doc, config_map, config_volume, mount, secret, secret_env
from scorer.render.options import (
    DESIRED_STATE_ENV,
    ENDPOINT_DIR,
    HTTP_PORT,
    RAY_CLIENT_PORT,
    RenderOptions,
)
from scorer.render.quantity import parse
from scorer.render.resources import per_replica, total
from scorer.render.yamlout import dump
from scorer.spec import BatchDeployment, Endpoint, Loaded

PLACEHOLDER_SECRET = "secrets/keys.yaml"
"""Outside the folder's top level, so `kubectl apply -f DIR` never overwrites the real Secret with it."""


def _keys(ep: Endpoint) -> list[str]:
    keys = ["SCORER_API_KEY", "SCORER_ADMIN_KEY", "SCORER_TOKEN_SECRET"]
    if any(d.scale_settings.hook.startswith("webhook:") for d in ep.deployments.values()):
        keys.append("SCORER_WEBHOOK_SECRET")
    return keys


def _unique_names(files: Sequence[Path]) -> None:
    seen: dict[str, Path] = {}
    for f in files:
        if f.name in seen:
            raise ValueError(f"{f}: same file name as {seen[f.name]}; a ConfigMap keys files by name")
        seen[f.name] = f


def _router_container(ep: Endpoint, files: list[Path], keys_name: str, opts: RenderOptions) -> Doc:
    """Pods placement: local replicas, so the pod requests the sum over them plus the router."""
    cmd = ["scorer", "serve", *(f"{ENDPOINT_DIR}/{f.name}" for f in files),
           "--host", "0.0.0.0", "--port", str(HTTP_PORT)]
    env: list[Doc] = []
    if opts.placement == "ray":
        cmd += ["--address", f"ray://{ep.name}-head-svc:{RAY_CLIENT_PORT}"]
        resources = total([], {"cpu": parse(opts.router_cpu), "memory": parse(opts.router_memory)})
    else:
        env.append({"name": DESIRED_STATE_ENV, "value": "files"})
        parts = []
        for name, dep in ep.deployments.items():
            req, lim = per_replica(name, dep, opts.replica_cpu, opts.replica_memory)
            parts.append((dep.instance_count, req, lim))
        resources = total(parts, {"cpu": parse(opts.router_cpu), "memory": parse(opts.router_memory)})
    env += secret_env(keys_name, _keys(ep))
    return {"name": "router", "image": opts.image, "workingDir": "/app", "command": cmd, "env": env,
            "resources": resources, "volumeMounts": [mount("endpoint", ENDPOINT_DIR)]}


def _worker_groups(ep: Endpoint, opts: RenderOptions) -> tuple[list[Doc], bool]:
    groups, autoscale = [], False
    for name, dep in ep.deployments.items():
        s = dep.scale_settings
        scaled = s.type == "target_utilization"
        autoscale = autoscale or scaled
        req, lim = per_replica(name, dep, opts.replica_cpu, opts.replica_memory)
        lowest = min(s.min_instances, dep.instance_count) if scaled else dep.instance_count
        groups.append(ray.worker_group(name, dep.instance_count, lowest, dep.max_instances, req, lim, opts, [], []))
    return groups, autoscale


def render_k8s(endpoint: Loaded[Endpoint], batches: Sequence[Loaded[BatchDeployment]],
               opts: RenderOptions) -> dict[str, str]:
    """File name (relative to the output folder) -> manifest text. Deterministic, except with
    `generate_secrets`, so that a committed render can be compared with a fresh one."""
    ep = endpoint.spec
    files = [Path(f) for f in endpoint.files]
    _unique_names(files)
    inst = ep.name
    names = {"config": f"{inst}-endpoint", "keys": f"{inst}-keys", "router": f"{inst}-router"}
    origin = " ".join(str(f) for f in endpoint.files)
    docs: dict[str, Doc] = {
        "configmap-endpoint.yaml": config_map(names["config"], inst, "endpoint", files),
        "router-deployment.yaml": router.deployment(
            names["router"], inst, ep, _router_container(ep, files, names["keys"], opts),
            [config_volume("endpoint", names["config"])], opts),
        "router-service.yaml": router.service(inst, inst),
        "router-pdb.yaml": router.pdb(names["router"], inst),
        "router-hpa.yaml": router.hpa(names["router"], inst, ep, opts),
    }
    secret_file = "secret.yaml" if opts.generate_secrets else PLACEHOLDER_SECRET
    docs[secret_file] = secret(names["keys"], inst, _keys(ep), opts.generate_secrets)
    if opts.placement == "ray":
        groups, autoscale = _worker_groups(ep, opts)
        docs["raycluster.yaml"] = ray.ray_cluster(inst, inst, groups, autoscale, opts)
    for loaded in batches:
        dep, path = loaded.spec, Path(loaded.files[0])
        cm = f"{dep.name}-batch"
        docs[f"configmap-batch-{dep.name}.yaml"] = config_map(cm, inst, "batch", [path])
        docs[f"cronjob-{dep.name}.yaml"] = batchjobs.cron_job(dep.name, inst, dep, path.name, cm, opts)
        if opts.placement == "ray":
            docs[f"rayjob-{dep.name}.yaml"] = batchjobs.batch_ray_job(dep.name, inst, dep, path.name, cm, opts)
        origin += f" {loaded.files[0]}"
    header = (f"Rendered by `scorer render k8s` (--placement {opts.placement}) from {origin}.\n"
              "Edit those files and render again; docs/scaling.md says how to apply.")
    return {name: dump(doc, header) for name, doc in docs.items()}


def write_manifests(rendered: dict[str, str], out: Path) -> list[Path]:
    """Writes every file under `out` (created if missing); returns the paths written."""
    written = []
    for name, text in rendered.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written

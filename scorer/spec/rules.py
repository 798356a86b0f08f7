"""Rules that span fields (traffic sums, mirror, instance bounds), each naming the field at fault."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scorer.models.reference import parse_model_ref
from scorer.spec.limits import MAX_INSTANCES
from scorer.spec.models import BatchDeployment, Endpoint, OnlineDeployment
from scorer.spec.problems import Loc, Problem, show


def _over_cap(value: int | None, loc: Loc) -> list[Problem]:
    cap = MAX_INSTANCES.value()
    if value is None or value <= cap:
        return []
    return [Problem(loc, f"got {value}; expected at most {cap} ({MAX_INSTANCES.env})")]


def deployment_rules(dep: OnlineDeployment, loc: Loc) -> list[Problem]:
    s = dep.scale_settings
    out = _over_cap(dep.instance_count, (*loc, "instance_count"))
    out += _over_cap(s.max_instances, (*loc, "scale_settings", "max_instances"))
    if s.min_instances > dep.instance_count:
        out.append(Problem((*loc, "scale_settings", "min_instances"),
                           f"got {s.min_instances}; expected at most instance_count ({dep.instance_count})"))
    if s.max_instances is not None and dep.instance_count > s.max_instances:
        out.append(Problem((*loc, "instance_count"),
                           f"got {dep.instance_count}; expected at most scale_settings.max_instances "
                           f"({s.max_instances})"))
    if s.max_instances is not None and s.min_instances > s.max_instances:
        out.append(Problem((*loc, "scale_settings", "max_instances"),
                           f"got {s.max_instances}; expected at least min_instances ({s.min_instances})"))
    batch, limit = dep.batching.max_batch_size, dep.request_settings.max_concurrent_requests_per_instance
    if batch > 1 and limit < batch:
        out.append(Problem((*loc, "batching", "max_batch_size"),
                           f"got {batch}, but a replica is sent at most max_concurrent_requests_per_instance "
                           f"({limit}) requests at once, so batches stay at most {limit}; raise "
                           "request_settings.max_concurrent_requests_per_instance to let batches fill",
                           severity="warning"))
    cc = dep.code_configuration
    if dep.model is None and (cc is None or not cc.scoring_script):
        out.append(Problem((*loc, "model"), "missing; expected a model reference or a "
                           "code_configuration with a scoring_script"))
    return out


def endpoint_rules(ep: Endpoint, *, require_deployments: bool = True) -> list[Problem]:
    """Every rule across an endpoint's fields; an endpoint file checked alone (`require_deployments`
    false, no deployments) skips the ones that need its deployments."""
    out: list[Problem] = []
    for name, dep in ep.deployments.items():
        loc: Loc = ("deployments", name)
        if dep.name is not None and dep.name != name:
            out.append(Problem((*loc, "name"), f"got {dep.name!r}; expected the key it is under, {name!r}"))
        if dep.endpoint_name is not None and dep.endpoint_name != ep.name:
            out.append(Problem((*loc, "endpoint_name"),
                               f"got {dep.endpoint_name!r}; expected this endpoint's name, {ep.name!r}"))
        out.extend(deployment_rules(dep, loc))
    if not ep.deployments and not require_deployments:
        return out
    if not ep.deployments:
        out.append(Problem(("deployments",), "empty; expected at least one deployment, inline under "
                           "`deployments:` or as deployment files given after the endpoint file"))
    out.extend(traffic_rules(ep.traffic, ep.mirror_traffic, list(ep.deployments)))
    return out


def traffic_rules(traffic: Any, mirror: Any, names: list[str]) -> list[Problem]:
    """Traffic and mirror rules; works on raw data too, so they are reported beside schema errors."""
    out: list[Problem] = []
    defined = ", ".join(sorted(names)) or "none"
    traffic = {k: v for k, v in traffic.items() if isinstance(v, int)} if isinstance(traffic, dict) else {}
    mirror = {k: v for k, v in mirror.items() if isinstance(v, int)} if isinstance(mirror, dict) else {}
    for name, pct in traffic.items():
        if name not in names:
            out.append(Problem(("traffic", name), f"no deployment named {name!r}; defined: {defined}"))
        if not 0 <= pct <= 100:
            out.append(Problem(("traffic", name), f"got {pct}; expected an integer percent from 0 to 100"))
    total = sum(traffic.values())
    if traffic and total not in (0, 100):
        out.append(Problem(("traffic",), f"got {show(traffic)} (sum {total}); expected integer percents "
                           "summing to 100, or all 0"))
    if len(mirror) > 1:
        out.append(Problem(("mirror_traffic",), f"got {show(mirror)}; expected one deployment"))
    for name, pct in mirror.items():
        if name not in names:
            out.append(Problem(("mirror_traffic", name), f"no deployment named {name!r}; defined: {defined}"))
        elif traffic.get(name, 0) != 0:
            out.append(Problem(("mirror_traffic", name), f"{name!r} has {traffic[name]}% live traffic; "
                               "expected a deployment with 0 live traffic"))
        if not 0 <= pct <= 50:
            out.append(Problem(("mirror_traffic", name), f"got {pct}; expected a percent from 0 to 50"))
    return out


def fill_traffic(ep: Endpoint) -> list[str]:
    """Give every deployment an explicit share; a lone deployment with no traffic gets 100."""
    notes = []
    if not ep.traffic and len(ep.deployments) == 1:
        only = next(iter(ep.deployments))
        ep.traffic[only] = 100
        notes.append(f"traffic not set: the only deployment, {only!r}, gets 100%")
    for name in ep.deployments:
        ep.traffic.setdefault(name, 0)
    return notes


def batch_rules(dep: BatchDeployment) -> list[Problem]:
    out = _over_cap(dep.resources.instance_count, ("resources", "instance_count"))
    cc = dep.code_configuration
    has_script = cc is not None and bool(cc.scoring_script)
    if dep.model is None and not has_script:
        out.append(Problem(("model",), "missing; expected a model reference or a code_configuration "
                           "with a scoring_script"))
    if dep.input_mode == "files" and not has_script:
        out.append(Problem(("input_mode",), "got 'files' without a scoring script; expected "
                           "code_configuration.scoring_script (run() gets the file paths), or input_mode tabular"))
    rows = dep.mini_batch_rows
    if dep.effective_input_mode == "tabular" and rows is not None and rows < 1000:
        out.append(Problem(("mini_batch_size",), f"got {rows} rows; mini-batches under 1000 rows spend "
                           "more time in scheduling than in the model", severity="warning"))
    return out


def missing_paths(model: str | None, cc_code: Path | None, script: Path | None, loc: Loc) -> list[Problem]:
    """Local paths the spec names that do not exist (warnings for validate, errors for serve/batch)."""
    out = []
    if model is not None:
        ref = parse_model_ref(model)
        if ref.kind == "path" and not Path(model).exists():
            out.append(Problem((*loc, "model"), f"no such model folder: {model}"))
    if cc_code is not None and not cc_code.is_dir():
        out.append(Problem((*loc, "code_configuration", "code"), f"no such folder: {cc_code}"))
    elif script is not None and not script.is_file():
        out.append(Problem((*loc, "code_configuration", "scoring_script"), f"no such file: {script}"))
    return out

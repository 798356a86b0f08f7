"""Rewrite the older Azure ML forms (the seed documents) and Azure's newer shapes into the one
canonical shape of `models.py`, remembering where each value came from for error messages.

The design's alias table is the contract; each rewrite below cites its row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scorer.spec.problems import Loc, Problem, show

# Cloud placement and Azure-only features: accepted, reported once, otherwise ignored.
IGNORED_FIELDS = (
    "$schema", "description", "tags", "compute", "runs-on", "instance_type", "sku", "environment",
    "identity", "public_network_access", "egress_public_network_access", "app_insights_enabled",
    "data_collector", "model_mount_path",
)
ONLINE_DEPLOYMENT_ALIASES = ("code", "entry_script", "endpoint")
BATCH_ALIASES = ("code", "entry_script", "endpoint", "batch_settings", "settings")
SETTINGS_KEYS = (
    "max_concurrency_per_instance", "mini_batch_size", "output_action", "output_file_name",
    "retry_settings", "error_threshold", "logging_level", "environment_variables", "input_mode",
)


@dataclass
class Normalized:
    data: dict[str, Any]
    ignored: list[Loc] = field(default_factory=list)
    origin: dict[Loc, Loc] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def raw_loc(self, loc: Loc) -> Loc:
        """Where the user wrote what now sits at canonical `loc`."""
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.origin:
                return self.origin[loc[:end]] + loc[end:]
        return loc

    def move(self, dst: dict[str, Any], key: str, value: Any, dst_loc: Loc, src_loc: Loc) -> None:
        if key in dst and dst[key] != value:
            self.problems.append(Problem(
                src_loc, f"got {show(value)}, but {'.'.join(map(str, dst_loc))} is already "
                f"{show(dst[key])}; expected one value, written once"))
            return
        dst[key] = value
        self.origin[dst_loc] = src_loc

    def drop_ignored(self, data: dict[str, Any], loc: Loc) -> None:
        for key in IGNORED_FIELDS:
            if key in data:
                data.pop(key)
                if key != "$schema":  # not ignored: it tells what the file is (loader.detect)
                    self.ignored.append((*loc, key))


def _script_relative_to_code(entry_script: str, code: str, base_dir: Path) -> str:
    """`entry_script` may already include the code folder (the seed does): resolve it against the
    YAML's folder first, then against `code`."""
    code_dir = (base_dir / code).resolve()
    from_yaml = (base_dir / entry_script).resolve()
    if from_yaml.is_relative_to(code_dir) and (from_yaml.exists() or not (code_dir / entry_script).exists()):
        return str(from_yaml.relative_to(code_dir))
    return entry_script


def _code_configuration(n: Normalized, data: dict[str, Any], loc: Loc, base_dir: Path) -> None:
    if "code" not in data:
        if "entry_script" in data:
            n.problems.append(Problem((*loc, "entry_script"), f"got {show(data['entry_script'])} without "
                                      "'code'; expected 'code: DIR' beside it, or code_configuration"))
            data.pop("entry_script")
        return
    code = data.pop("code")
    cc_loc = (*loc, "code_configuration")
    if isinstance(code, dict):  # Azure's newer shape under the old name
        n.move(data, "code_configuration", code, cc_loc, (*loc, "code"))
        return
    cc: dict[str, Any] = {"code": code}
    n.origin[(*cc_loc, "code")] = (*loc, "code")
    if "entry_script" in data:
        script = data.pop("entry_script")
        if isinstance(script, str) and isinstance(code, str):
            script = _script_relative_to_code(script, code, base_dir)
        cc["scoring_script"] = script
        n.origin[(*cc_loc, "scoring_script")] = (*loc, "entry_script")
    n.move(data, "code_configuration", cc, cc_loc, (*loc, "code"))


INLINE_MODEL_KEYS = ("name", "version", "path", "type", "description", "tags", "properties")


def _model(n: Normalized, data: dict[str, Any], loc: Loc) -> None:
    """Azure's inline model `{name, version, path, type}`: the local `path` is the model (Azure
    registers it from there); without a path, `name` and `version` name a registered model."""
    model = data.get("model")
    if not isinstance(model, dict):
        return
    unknown = sorted(str(k) for k in model if k not in INLINE_MODEL_KEYS)
    path, name, version = model.get("path"), model.get("name"), model.get("version")
    if unknown:
        n.problems.append(Problem((*loc, "model", unknown[0]), f"unknown field in an inline model; expected "
                                  f"one of: {', '.join(INLINE_MODEL_KEYS)}"))
    elif path is not None:
        data["model"] = path
        n.origin[(*loc, "model")] = (*loc, "model", "path")
        return
    elif isinstance(name, str) and isinstance(version, int | str) and not isinstance(version, bool):
        data["model"] = f"azureml:{name}@latest" if version == "latest" else f"azureml:{name}:{version}"
        n.origin[(*loc, "model")] = (*loc, "model", "name")
        return
    else:
        n.problems.append(Problem((*loc, "model"), f"got {show(model)}; expected a reference string, "
                                  "{path: ...} or {name, version}"))
    data.pop("model")


def online_deployment(n: Normalized, data: dict[str, Any], loc: Loc, base_dir: Path) -> None:
    """Rewrite one online deployment in place."""
    n.drop_ignored(data, loc)
    if "endpoint" in data:
        n.move(data, "endpoint_name", data.pop("endpoint"), (*loc, "endpoint_name"), (*loc, "endpoint"))
    _model(n, data, loc)
    _code_configuration(n, data, loc, base_dir)
    scale = data.get("scale_settings")
    if isinstance(scale, dict):
        s_loc = (*loc, "scale_settings")
        if "scale_type" in scale:
            value = scale.pop("scale_type")
            mapped = {"auto": "target_utilization", "manual": "default"}.get(str(value).lower())
            if mapped is None:
                n.problems.append(Problem((*s_loc, "scale_type"), f"got {show(value)}; expected auto or manual"))
            else:
                n.move(scale, "type", mapped, (*s_loc, "type"), (*s_loc, "scale_type"))
        if isinstance(scale.get("type"), str):
            lowered = scale["type"].lower()  # Azure's SDK writes Default / TargetUtilization
            scale["type"] = "target_utilization" if lowered == "targetutilization" else lowered
        if "instance_count" in scale:
            n.move(data, "instance_count", scale.pop("instance_count"), (*loc, "instance_count"),
                   (*s_loc, "instance_count"))
    req = data.get("request_settings")
    if isinstance(req, dict) and "scoring_timeout_ms" in req:
        r_loc = (*loc, "request_settings")
        n.move(req, "request_timeout_ms", req.pop("scoring_timeout_ms"), (*r_loc, "request_timeout_ms"),
               (*r_loc, "scoring_timeout_ms"))


def endpoint(data: dict[str, Any], base_dir: Path) -> Normalized:
    n = Normalized(data)
    n.drop_ignored(data, ())
    deployments = data.get("deployments")
    if isinstance(deployments, dict):
        for name, dep in deployments.items():
            if isinstance(dep, dict):
                online_deployment(n, dep, ("deployments", name), base_dir)
    return n


def standalone_online_deployment(data: dict[str, Any], base_dir: Path) -> Normalized:
    n = Normalized(data)
    online_deployment(n, data, (), base_dir)
    return n


_BATCH_SETTINGS_MAP: dict[tuple[str, ...], tuple[str, ...]] = {
    ("scale_settings", "node_count"): ("resources", "instance_count"),
    ("scale_settings", "instance_count"): ("resources", "instance_count"),
    ("partitioning_scheme", "mini_batch_size"): ("mini_batch_size",),
    ("output_configuration", "append"): ("output_action",),
    ("output_configuration", "file_name"): ("output_file_name",),
    ("retry_settings", "timeout_in_seconds"): ("retry_settings", "timeout"),
    ("retry_settings", "max_retries"): ("retry_settings", "max_retries"),
    ("retry_settings", "timeout"): ("retry_settings", "timeout"),
}


def _put(n: Normalized, data: dict[str, Any], path: tuple[str, ...], value: Any, src: Loc) -> None:
    target = data
    for part in path[:-1]:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            n.problems.append(Problem(src, f"cannot merge into {'.'.join(path[:-1])}; expected a mapping"))
            return
    n.move(target, path[-1], value, path, src)


def batch(data: dict[str, Any], base_dir: Path) -> Normalized:
    n = Normalized(data)
    n.drop_ignored(data, ())
    if "endpoint" in data:
        n.move(data, "endpoint_name", data.pop("endpoint"), ("endpoint_name",), ("endpoint",))
    _model(n, data, ())
    _code_configuration(n, data, (), base_dir)

    settings = data.pop("settings", None)  # Azure's newer block: same keys, one level down
    if isinstance(settings, dict):
        n.drop_ignored(settings, ("settings",))
        for key, value in settings.items():
            n.move(data, key, value, (key,), ("settings", key))
    elif settings is not None:
        n.problems.append(Problem(("settings",), f"got {show(settings)}; expected a mapping"))

    legacy = data.pop("batch_settings", None)
    if isinstance(legacy, dict):
        for key, value in legacy.items():
            src = ("batch_settings", key)
            if isinstance(value, dict) and any((key, sub) in _BATCH_SETTINGS_MAP for sub in value):
                for sub, sub_value in value.items():
                    target = _BATCH_SETTINGS_MAP.get((key, sub))
                    if target is None:
                        n.problems.append(Problem((*src, sub), f"unknown field {sub!r} in batch_settings.{key}"))
                        continue
                    if target == ("output_action",):
                        mapped = {"row": "append_row", "summary": "summary_only"}.get(str(sub_value).lower())
                        if mapped is None:
                            n.problems.append(Problem((*src, sub), f"got {show(sub_value)}; expected row or summary"))
                            continue
                        sub_value = mapped
                    _put(n, data, target, sub_value, (*src, sub))
            else:
                _put(n, data, (key,), value, src)
    elif legacy is not None:
        n.problems.append(Problem(("batch_settings",), f"got {show(legacy)}; expected a mapping"))
    if isinstance(data.get("output_action"), str):
        data["output_action"] = data["output_action"].lower()
    return n

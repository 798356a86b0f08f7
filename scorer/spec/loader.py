"""Read endpoint and deployment files into validated specs, collecting every problem at once."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from scorer.spec import aliases
from scorer.spec.models import BatchDeployment, BatchEndpoint, Endpoint, OnlineDeployment
from scorer.spec.problems import Loc, Problem, SpecError, show
from scorer.spec.rules import (
    batch_rules,
    deployment_rules,
    endpoint_rules,
    fill_traffic,
    missing_paths,
    traffic_rules,
)
from scorer.spec.yamlfile import YamlDoc, read_yaml

Kind = Literal["endpoint", "online_deployment", "batch_deployment", "batch_endpoint"]

# Batch settings; `resources` is not one: Azure's Kubernetes online deployments carry it too.
BATCH_KEYS = {
    "batch_settings", "settings", "mini_batch_size", "output_action", "output_file_name", "error_threshold",
    "retry_settings", "max_concurrency_per_instance", "input_mode",
}
# Keys only a deployment has: a file with one of them (and no `deployments`) is a deployment,
# even without `endpoint_name` (Azure takes that from `--endpoint-name`).
DEPLOYMENT_KEYS = {
    "model", "code_configuration", "code", "entry_script", "instance_count", "scale_settings", "request_settings",
    "batching", "liveness_probe", "readiness_probe", "environment_variables", "resources", "endpoint_name",
    "endpoint",
}
# `$schema` file names (Azure's, case-insensitive, and scorer's own configs/schema/*.json) -> kind.
SCHEMA_KINDS: dict[str, Kind] = {
    "managedonlineendpoint": "endpoint", "kubernetesonlineendpoint": "endpoint", "endpoint": "endpoint",
    "managedonlinedeployment": "online_deployment", "kubernetesonlinedeployment": "online_deployment",
    "deployment": "online_deployment",
    "batchendpoint": "batch_endpoint",
    "modelbatchdeployment": "batch_deployment", "batchdeployment": "batch_deployment", "batch": "batch_deployment",
    "pipelinecomponentbatchdeployment": "batch_deployment",  # refused in load_batch, in one line
}
_ALIAS_KEYS: dict[type[BaseModel], tuple[str, ...]] = {
    OnlineDeployment: aliases.ONLINE_DEPLOYMENT_ALIASES + aliases.IGNORED_FIELDS,
    Endpoint: aliases.IGNORED_FIELDS,
    BatchDeployment: aliases.BATCH_ALIASES + aliases.IGNORED_FIELDS,
    BatchEndpoint: aliases.IGNORED_FIELDS,
}


def schema_kind(url: Any) -> Kind | None:
    """The kind a `$schema` URL or path names, or None when it names none scorer knows."""
    if not isinstance(url, str) or not url.strip():
        return None
    name = url.strip().rstrip("/").rsplit("/", 1)[-1].lower()
    for suffix in (".schema.json", ".json"):
        name = name.removesuffix(suffix)
    return SCHEMA_KINDS.get(name)


def _by_content(data: dict[str, Any]) -> Kind:
    kind = str(data.get("type", "")).lower()
    resources = data.get("resources")
    if kind in ("batch", "model", "pipeline") or BATCH_KEYS & set(data) or (
            isinstance(resources, dict) and "instance_count" in resources):
        return "batch_deployment"
    if kind in ("managed", "kubernetes") or "endpoint_name" in data or "endpoint" in data:
        return "online_deployment"
    if {"deployments", "traffic", "mirror_traffic", "auth_mode"} & set(data):
        return "endpoint"
    return "online_deployment" if DEPLOYMENT_KEYS & set(data) else "endpoint"


def detect(data: dict[str, Any]) -> tuple[Kind, str | None]:
    """What a file is, and a warning when its `$schema` names nothing scorer knows."""
    if "$schema" not in data:
        return _by_content(data), None
    kind = schema_kind(data["$schema"])
    if kind is not None:
        return kind, None
    guess = _by_content(data)
    return guess, (f"unknown $schema {data['$schema']!r}; read as {guess.replace('_', ' ')} by its content")


def detect_kind(data: dict[str, Any]) -> Kind:
    """`$schema` decides when it names a known schema; otherwise the content: `type: batch|model` or
    batch settings make a batch deployment, `type: managed|kubernetes`, `endpoint_name` or deployment
    keys an online deployment, anything else an endpoint."""
    return detect(data)[0]


S = TypeVar("S", Endpoint, OnlineDeployment, BatchDeployment, BatchEndpoint)


@dataclass
class Loaded(Generic[S]):
    """A validated document and what the user should hear about it."""

    kind: Kind
    files: list[Path]
    spec: S
    warnings: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ignored(self) -> list[Problem]:
        return [w for w in self.warnings if w.message.startswith("ignored (")]


@dataclass
class _Source:
    doc: YamlDoc
    norm: aliases.Normalized
    prefix: Loc = ()  # where this file's root sits in the canonical endpoint

    def problem(self, loc: Loc, message: str, severity: Literal["error", "warning"] = "error") -> Problem:
        own = loc[len(self.prefix):] if loc[: len(self.prefix)] == self.prefix else loc
        raw = self.norm.raw_loc(own)
        return Problem(raw, message, file=self.doc.path, line=self.doc.line_of(raw), severity=severity)


def _unwrap(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            inner = _unwrap(arg)
            if isinstance(inner, type) and issubclass(inner, BaseModel) or typing.get_origin(inner) is dict:
                return inner
    return tp


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    current: Any = root
    i = 0
    while i < len(loc):
        if isinstance(current, type) and issubclass(current, BaseModel):
            f = current.model_fields.get(str(loc[i]))
            if f is None:
                return None
            current = _unwrap(f.annotation)
            i += 1
        elif typing.get_origin(current) is dict:
            current = _unwrap(typing.get_args(current)[1])
            i += 1
        else:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _exists(data: Any, loc: Loc) -> bool:
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
            continue
        if isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
            continue
        return False
    return True


def _message(err: Any, root: type[BaseModel], loc: Loc) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        model = _model_at(root, loc[:-1])
        allowed = sorted(model.model_fields) if model else []
        candidates = allowed + list(_ALIAS_KEYS.get(model, ())) if model else []
        near = difflib.get_close_matches(str(loc[-1]), candidates, n=1, cutoff=0.6)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        return f"unknown field{hint}; expected one of: {', '.join(allowed)}"
    if kind == "missing":
        return "missing; expected a value (this field is required)"
    msg = err["msg"].removeprefix("Value error, ")
    msg = msg.replace("Input should be ", "expected ").replace("Input should ", "expected to ")
    if msg.startswith("expected"):
        return f"got {show(err.get('input'))}; {msg}"
    return f"got {show(err.get('input'))}; {msg[0].lower()}{msg[1:]}"


def _validation_problems(exc: ValidationError, root: type[BaseModel], data: dict[str, Any],
                         locate: Any) -> list[Problem]:
    seen: dict[Loc, Problem] = {}
    for err in exc.errors():
        loc: Loc = tuple(err["loc"])
        if err["type"] not in ("missing", "extra_forbidden"):
            while loc and not _exists(data, loc):  # drop pydantic's union-member tags
                loc = loc[:-1]
        if loc not in seen:
            seen[loc] = locate(loc, _message(err, root, loc))
    return list(seen.values())


def _validate(cls: type[Any], data: dict[str, Any], base_dir: Path, locate: Any) -> tuple[Any, list[Problem]]:
    try:
        return cls.model_validate(data, context={"base_dir": base_dir}), []
    except ValidationError as exc:
        return None, _validation_problems(exc, cls, data, locate)


def _source(path: Path, kind: Kind, doc: YamlDoc | None = None) -> _Source:
    doc = doc if doc is not None else read_yaml(path)
    base = path.resolve().parent
    if kind == "endpoint":
        norm = aliases.endpoint(doc.data, base)
    elif kind == "online_deployment":
        norm = aliases.standalone_online_deployment(doc.data, base)
    elif kind == "batch_endpoint":
        norm = aliases.Normalized(doc.data)
        norm.drop_ignored(doc.data, ())
    else:
        norm = aliases.batch(doc.data, base)
    return _Source(doc, norm)


def _ignored(src: _Source) -> list[Problem]:
    return [Problem(loc, "ignored (Azure-only field, not used by scorer)", file=src.doc.path, line=src.doc.line_of(loc),
                    severity="warning") for loc in src.norm.ignored]


def _path_problems(items: Iterable[tuple[OnlineDeployment | BatchDeployment, Loc]]) -> list[tuple[Loc, str]]:
    out = []
    for dep, loc in items:
        cc = dep.code_configuration
        for p in missing_paths(dep.model, cc.code if cc else None, cc.script_path if cc else None, loc):
            out.append((p.loc, p.message))
    return out


def load_endpoint(
    endpoint_file: Path, deployment_files: Sequence[Path] = (), *, check_paths: bool = True,
    require_deployments: bool = True,
) -> Loaded[Endpoint]:
    """An endpoint plus optional deployment files, merged and checked as one endpoint.

    `serve` needs at least one deployment; `validate` checks an endpoint file alone too (Azure's
    endpoint files never hold deployments)."""
    return _load_endpoint(Path(endpoint_file), deployment_files, check_paths, None,
                          require_deployments=require_deployments)


def _load_endpoint(endpoint_file: Path, deployment_files: Sequence[Path], check_paths: bool,
                   doc: YamlDoc | None, dep_docs: Sequence[YamlDoc] = (), *,
                   require_deployments: bool = True) -> Loaded[Endpoint]:
    src = _source(endpoint_file, "endpoint", doc)
    errors: list[Problem] = [src.problem(p.loc, p.message) for p in src.norm.problems]
    warnings = _ignored(src)
    ep, errs = _validate(Endpoint, src.norm.data, src.doc.path.resolve().parent, src.problem)
    errors += errs
    owners: dict[str, _Source] = {}
    for i, path in enumerate(deployment_files):
        dsrc = _source(Path(path), "online_deployment", dep_docs[i] if i < len(dep_docs) else None)
        errors += [dsrc.problem(p.loc, p.message) for p in dsrc.norm.problems]
        warnings += _ignored(dsrc)
        dep, errs = _validate(OnlineDeployment, dsrc.norm.data, dsrc.doc.path.resolve().parent, dsrc.problem)
        errors += errs
        if dep is None:
            continue
        if dep.name is None:
            errors.append(dsrc.problem(("name",), "missing; expected the deployment's name in a deployment file"))
            continue
        dsrc.prefix = ("deployments", dep.name)
        if ep is not None:
            if dep.name in ep.deployments or dep.name in owners:
                errors.append(dsrc.problem(("deployments", dep.name, "name"),
                                           f"got {dep.name!r}; expected a deployment name not defined twice"))
                continue
            ep.deployments[dep.name] = dep
        owners[dep.name] = dsrc
    alone = not require_deployments and not deployment_files  # an endpoint file on its own
    if ep is None:
        raw = src.norm.data
        names = list(raw.get("deployments") or {}) if isinstance(raw.get("deployments"), dict) else []
        names += [n for n in owners if n not in names]
        if names or not alone:
            rules = traffic_rules(raw.get("traffic"), raw.get("mirror_traffic"), names)
            errors += [src.problem(p.loc, p.message) for p in rules]
        raise SpecError(errors)

    def locate(loc: Loc, message: str, severity: Literal["error", "warning"] = "error") -> Problem:
        owner = owners.get(str(loc[1])) if len(loc) > 1 and loc[0] == "deployments" else None
        return (owner or src).problem(loc, message, severity)

    for p in endpoint_rules(ep, require_deployments=not (alone and not ep.deployments)):
        (errors if p.severity == "error" else warnings).append(locate(p.loc, p.message, p.severity))
    for loc, message in _path_problems((d, ("deployments", n)) for n, d in ep.deployments.items()):
        (errors if check_paths else warnings).append(locate(loc, message, "error" if check_paths else "warning"))
    if errors:
        raise SpecError(errors)
    notes = fill_traffic(ep)
    files = [src.doc.path, *(s.doc.path for s in owners.values())]
    return Loaded("endpoint", files, ep, warnings, notes)


def load_online_deployment(path: Path, *, check_paths: bool = True) -> Loaded[OnlineDeployment]:
    return _load_online_deployment(Path(path), check_paths, None)


def _load_online_deployment(path: Path, check_paths: bool, doc: YamlDoc | None) -> Loaded[OnlineDeployment]:
    src = _source(path, "online_deployment", doc)
    errors = [src.problem(p.loc, p.message) for p in src.norm.problems]
    dep, errs = _validate(OnlineDeployment, src.norm.data, src.doc.path.resolve().parent, src.problem)
    errors += errs
    warnings = _ignored(src)
    if dep is not None:
        for p in deployment_rules(dep, ()):
            (errors if p.severity == "error" else warnings).append(src.problem(p.loc, p.message, p.severity))
        for loc, message in _path_problems([(dep, ())]):
            (errors if check_paths else warnings).append(
                src.problem(loc, message, "error" if check_paths else "warning"))
    if errors:
        raise SpecError(errors)
    return Loaded("online_deployment", [src.doc.path], dep, warnings)


def load_batch(path: Path, *, check_paths: bool = True) -> Loaded[BatchDeployment]:
    return _load_batch(Path(path), check_paths, None)


def _pipeline_refusal(doc: YamlDoc) -> SpecError | None:
    """Azure's pipeline-component batch deployments run an Azure ML pipeline: refused in one line."""
    data = doc.data
    named = str(data.get("$schema", "")).lower().rstrip("/").endswith("pipelinecomponentbatchdeployment.schema.json")
    if not (named or str(data.get("type", "")).lower() == "pipeline" or "component" in data
            or "job_definition" in data):
        return None
    loc: Loc = ("type",) if "type" in data else ("component",) if "component" in data else ()
    return SpecError([Problem(loc, "a pipeline-component batch deployment (an Azure ML pipeline); scorer runs "
                              "model batch deployments: type: model with a model or a scoring script",
                              file=doc.path, line=doc.line_of(loc))])


def _load_batch(path: Path, check_paths: bool, doc: YamlDoc | None) -> Loaded[BatchDeployment]:
    doc = doc if doc is not None else read_yaml(path)
    if (refusal := _pipeline_refusal(doc)) is not None:
        raise refusal
    src = _source(path, "batch_deployment", doc)
    errors = [src.problem(p.loc, p.message) for p in src.norm.problems]
    dep, errs = _validate(BatchDeployment, src.norm.data, src.doc.path.resolve().parent, src.problem)
    errors += errs
    warnings = _ignored(src)
    if dep is not None:
        for p in batch_rules(dep):
            (errors if p.severity == "error" else warnings).append(src.problem(p.loc, p.message, p.severity))
        for loc, message in _path_problems([(dep, ())]):
            (errors if check_paths else warnings).append(
                src.problem(loc, message, "error" if check_paths else "warning"))
    if errors:
        raise SpecError(errors)
    return Loaded("batch_deployment", [src.doc.path], dep, warnings)


def load_batch_endpoint(path: Path, doc: YamlDoc | None = None) -> Loaded[BatchEndpoint]:
    """Azure's batch endpoint file: checked on its own; its deployments run one file at a time."""
    src = _source(Path(path), "batch_endpoint", doc)
    errors = [src.problem(p.loc, p.message) for p in src.norm.problems]
    ep, errs = _validate(BatchEndpoint, src.norm.data, src.doc.path.resolve().parent, src.problem)
    errors += errs
    if errors or ep is None:
        raise SpecError(errors)
    return Loaded("batch_endpoint", [src.doc.path], ep, _ignored(src))


def load_doc(doc: YamlDoc, *, check_paths: bool = False, deployments: Sequence[YamlDoc] = (),
             kind: Kind | None = None) -> Loaded[Any]:
    """A file already read, as what it is; an endpoint with the deployment files read with it.
    (`scorer validate` reads each file once and groups them the way `serve` does.)"""
    detected, unknown_schema = detect(doc.data)
    kind = kind or detected
    if kind == "batch_deployment":
        loaded: Loaded[Any] = _load_batch(doc.path, check_paths, doc)
    elif kind == "online_deployment":
        loaded = _load_online_deployment(doc.path, check_paths, doc)
    elif kind == "batch_endpoint":
        loaded = load_batch_endpoint(doc.path, doc)
    else:
        loaded = _load_endpoint(doc.path, [d.path for d in deployments], check_paths, doc, deployments,
                                require_deployments=False)
    if unknown_schema:
        loaded.warnings.insert(0, Problem(("$schema",), unknown_schema, file=doc.path,
                                          line=doc.line_of(("$schema",)), severity="warning"))
    return loaded


def load_any(path: Path, *, check_paths: bool = False) -> Loaded[Any]:
    """Load one file as whatever kind its content says it is (for `scorer validate`)."""
    return load_doc(read_yaml(Path(path)), check_paths=check_paths)  # parsed once

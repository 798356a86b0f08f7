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
from scorer.spec.models import BatchDeployment, Endpoint, OnlineDeployment
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

Kind = Literal["endpoint", "online_deployment", "batch_deployment"]

BATCH_KEYS = {
    "batch_settings", "settings", "mini_batch_size", "output_action", "output_file_name", "error_threshold",
    "retry_settings", "max_concurrency_per_instance", "resources", "input_mode",
}
_ALIAS_KEYS: dict[type[BaseModel], tuple[str, ...]] = {
    OnlineDeployment: aliases.ONLINE_DEPLOYMENT_ALIASES + aliases.IGNORED_FIELDS,
    Endpoint: aliases.IGNORED_FIELDS,
    BatchDeployment: aliases.BATCH_ALIASES + aliases.IGNORED_FIELDS,
}


def detect_kind(data: dict[str, Any]) -> Kind:
    """The design's rule: batch by `type` or batch settings; online deployment by `endpoint_name`."""
    if str(data.get("type", "")).lower() == "batch" or BATCH_KEYS & set(data):
        return "batch_deployment"
    if "endpoint_name" in data or "endpoint" in data:
        return "online_deployment"
    return "endpoint"


S = TypeVar("S", Endpoint, OnlineDeployment, BatchDeployment)


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


def _source(path: Path, kind: Kind) -> _Source:
    doc = read_yaml(path)
    base = path.resolve().parent
    if kind == "endpoint":
        norm = aliases.endpoint(doc.data, base)
    elif kind == "online_deployment":
        norm = aliases.standalone_online_deployment(doc.data, base)
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
    endpoint_file: Path, deployment_files: Sequence[Path] = (), *, check_paths: bool = True
) -> Loaded[Endpoint]:
    """An endpoint plus optional deployment files, merged and checked as one endpoint."""
    src = _source(Path(endpoint_file), "endpoint")
    errors: list[Problem] = [src.problem(p.loc, p.message) for p in src.norm.problems]
    warnings = _ignored(src)
    ep, errs = _validate(Endpoint, src.norm.data, src.doc.path.resolve().parent, src.problem)
    errors += errs
    owners: dict[str, _Source] = {}
    for path in deployment_files:
        dsrc = _source(Path(path), "online_deployment")
        errors += [dsrc.problem(p.loc, p.message) for p in dsrc.norm.problems]
        warnings += _ignored(dsrc)
        dep, errs = _validate(OnlineDeployment, dsrc.norm.data, dsrc.doc.path.resolve().parent, dsrc.problem)
        errors += errs
        if dep is None:
            continue
        if dep.name is None:
            errors.append(dsrc.problem(("name",), "missing; expected the deployment's name in a deployment file"))
            continue
        if dep.endpoint_name is None:
            errors.append(dsrc.problem(("endpoint_name",), "missing; expected the endpoint this deployment belongs to"))
        dsrc.prefix = ("deployments", dep.name)
        if ep is not None:
            if dep.name in ep.deployments or dep.name in owners:
                errors.append(dsrc.problem(("deployments", dep.name, "name"),
                                           f"got {dep.name!r}; expected a deployment name not defined twice"))
                continue
            ep.deployments[dep.name] = dep
        owners[dep.name] = dsrc
    if ep is None:
        raw = src.norm.data
        names = list(raw.get("deployments") or {}) if isinstance(raw.get("deployments"), dict) else []
        names += [n for n in owners if n not in names]
        rules = traffic_rules(raw.get("traffic"), raw.get("mirror_traffic"), names)
        errors += [src.problem(p.loc, p.message) for p in rules]
        raise SpecError(errors)

    def locate(loc: Loc, message: str, severity: Literal["error", "warning"] = "error") -> Problem:
        owner = owners.get(str(loc[1])) if len(loc) > 1 and loc[0] == "deployments" else None
        return (owner or src).problem(loc, message, severity)

    for p in endpoint_rules(ep):
        (errors if p.severity == "error" else warnings).append(locate(p.loc, p.message, p.severity))
    for loc, message in _path_problems((d, ("deployments", n)) for n, d in ep.deployments.items()):
        (errors if check_paths else warnings).append(locate(loc, message, "error" if check_paths else "warning"))
    if errors:
        raise SpecError(errors)
    notes = fill_traffic(ep)
    files = [src.doc.path, *(s.doc.path for s in owners.values())]
    return Loaded("endpoint", files, ep, warnings, notes)


def load_online_deployment(path: Path, *, check_paths: bool = True) -> Loaded[OnlineDeployment]:
    src = _source(Path(path), "online_deployment")
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
    src = _source(Path(path), "batch_deployment")
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


def load_any(path: Path, *, check_paths: bool = False) -> Loaded[Any]:
    """Load one file as whatever kind its content says it is (for `scorer validate`)."""
    kind = detect_kind(read_yaml(Path(path)).data)
    if kind == "batch_deployment":
        return load_batch(path, check_paths=check_paths)
    if kind == "online_deployment":
        return load_online_deployment(path, check_paths=check_paths)
    return load_endpoint(path, check_paths=check_paths)

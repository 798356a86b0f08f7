"""`scorer validate`'s model check: look every model a spec names up in the registry (nothing is
downloaded) and report every miss with a did-you-mean, so a typo like `@bleu` fails validate instead of
`serve`. URIs only MLflow can fetch (s3://, gs://, dbfs:/, ...) are left to `serve`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scorer.models.lookup import ModelNotFound, Registry, first_line
from scorer.models.reference import parse_model_ref

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class ReferenceProblem:
    """One model that does not resolve: where the spec names it, and why, in one line."""

    loc: Loc
    message: str


def spec_models(spec: Any) -> dict[Loc, str]:
    """The models a validated spec names, by location: `deployments.NAME.model` or `model`."""
    deployments = getattr(spec, "deployments", None)
    if isinstance(deployments, Mapping):
        return {("deployments", str(n), "model"): d.model for n, d in deployments.items() if d.model}
    model = getattr(spec, "model", None)
    return {("model",): model} if model else {}


def _check(raw: str, registry: Registry | None) -> tuple[str | None, Registry | None]:
    """(problem or None, the registry client, created on first need)."""
    try:
        ref = parse_model_ref(raw)
    except ValueError as exc:
        return str(exc), registry
    if ref.kind == "path":
        path = Path(ref.path or "").expanduser()
        if path.is_dir() and not (path / "MLmodel").is_file():  # a missing folder is the spec's warning
            return f"model {raw}: no MLflow model at {path} (folder has no MLmodel file)", registry
        return None, registry
    if ref.kind == "uri" and ref.name is None:
        return None, registry
    try:
        registry = registry or Registry()
        if ref.kind == "runs":
            registry.run(ref, check_files=True)
        elif ref.kind == "logged":
            registry.logged(ref)
        elif ref.kind == "uri":
            registry.stage_version(ref)
        else:
            registry.model_version(ref)
    except ModelNotFound as exc:
        return str(exc), registry
    except Exception as exc:  # an unreachable registry: one line, never a traceback
        return f"model {raw}: could not look it up ({first_line(exc)})", registry
    return None, registry


def check_references(models: Mapping[Loc, str]) -> list[ReferenceProblem]:
    """Every model that would not resolve at `serve` or `batch`, each with a did-you-mean where one fits."""
    registry: Registry | None = None
    out = []
    for loc, raw in models.items():
        problem, registry = _check(raw, registry)
        if problem:
            out.append(ReferenceProblem(loc, problem))
    return out


def reference_problems(file: Path, spec: Any) -> list[Any]:
    """`check_references` for a validated spec read from `file`, as `scorer.spec.Problem`s with lines."""
    from scorer.spec.problems import Problem
    from scorer.spec.yamlfile import read_yaml

    found = check_references(spec_models(spec))
    if not found:
        return []
    try:
        doc = read_yaml(file)
        line_of = doc.line_of
    except Exception:  # the file was read a moment ago; without it the lines are only missing
        def line_of(loc: Loc) -> int | None:
            return None
    return [Problem(p.loc, p.message, file=file, line=line_of(p.loc)) for p in found]

"""MLflow model references, registry resolution and loading, shared by serving and batch."""

from scorer.models.check import ReferenceProblem, check_references, reference_problems, spec_models
from scorer.models.fingerprint import content_version
from scorer.models.loading import LoadedModel, load_input_example, load_model, requirement_mismatches
from scorer.models.reference import FORMS, ModelRef, parse_model_ref
from scorer.models.registry import ModelNotFound, ResolvedModel, resolve

__all__ = [
    "FORMS", "LoadedModel", "ModelNotFound", "ModelRef", "ReferenceProblem", "ResolvedModel", "check_references",
    "content_version", "load_input_example", "load_model", "parse_model_ref", "reference_problems",
    "requirement_mismatches", "resolve", "spec_models",
]

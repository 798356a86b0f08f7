"""MLflow model references, registry resolution and loading, shared by serving and batch."""

from scorer.models.loading import LoadedModel, load_input_example, load_model, requirement_mismatches
from scorer.models.reference import FORMS, ModelRef, parse_model_ref
from scorer.models.registry import ModelNotFound, ResolvedModel, resolve

__all__ = [
    "FORMS", "LoadedModel", "ModelNotFound", "ModelRef", "ResolvedModel", "load_input_example", "load_model",
    "parse_model_ref", "requirement_mismatches", "resolve",
]

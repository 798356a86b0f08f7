"""The endpoint YAML contract: pydantic models, aliases, rules and file loading."""

from scorer.spec.loader import Loaded, detect_kind, load_any, load_batch, load_endpoint, load_online_deployment
from scorer.spec.models import (
    BatchDeployment,
    Batching,
    CodeConfiguration,
    Endpoint,
    OnlineDeployment,
    Probe,
    RequestSettings,
    RetrySettings,
    ScaleSettings,
)
from scorer.spec.problems import Problem, SpecError

__all__ = [
    "BatchDeployment", "Batching", "CodeConfiguration", "Endpoint", "Loaded", "OnlineDeployment", "Probe",
    "Problem", "RequestSettings", "RetrySettings", "ScaleSettings", "SpecError", "detect_kind", "load_any",
    "load_batch", "load_endpoint", "load_online_deployment",
]

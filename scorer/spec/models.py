"""The endpoint YAML as pydantic models: the canonical shapes after aliases are applied.

Aliases and cloud-only fields are handled in `aliases.py` before these models see the data,
so each field has exactly one name here. Cross-field rules live in `rules.py`, where they can
name the exact field at fault.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from scorer.models.reference import parse_model_ref
from scorer.spec.limits import MAX_INSTANCES
from scorer.spec.server import ServerSettings

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
# Replica counts: `rules.py` enforces the cap (knob SCORER_MAX_INSTANCES); editors see the default.
Replicas = Annotated[int, Field(gt=0, json_schema_extra={"maximum": MAX_INSTANCES.default})]

AUTH_MODES = ("key", "aml_token", "aad_token", "token", "none")
HOOK_PATTERN = re.compile(r"^(local|ray|command:.+|webhook:https?://.+|python:[\w.]+:[\w.]+)$")
SIZE_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]i?B|B)\s*$", re.IGNORECASE)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class Strict(BaseModel):
    # strict: no "2" -> 2 or true -> 1, so that `scorer validate` and the JSON Schema agree
    model_config = ConfigDict(extra="forbid", validate_default=True, strict=True)


def _base_dir(info: ValidationInfo) -> Path:
    ctx = info.context or {}
    return Path(ctx.get("base_dir", "."))


def _resolve(value: Any, info: ValidationInfo) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (_base_dir(info) / path).resolve()


def _model_ref(value: Any, info: ValidationInfo) -> Any:
    if value is None:
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a model reference string")
    ref = parse_model_ref(value.strip())  # raises ValueError with the accepted forms
    return str(_resolve(ref.path, info)) if ref.kind == "path" else value.strip()


class CodeConfiguration(Strict):
    code: Path
    scoring_script: str | None = None

    @field_validator("code", mode="before")
    @classmethod
    def _code(cls, v: Any, info: ValidationInfo) -> Any:
        return _resolve(v, info) if isinstance(v, str | Path) else v

    @property
    def script_path(self) -> Path | None:
        return self.code / self.scoring_script if self.scoring_script else None


class ScaleSettings(Strict):
    type: Literal["default", "target_utilization"] = "default"
    min_instances: PositiveInt = 1
    max_instances: Replicas | None = None
    target_utilization_percentage: Annotated[int, Field(gt=0, le=100)] = 70
    polling_interval: PositiveFloat = 10
    scale_down_delay: Annotated[float, Field(ge=0)] = 300
    hook: Annotated[str, Field(json_schema_extra={"pattern": HOOK_PATTERN.pattern})] = "local"

    @field_validator("hook")
    @classmethod
    def _hook(cls, v: str) -> str:
        if not HOOK_PATTERN.match(v):
            raise ValueError("expected local, ray, command:CMD, webhook:http(s)://URL or python:MODULE:CALLABLE")
        return v


class RequestSettings(Strict):
    request_timeout_ms: PositiveInt = 5000
    max_concurrent_requests_per_instance: PositiveInt = 1
    max_queue_wait_ms: PositiveInt = 500
    # scorer's own: a replica still running a request this long after its deadline is killed and
    # restarted (one stuck request must not hold a replica for good)
    kill_after_ms: PositiveInt = 1000


class Batching(Strict):
    max_batch_size: PositiveInt = 1
    max_batch_wait_ms: Annotated[float, Field(ge=0)] = 2


class Probe(Strict):
    initial_delay: Annotated[float, Field(ge=0)] = 10
    period: PositiveFloat = 10
    timeout: PositiveFloat = 2
    success_threshold: PositiveInt = 1
    failure_threshold: PositiveInt = 3


def _env_values(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): ("" if val is None else str(val).lower() if isinstance(val, bool)
                         else val if isinstance(val, list | dict) else str(val))  # lists and maps: refused
                for k, val in v.items()}
    return v


Quantity = str | int | float


class KubernetesResources(Strict):
    """Azure's Kubernetes online deployments: `{requests: {cpu, memory}, limits: {...}}`."""

    requests: dict[str, Quantity] = Field(default_factory=dict)
    limits: dict[str, Quantity] = Field(default_factory=dict)


class OnlineDeployment(Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)] | None = None
    endpoint_name: str | None = None
    type: Literal["managed", "kubernetes"] | None = None  # Azure's; both run the same way here
    model: str | None = None
    code_configuration: CodeConfiguration | None = None
    instance_count: Replicas = 1
    resources: KubernetesResources | None = None
    scale_settings: ScaleSettings = Field(default_factory=ScaleSettings)
    request_settings: RequestSettings = Field(default_factory=RequestSettings)
    batching: Batching = Field(default_factory=Batching)
    liveness_probe: Probe = Field(default_factory=lambda: Probe(failure_threshold=30))
    readiness_probe: Probe = Field(default_factory=Probe)
    environment_variables: dict[str, str] = Field(default_factory=dict)
    # scorer's own: where replicas run; `local` (forkserver children, or Ray actors under
    # `scorer serve --address`), `ray` (Ray actors; needs --address) or a ReplicaHandle factory
    replica_handle: Annotated[str, Field(pattern=r"^(local|ray|python:[A-Za-z_][\w.]*:[A-Za-z_]\w*)$")] = "local"
    # scorer's own: a replica reached over the network that answers nothing (not even a ping) this
    # long is taken as lost; its in-flight requests are retried once on another replica
    replica_unresponsive_ms: PositiveInt = 1000

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, v: Any, info: ValidationInfo) -> Any:
        return _model_ref(v, info)

    @field_validator("environment_variables", mode="before")
    @classmethod
    def _env(cls, v: Any) -> Any:
        return _env_values(v)

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    @property
    def max_instances(self) -> int:
        s = self.scale_settings
        return s.max_instances if s.max_instances is not None else max(self.instance_count, s.min_instances)


class Endpoint(Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    auth_mode: Literal["key", "aml_token", "aad_token", "token", "none"] = "key"
    traffic: dict[str, int] = Field(default_factory=dict)
    mirror_traffic: dict[str, int] = Field(default_factory=dict)
    server: ServerSettings = Field(default_factory=ServerSettings)
    deployments: dict[str, OnlineDeployment] = Field(default_factory=dict)

    @field_validator("auth_mode", mode="before")
    @classmethod
    def _auth(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    @property
    def uses_tokens(self) -> bool:
        return self.auth_mode in ("aml_token", "aad_token", "token")


class BatchEndpointDefaults(Strict):
    deployment_name: str | None = None


class BatchEndpoint(Strict):
    """Azure's batch endpoint file: a name for batch deployments to share; scorer runs each
    deployment file on its own (`scorer batch DEPLOYMENT.yaml`)."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    auth_mode: Literal["key", "aml_token", "aad_token", "token", "none"] = "aad_token"
    defaults: BatchEndpointDefaults = Field(default_factory=BatchEndpointDefaults)

    @field_validator("auth_mode", mode="before")
    @classmethod
    def _auth(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v


class Resources(Strict):
    instance_count: Replicas = 1


class RetrySettings(Strict):
    max_retries: Annotated[int, Field(ge=0)] = 3
    timeout: PositiveFloat = 30


class TextInput(Strict):
    """Batch: how CSV / JSON Lines inputs split into rows (docs/batch.md)."""

    newlines_in_values: bool = False  # CSV: quoted fields may span lines (off: a row is one line)
    max_line_bytes: PositiveInt | str = 1048576  # a longer row fails on its own; or a size like "4MB"

    @field_validator("max_line_bytes")
    @classmethod
    def _max_line(cls, v: int | str) -> int | str:
        return v if isinstance(v, int) else parse_size(v)


def parse_size(text: str) -> int:
    """'64MB' -> bytes. Decimal (MB) and binary (MiB) units are both powers of 1024, as Azure does."""
    m = SIZE_PATTERN.match(text)
    if not m:
        raise ValueError("expected a number of rows or a size like '64MB'")
    unit = m.group(2).upper().replace("I", "")
    scale = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}[unit]
    return int(float(m.group(1)) * scale)


class BatchDeployment(Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    endpoint_name: str | None = None
    type: Literal["batch"] = "batch"
    model: str | None = None
    code_configuration: CodeConfiguration | None = None
    input_mode: Literal["tabular", "files"] | None = None
    resources: Resources = Field(default_factory=Resources)
    max_concurrency_per_instance: PositiveInt = 1
    mini_batch_size: PositiveInt | str | None = None
    output_action: Literal["append_row", "summary_only"] = "append_row"
    output_file_name: str = "predictions.csv"
    retry_settings: RetrySettings = Field(default_factory=RetrySettings)
    text_input: TextInput = Field(default_factory=TextInput)
    error_threshold: Annotated[int, Field(ge=-1)] = -1
    logging_level: Literal["debug", "info", "warning"] = "info"
    environment_variables: dict[str, str] = Field(default_factory=dict)

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, v: Any, info: ValidationInfo) -> Any:
        return _model_ref(v, info)

    @field_validator("environment_variables", mode="before")
    @classmethod
    def _env(cls, v: Any) -> Any:
        return _env_values(v)

    @field_validator("type", "logging_level", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    @field_validator("type", mode="before")
    @classmethod
    def _model_type(cls, v: Any) -> Any:
        # Azure's modelBatchDeployment writes `type: model`
        return "batch" if isinstance(v, str) and v.lower() == "model" else v

    @field_validator("mini_batch_size")
    @classmethod
    def _size(cls, v: int | str | None) -> int | str | None:
        if isinstance(v, str):
            if v.strip().isdigit():
                return int(v)
            parse_size(v)
        return v

    @field_validator("output_file_name")
    @classmethod
    def _output(cls, v: str) -> str:
        if Path(v).name != v or not v.lower().endswith((".csv", ".parquet")):
            raise ValueError("expected a file name ending in .csv or .parquet")
        return v

    @property
    def effective_input_mode(self) -> Literal["tabular", "files"]:
        if self.input_mode:
            return self.input_mode
        has_script = self.code_configuration is not None and self.code_configuration.scoring_script
        return "files" if has_script else "tabular"

    @property
    def mini_batch_rows(self) -> int | None:
        """Rows (tabular) or files (files mode) per mini-batch; None when given as a byte size."""
        if isinstance(self.mini_batch_size, int):
            return self.mini_batch_size
        if self.mini_batch_size is None:
            return 10000 if self.effective_input_mode == "tabular" else 10
        return None

    @property
    def mini_batch_bytes(self) -> int | None:
        return parse_size(self.mini_batch_size) if isinstance(self.mini_batch_size, str) else None

    @property
    def output_format(self) -> Literal["csv", "parquet"]:
        return "parquet" if self.output_file_name.lower().endswith(".parquet") else "csv"

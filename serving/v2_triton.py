"""The Triton extensions a tritonclient user calls first: model configuration, statistics and the
repository index, answered from what the router knows (signature, version, counts it keeps)."""

from __future__ import annotations

from typing import Any

from serving.protocol.v2 import Signature

# V2 datatypes -> Triton's model-config data types
_CONFIG_TYPES = {"BYTES": "TYPE_STRING", "BOOL": "TYPE_BOOL"}


def config(name: str, version: str, sig: Signature) -> dict[str, Any]:
    """Triton's model configuration (JSON form) of an MLflow model: no batching dimension, 1-D columns."""
    def tensors(cols: list[tuple[str, str]]) -> list[dict[str, Any]]:
        return [{"name": n, "data_type": _CONFIG_TYPES.get(t, f"TYPE_{t}"), "dims": [-1]} for n, t in cols]

    return {"name": name, "platform": "mlflow", "backend": "scorer", "max_batch_size": 0,
            "version_policy": {"specific": {"versions": [version]}} if version else {"latest": {"num_versions": 1}},
            "input": tensors(sig.inputs),
            "output": tensors(sig.outputs) or [{"name": "predictions", "data_type": "TYPE_FP64", "dims": [-1]}]}

"""Run by tests/online/test_kserve_client.py with a Python that has kserve (build/kserve-venv):
health, model readiness and infer (JSON and binary tensors) through kserve.InferenceRESTClient.
Prints one JSON document of what it saw."""

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig


async def main(url: str, key: str, model: str, rows: list[list[float]]) -> dict:
    headers = {"Authorization": f"Bearer {key}"}
    out: dict = {}
    async with InferenceRESTClient(RESTConfig(protocol="v2", timeout=30, retries=0)) as client:
        out["live"] = await client.is_server_live(url)
        out["ready"] = await client.is_server_ready(url)
        out["model_ready"] = await client.is_model_ready(url, model, headers=headers)
        x = np.array(rows, dtype=np.float64)
        for binary in (False, True):
            tensor = InferInput("features", list(x.shape), "FP64")
            tensor.set_data_from_numpy(x, binary_data=binary)
            answer = await client.infer(url, InferRequest(model, [tensor], request_id="k1"), model_name=model,
                                        headers=dict(headers))
            out[f"infer_binary={binary}"] = {"id": answer.id, "model_version": answer.model_version,
                                             "outputs": [o.as_numpy().tolist() for o in answer.outputs]}
        try:
            await client.infer(url, InferRequest(model, [InferInput("features", [1, 2], "FP64", [[1.0, 2.0]])]),
                               model_name="nope", headers=dict(headers))
        except Exception as exc:  # httpx.HTTPStatusError with the V2 "error" message
            out["error"] = str(exc)
    return out


if __name__ == "__main__":
    url, key, model, rows = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    print(json.dumps(asyncio.run(main(url, key, model, rows))))

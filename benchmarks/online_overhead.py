"""Router overhead at one client: one-row requests over HTTP vs in-process pyfunc.predict.

    python benchmarks/online_overhead.py --url http://127.0.0.1:8000 --key KEY \
        --model PATH_TO_MODEL_FOLDER [--deployment blue] [--mlflow-url http://127.0.0.1:5001] [-n 3000]

Uses http.client with one keep-alive connection (less client overhead than httpx), so the figure
is close to what the server adds. Prints median and p99 in milliseconds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time
from urllib.parse import urlparse


def _stats(samples: list[float]) -> str:
    s = sorted(samples)
    return f"median {statistics.median(s) * 1000:.3f} ms  p99 {s[int(len(s) * 0.99) - 1] * 1000:.3f} ms  (n={len(s)})"


def http_latency(url: str, body: bytes, headers: dict[str, str], n: int, path: str) -> list[float]:
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    out = []
    for i in range(n + 200):
        t0 = time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        dt = time.perf_counter() - t0
        if resp.status != 200:
            raise SystemExit(f"{url}: HTTP {resp.status}: {data[:200]!r}")
        if i >= 200:  # warm-up
            out.append(dt)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--key", default="")
    p.add_argument("--deployment", default="")
    p.add_argument("--model", required=True, help="local MLflow model folder (for the in-process baseline)")
    p.add_argument("--mlflow-url", default="")
    p.add_argument("-n", type=int, default=3000)
    a = p.parse_args()

    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(a.model)
    example = model.input_example.iloc[:1]
    body = json.dumps({"dataframe_split": json.loads(example.to_json(orient="split", index=False))}).encode()
    samples = []
    for i in range(a.n + 200):
        t0 = time.perf_counter()
        model.predict(example)
        if i >= 200:
            samples.append(time.perf_counter() - t0)
    print("in-process pyfunc.predict, 1 row:  ", _stats(samples))
    headers = {"Content-Type": "application/json"}
    if a.key:
        headers["Authorization"] = f"Bearer {a.key}"
    if a.deployment:
        headers["azureml-model-deployment"] = a.deployment
    print("scorer serve /score, 1 client:     ", _stats(http_latency(a.url, body, headers, a.n, "/score")))
    if a.mlflow_url:
        print("mlflow models serve, 1 client:     ", _stats(http_latency(
            a.mlflow_url, body, {"Content-Type": "application/json"}, a.n, "/invocations")))


if __name__ == "__main__":
    main()

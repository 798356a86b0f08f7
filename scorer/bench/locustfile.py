"""Load any scorer endpoint (or `mlflow models serve`) with one-row (or N-row) scoring requests.

    locust -f benchmarks/locustfile.py --host http://127.0.0.1:8000 --data rows.csv --rows 1

Rows come from `--data` (CSV, a JSON list of records, or a JSON `dataframe_split`); requests
cycle through them. `--deployment NAME` pins a deployment with `azureml-model-deployment`;
`SCORER_API_KEY` (first of a comma-separated list) becomes the bearer token. Failed requests
are recorded as `HTTP <status>` so reports can count errors by status.

Locust patches the process with gevent: this file is run by locust as a subprocess and never
imported by scorer or by pytest.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
from typing import Any

from locust import FastHttpUser, events, task


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    parser.add_argument("--data", default=os.environ.get("SCORER_BENCH_DATA", ""), help="CSV or JSON rows")
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument("--deployment", default="", help="pin this deployment")
    parser.add_argument("--path", default="/score", help="/score, /invocations or a V2 infer path")


def _read_rows(path: str) -> tuple[list[str], list[list[Any]]]:
    if not path:
        raise SystemExit("locustfile: --data FILE is required (CSV or JSON rows)")
    if path.endswith(".csv"):
        with open(path, newline="") as f:
            reader = csv.reader(f)
            columns = next(reader)
            return columns, [[float(v) if _number(v) else v for v in row] for row in reader]
    with open(path) as f:
        doc = json.load(f)
    if isinstance(doc, dict) and "dataframe_split" in doc:
        doc = doc["dataframe_split"]
    if isinstance(doc, dict) and "columns" in doc:
        return list(doc["columns"]), [list(r) for r in doc["data"]]
    if isinstance(doc, list) and doc and isinstance(doc[0], dict):
        columns = list(doc[0])
        return columns, [[r.get(c) for c in columns] for r in doc]
    raise SystemExit(f"locustfile: {path}: expected CSV, a list of records or a dataframe_split")


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


_bodies: list[str] = []


@events.test_start.add_listener
def _prepare(environment: Any, **_: Any) -> None:
    opts = environment.parsed_options
    columns, rows = _read_rows(opts.data)
    if not rows:
        raise SystemExit(f"locustfile: {opts.data} has no rows")
    n = max(1, opts.rows)
    starts = range(0, len(rows), n) if len(rows) >= n else [0]
    for start in itertools.islice(starts, 1000):
        chunk = (rows * (n // len(rows) + 1))[start:start + n]
        _bodies.append(json.dumps({"dataframe_split": {"columns": columns, "data": chunk}}))


class ScoringUser(FastHttpUser):
    # No wait time: each user sends its next request as soon as the last one is answered.

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        self._headers = {"Content-Type": "application/json"}
        key = os.environ.get("SCORER_API_KEY", "").split(",")[0].strip()
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        if opts.deployment:
            self._headers["azureml-model-deployment"] = opts.deployment
        self._path = opts.path
        self._next = itertools.cycle(_bodies)

    @task
    def score(self) -> None:
        with self.client.post(self._path, data=next(self._next), headers=self._headers, name=self._path,
                              catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")

"""Load any scorer endpoint (or `mlflow models serve`) with one-row (or N-row) scoring requests.

    locust -f benchmarks/locustfile.py --host http://127.0.0.1:8000 --data rows.csv --rows 1

Rows come from `--data` (CSV, a JSON list of records, or a JSON `dataframe_split`); requests
cycle through them. `--deployment NAME` pins a deployment with `azureml-model-deployment`;
`SCORER_API_KEY` (first of a comma-separated list) becomes the bearer token. Answers other
than 2xx are failures, recorded as `HTTP <status>` so reports can count errors by status.

`--summary FILE` writes, once locust has stopped every user, locust's final totals, the answers
by status and a histogram of successful response times (0.1 ms steps below 100 ms; locust's own
percentiles are whole milliseconds there). `scorer bench` reads that file, never locust's CSV,
which locust rewrites only once a second and so misses the end of a run.

Locust patches the process with gevent: this file is run by locust as a subprocess and never
imported by scorer or by pytest.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
from collections import Counter
from typing import Any

from locust import FastHttpUser, events, task


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    parser.add_argument("--data", default=os.environ.get("SCORER_BENCH_DATA", ""), help="CSV or JSON rows")
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument("--deployment", default="", help="pin this deployment")
    parser.add_argument("--path", default="/score", help="/score, /invocations or a V2 infer path")
    parser.add_argument("--summary", default="", help="write final figures (JSON) to this file at exit")


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
_statuses: Counter[int] = Counter()  # HTTP status -> answers; 0 = no answer
_ok_ms: Counter[float] = Counter()  # successful response time, bucketed -> answers


def _bucket(ms: float) -> float:
    """0.1 ms steps below 100 ms, 1 ms below 1 s, 10 ms above."""
    if ms < 100:
        return round(ms, 1)
    return float(round(ms)) if ms < 1000 else float(round(ms, -1))


@events.request.add_listener
def _tally(response_time: float, response: Any = None, exception: Any = None, **_: Any) -> None:
    """Called for exactly the requests locust's statistics count, with the unrounded time."""
    status = int(getattr(response, "status_code", 0) or 0)
    _statuses[status] += 1
    if exception is None and 200 <= status < 300:
        _ok_ms[_bucket(response_time)] += 1


@events.quit.add_listener
def _write_summary(**_: Any) -> None:
    """Fired after the runner stopped every user and after the HTML report: the final figures."""
    env = _environment
    path = env.parsed_options.summary if env is not None and env.parsed_options is not None else ""
    if not path or env is None or env.runner is None:
        return
    total = env.runner.stats.total
    doc = {"locust": {"num_requests": total.num_requests, "num_failures": total.num_failures,
                      "start_time": total.start_time, "last_request_timestamp": total.last_request_timestamp,
                      "total_rps": total.total_rps},
           "statuses": {str(k): v for k, v in sorted(_statuses.items())},
           "ok_ms": {f"{k:g}": v for k, v in sorted(_ok_ms.items())}}
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)


_environment: Any = None


@events.init.add_listener
def _remember(environment: Any, **_: Any) -> None:
    global _environment
    _environment = environment


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
            if not 200 <= response.status_code < 300:
                response.failure(f"HTTP {response.status_code}")

"""One level's figures, from locust's final statistics and the locust file's own tally.

Throughput counts successful (2xx) answers only, latency percentiles are of successful answers
(a 429 is fast and would flatter both), and a level is flagged when nothing succeeded or when more
than `max_failure_rate` of the answers were not 2xx (429 included).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_MAX_FAILURE_PCT = 1.0  # `--max-failure-pct`


@dataclass
class Level:
    target: str
    users: int
    requests: int  # every request locust counted: answered or not
    ok: int  # 2xx answers
    failures: int  # everything else: non-2xx answers and requests without an answer
    rejected: int  # 429 answers (admission), part of failures
    seconds: float  # locust's window: start of the level to its last answer
    rps: float  # successful answers per second
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: dict[str, int] = field(default_factory=dict)  # "HTTP 429" -> count
    flag: str = ""  # why this level cannot be trusted; "" when it can

    @property
    def reject_rate(self) -> float:
        return self.rejected / self.requests if self.requests else 0.0

    @property
    def error_rate(self) -> float:
        """Failures other than 429: other non-2xx answers and requests that got no answer."""
        return (self.failures - self.rejected) / self.requests if self.requests else 0.0

    def row(self) -> dict[str, Any]:
        out = asdict(self)
        out["errors"] = ";".join(f"{k}={v}" for k, v in sorted(self.errors.items()))
        out["error_rate"] = round(self.error_rate, 6)
        out["reject_rate"] = round(self.reject_rate, 6)
        return out


def percentile(histogram: dict[float, int], q: float) -> float:
    """Nearest-rank percentile of a {milliseconds: count} histogram; NaN when it is empty."""
    total = sum(histogram.values())
    if total == 0:
        return math.nan
    rank = max(1, math.ceil(q * total))
    seen = 0
    for ms in sorted(histogram):
        seen += histogram[ms]
        if seen >= rank:
            return ms
    return max(histogram)


def flag(ok: int, requests: int, failures: int, rejected: int, max_failure_rate: float) -> str:
    if ok == 0:
        return "no successful request"
    if requests and failures / requests > max_failure_rate:
        return (f"{failures / requests:.1%} of answers not 2xx ({rejected} x 429) "
                f"> {max_failure_rate:.1%}")
    return ""


def level_from_summary(doc: dict[str, Any], target: str, users: int, max_failure_rate: float) -> Level:
    """Build a level from the JSON the locust file writes once locust has stopped every user."""
    total = doc["locust"]
    requests, failures = int(total["num_requests"]), int(total["num_failures"])
    seconds = round(max(0.0, float(total["last_request_timestamp"] or total["start_time"])
                        - float(total["start_time"])), 3)
    statuses: dict[str, int] = {str(k): int(v) for k, v in doc["statuses"].items()}
    ok = requests - failures
    rejected = statuses.get("429", 0)
    errors = {("no answer" if code == "0" else f"HTTP {code}"): n for code, n in statuses.items()
              if not code.startswith("2")}
    hist = {float(ms): int(n) for ms, n in doc["ok_ms"].items()}
    return Level(target, users, requests, ok, failures, rejected, seconds,
                 ok / seconds if seconds > 0 else 0.0,
                 percentile(hist, 0.50), percentile(hist, 0.95), percentile(hist, 0.99), errors,
                 flag(ok, requests, failures, rejected, max_failure_rate))

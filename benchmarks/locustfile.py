"""The locust file `scorer bench` runs; usable as it is:

    SCORER_API_KEY=... locust -f benchmarks/locustfile.py --host http://127.0.0.1:8000 --data rows.csv

It lives in the package (scorer/bench/locustfile.py) so that an installed scorer finds it too.
Answers other than 2xx count as failures; `--summary FILE` also writes the final figures
`scorer bench` reads (totals, answers by status, 2xx latencies at 0.1 ms below 100 ms).
"""

from scorer.bench.locustfile import ScoringUser  # noqa: F401  (locust collects User classes by name)

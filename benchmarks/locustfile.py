"""The locust file `scorer bench` runs; usable as it is:

    SCORER_API_KEY=... locust -f benchmarks/locustfile.py --host http://127.0.0.1:8000 --data rows.csv

It lives in the package (scorer/bench/locustfile.py) so that an installed scorer finds it too.
"""

from scorer.bench.locustfile import ScoringUser  # noqa: F401  (locust collects User classes by name)

"""Runtime changes of traffic and mirror, validated by the same rules as the endpoint YAML."""

from __future__ import annotations

import orjson

from scorer.spec.problems import dotted
from scorer.spec.rules import traffic_rules
from serving.errors import ScoringError


def parse_shares(body: bytes, field: str, names: list[str]) -> dict[str, int]:
    """The `{deployment: percent}` object of a PUT body; 400 naming the field and value otherwise."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ScoringError(400, f"{field}: body is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ScoringError(400, f"{field}: got {type(data).__name__}; expected an object "
                           "{deployment: percent}")
    for name, pct in data.items():
        if isinstance(pct, bool) or not isinstance(pct, int):
            raise ScoringError(400, f"{field}.{name}: got {pct!r}; expected an integer percent")
    return dict(data)


def check(traffic: dict[str, int], mirror: dict[str, int], names: list[str]) -> None:
    """Raise 400 with every problem of the new traffic + mirror pair, one per line."""
    problems = traffic_rules(traffic, mirror, names)
    if problems:
        raise ScoringError(400, "\n".join(f"{dotted(p.loc)}: {p.message}" for p in problems))


def full_traffic(shares: dict[str, int], names: list[str]) -> dict[str, int]:
    """Every deployment gets an explicit share; those not named get 0, as after `fill_traffic`."""
    return {n: shares.get(n, 0) for n in names} | {n: p for n, p in shares.items() if n not in names}


"""Smooth weighted round robin (nginx's): exact shares over every window of sum(weights) picks."""

from __future__ import annotations

from math import gcd


class SmoothWeighted:
    """`pick()` returns a deployment name with traffic, or None when every weight is 0.

    Weights are reduced by their gcd, so 90/10 repeats every 10 picks with exactly 9 and 1."""

    def __init__(self, weights: dict[str, int]) -> None:
        self.set(weights)

    def set(self, weights: dict[str, int]) -> None:
        live = {k: int(v) for k, v in weights.items() if int(v) > 0}
        g = 0
        for v in live.values():
            g = gcd(g, v)
        self.weights = {k: v // g for k, v in live.items()} if g else {}
        self.total = sum(self.weights.values())
        self.current = dict.fromkeys(self.weights, 0)
        self.shares = dict(weights)

    def pick(self) -> str | None:
        if not self.weights:
            return None
        best = None
        best_value = 0
        for name, w in self.weights.items():
            value = self.current[name] + w
            self.current[name] = value
            if best is None or value > best_value:
                best, best_value = name, value
        assert best is not None
        self.current[best] -= self.total
        return best

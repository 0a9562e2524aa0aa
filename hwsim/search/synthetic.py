"""Synthetic search problems that behave like quantized networks (tests, demos, brute force).

:class:`ToyQuantProblem` models ``n`` groups in a chain: group g at candidate j adds a
noise power ``noise[g][j]`` (noise[g][0] is the all-highest level), the score is the SQNR
``-10 log10(sum of noise)`` with a small interaction term, and the cost is a per-group
cost plus a precision-conversion charge wherever two neighbouring groups use different
activation widths — the structure of the real problem, at no execution cost.

Examples
--------
>>> p = ToyQuantProblem.random(3, seed=0)
>>> len(p.groups), [str(c) for c in p.groups[0].candidates]
(3, ['W8A16', 'W8A8', 'W4A8'])
>>> p.score((0, 0, 0)) > p.score((2, 2, 2)), p.cost((0, 0, 0)) > p.cost((2, 2, 2))
(True, True)
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..bits import BitPair
from .problem import Choice, GroupSpec

__all__ = ["ToyQuantProblem"]

_CANDS = (BitPair(8, 16), BitPair(8, 8), BitPair(4, 8))


class ToyQuantProblem:
    """A chain of ``n`` groups with random sensitivities and costs (deterministic per seed).

    ``delay`` (seconds) makes each ``score`` call sleep, to imitate an expensive evaluation.
    ``calls`` counts score evaluations.
    """

    def __init__(self, noise, unit_cost, conversion: float, interaction: float = 0.05, delay: float = 0.0,
                 candidates=_CANDS):
        self.noise = [list(map(float, r)) for r in noise]
        self.unit_cost = [list(map(float, r)) for r in unit_cost]
        self.conversion = float(conversion)
        self.interaction = float(interaction)
        self.delay = float(delay)
        self.groups = tuple(GroupSpec(f"g{i}", tuple(candidates[:len(r)]), first_node=i)
                            for i, r in enumerate(self.noise))
        self.fingerprint = f"toy:{hash((tuple(map(tuple, self.noise)), tuple(map(tuple, self.unit_cost))))}"
        self.reference_score = None
        self.calls = 0

    @classmethod
    def random(cls, n: int, seed: int = 0, *, k: int = 3, conversion: float | None = None, delay: float = 0.0):
        rng = np.random.default_rng(seed)
        base = 10 ** (-rng.uniform(5.5, 7.0, n))                 # ~55-70 dB per group at the highest pair
        steps = rng.lognormal(mean=2.5, sigma=1.0, size=(n, k - 1))
        noise = np.concatenate([base[:, None], base[:, None] * np.cumprod(steps, axis=1)], axis=1)
        macs = rng.uniform(1, 10, n)
        per_mac = np.array([2.0, 1.0, 0.55])[:k]                 # cost per MAC of each candidate
        unit = macs[:, None] * per_mac[None, :]
        conv = float(np.median(macs) * 0.15) if conversion is None else conversion
        return cls(noise, unit, conv, delay=delay, candidates=_CANDS[:k])

    def score(self, choice: Choice) -> float:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        n = [self.noise[g][j] for g, j in enumerate(choice)]
        total = sum(n)
        # neighbours both lowered interact a little (makes the problem non-separable)
        total += self.interaction * sum(math.sqrt(a * b) for a, b in zip(n, n[1:]))
        return -10.0 * math.log10(total)

    def cost(self, choice: Choice) -> float:
        c = sum(self.unit_cost[g][j] for g, j in enumerate(choice))
        for g in range(len(choice) - 1):
            if self.groups[g].candidates[choice[g]].a != self.groups[g + 1].candidates[choice[g + 1]].a:
                c += self.conversion
        return c

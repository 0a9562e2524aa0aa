"""Brute force over every configuration of a small problem: the true Pareto front.

Used by the tests (and usable by anyone on a tiny model) to measure how far the greedy
path is from optimal. ``prod(len(candidates))`` evaluations: keep it to a few groups.

Examples
--------
>>> from hwsim.search.problem import GroupSpec, FunctionProblem
>>> p = FunctionProblem([GroupSpec("a", "xy"), GroupSpec("b", "xy")],
...                     score=lambda c: 40.0 - 3 * c[0] - 1 * c[1], cost=lambda c: 10.0 - 2 * c[0] - 1 * c[1])
>>> [(c, s) for c, s, _ in true_front(p)]
[(7.0, 36.0), (8.0, 37.0), (9.0, 39.0), (10.0, 40.0)]
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence

from .problem import Choice, SearchProblem

__all__ = ["all_points", "true_front", "front_gap"]


def all_points(problem: SearchProblem, score=None) -> list[tuple[float, float, Choice]]:
    """(cost, score, choice) of every configuration."""
    score = score or problem.score
    ranges = [range(len(g.candidates)) for g in problem.groups]
    return [(problem.cost(c), score(c), c) for c in itertools.product(*ranges)]


def true_front(problem: SearchProblem, score=None) -> list[tuple[float, float, Choice]]:
    """Non-dominated (cost, score, choice), cheapest first (ties: lexicographically smallest choice)."""
    pts = sorted(all_points(problem, score), key=lambda p: (p[0], -p[1], p[2]))
    front, best = [], -math.inf
    for c, s, ch in pts:
        if s > best:
            front.append((c, s, ch))
            best = s
    return front


def front_gap(front: Sequence[tuple[float, float]], greedy: Sequence[tuple[float, float]]) -> dict:
    """How far a greedy front is below the true one.

    For each true-front point (cost c*, score s*) the greedy front's best score at cost
    <= c* is s_g; the gap is s* - s_g (0 when the greedy front has that point; inf when
    the greedy front has nothing that cheap). Returns max / mean gap and how many true
    points the greedy front matches exactly.
    """
    gaps = []
    for c, s, *_ in front:
        ok = [gs for gc, gs, *_ in greedy if gc <= c + 1e-12 * max(1.0, abs(c))]
        gaps.append(s - max(ok) if ok else math.inf)
    finite = [g for g in gaps if g != math.inf]
    return {"max_gap": max(gaps) if gaps else 0.0,
            "mean_gap": (sum(finite) / len(finite)) if finite else math.inf,
            "matched": sum(1 for g in gaps if g <= 1e-12),
            "front_size": len(front), "uncovered": len(gaps) - len(finite)}

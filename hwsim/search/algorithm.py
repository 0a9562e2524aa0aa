"""Phases 1–3 over any :class:`~hwsim.search.problem.SearchProblem` (no executor needed).

:func:`run_phases` is what :func:`hwsim.search.search` calls after building the real
problem from a model; tests call it directly on synthetic problems.

Examples
--------
>>> from hwsim.search.problem import GroupSpec, FunctionProblem
>>> p = FunctionProblem([GroupSpec("a", "xyz"), GroupSpec("b", "xyz")],
...                     score=lambda c: 40.0 - 3 * c[0] - 1 * c[1], cost=lambda c: 10.0 - 2 * c[0] - 2 * c[1])
>>> out = run_phases(p, threshold=37.5, combine="additive")
>>> out.chosen.choice, out.chosen.score, out.chosen.cost
((0, 2), 38.0, 6.0)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

from .budget import find_budget_index
from .checkpoint import EvalStore
from .pareto import PathStep, build_path
from .problem import Choice, SearchProblem
from .sensitivity import SensitivityTable, run_sensitivity

__all__ = ["PointOutcome", "PhaseOutcome", "run_phases"]


@dataclass
class PointOutcome:
    """A scored configuration: ``score`` is None when the point was never evaluated."""

    index: int | None
    choice: Choice
    cost: float
    score: float | None
    predicted: float | None = None
    moved: tuple | None = None
    source: str = "pareto"


@dataclass
class PhaseOutcome:
    table: SensitivityTable
    path: list[PathStep]
    points: list[PointOutcome]
    chosen: PointOutcome
    budget_met: bool
    baselines: dict[str, PointOutcome]
    budget_evaluated: list[int]
    times: dict[str, float] = field(default_factory=dict)
    counts: dict = field(default_factory=dict)


def run_phases(problem: SearchProblem, *, threshold: float, store: EvalStore | None = None,
               combine: str = "noise", full_curve: bool = False, workers: int = 1,
               baselines: Mapping[str, Choice] | None = None,
               cost: Callable[[Choice], float] | None = None,
               neighbours=None, skip: bool = False) -> PhaseOutcome:
    """Run phase 1 (sensitivity), phase 2 (greedy path), phase 3 (budget search).

    Parameters
    ----------
    threshold : the budget: the chosen point must have ``score >= threshold``.
    store : evaluation store (memo + checkpoint); a memory-only one by default.
    combine : loss model of the phase-2 guidance, ``"noise"`` (SQNR dB) or ``"additive"``.
    full_curve : evaluate every path point (not just the budget search's probes).
    workers : threads for phase 1.
    baselines : named uniform configurations to evaluate and compare against; one cheaper
        than the path's answer that meets the budget becomes the answer (``source`` says so).
    neighbours : per group, the groups that can change its move savings (see
        :func:`~hwsim.search.pareto.build_path`); speeds up phase 2 on large models.
    skip : phase-2 moves may jump over candidates (W8A16 -> W4A8 in one step).
    """
    store = store or EvalStore(problem.score)
    memo: dict[Choice, float] = {}

    def cost_fn(c):
        c = tuple(c)
        if c not in memo:
            memo[c] = float((cost or problem.cost)(c))
        return memo[c]

    times = {}
    t0 = time.perf_counter()
    table = run_sensitivity(problem, store, workers=workers)
    t1 = time.perf_counter()
    times["phase1"] = t1 - t0
    path = build_path(problem, table, combine=combine, cost=cost_fn, neighbours=neighbours, skip=skip)
    t2 = time.perf_counter()
    times["phase2"] = t2 - t1
    predicted = [s.predicted for s in path]
    res = find_budget_index(len(path), lambda i: store.score(path[i].choice, "phase3"), threshold,
                            predicted=predicted, full_curve=full_curve)
    t3 = time.perf_counter()
    times["phase3"] = t3 - t2
    # a point's score is known if phase 3 probed it or any phase evaluated the same configuration
    points = [PointOutcome(s.index, s.choice, s.cost, res.scores.get(s.index, store.peek(s.choice)),
                           s.predicted, s.moved) for s in path]
    base_outcomes = {}
    for name, ch in (baselines or {}).items():
        base_outcomes[name] = PointOutcome(None, tuple(ch), cost_fn(ch), store.score(tuple(ch), "baselines"),
                                           source=f"uniform {name}")
    times["baselines"] = time.perf_counter() - t3
    # the answer: the cheapest evaluated configuration that meets the budget
    cands = [p for p in points if p.score is not None and p.score >= threshold]
    cands += [b for b in base_outcomes.values() if b.score >= threshold]
    if cands:
        chosen = min(cands, key=lambda p: (p.cost, p.source != "pareto", -(p.score), p.index or 0))
        met = True
    else:
        chosen = points[0]
        if chosen.score is None:
            chosen.score = store.score(chosen.choice, "phase3")
        met = False
    return PhaseOutcome(table, path, points, chosen, met, base_outcomes, res.evaluated, times, store.counts())

"""Phase 2: the greedy Pareto path, guided by the phase-1 sensitivities.

Start with every group at its highest candidate. At each step consider every *move*
"group g from its current candidate to any lower candidate"; keep the moves that save
cost (strictly); take the one with the smallest estimated score loss per unit of cost
saved. A group is never raised again, so cost falls strictly along the path. Ties are
broken by (loss ratio, loss, group index, candidate index): the path is deterministic.

The estimated loss comes from phase 1 only (no model evaluation), so building the path
costs nothing but cost-model calls; scores of path points are evaluated lazily by
phase 3 (or all of them with ``full_curve``).

Loss model (``combine``):

``"noise"`` (for SQNR in dB) — quantization noise powers add: group g at candidate c
    adds ``10**(-S1(g,c)/10) - 10**(-S_base/10)`` to the relative noise power; the
    predicted SQNR of a configuration is ``-10 log10(sum)``.
``"additive"`` (for accuracy-like metrics) — score drops add.

Fixes relative to AIMET's AMP: AIMET orders (group, candidate) pairs by phase-1 score
alone and applies them cumulatively; a group may then be set to W4A8 and later back up to
W8A8, so its cost curve can rise, and it ignores what each step saves. Here each step is
chosen by loss per cost saved under the profile's metric and only moves a group down.

Examples
--------
>>> from hwsim.search.problem import GroupSpec, FunctionProblem
>>> from hwsim.search.checkpoint import EvalStore
>>> from hwsim.search.sensitivity import run_sensitivity
>>> p = FunctionProblem([GroupSpec("a", "xy"), GroupSpec("b", "xy")],
...                     score=lambda c: 40.0 - 3 * c[0] - 1 * c[1], cost=lambda c: 10.0 - 2 * c[0] - 2 * c[1])
>>> t = run_sensitivity(p, EvalStore(p.score))
>>> [s.choice for s in build_path(p, t, combine="additive")]
[(0, 0), (0, 1), (1, 1)]
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from .problem import Choice, SearchProblem
from .sensitivity import SensitivityTable

__all__ = ["PathStep", "build_path", "predict_score", "COMBINE_MODES"]

COMBINE_MODES = ("noise", "additive")


@dataclass(frozen=True)
class PathStep:
    """One point of the greedy path (its score is evaluated later, lazily)."""

    index: int
    choice: Choice
    cost: float
    predicted: float
    moved: tuple | None       # (group, from candidate, to candidate); None for the start


def _noise(score: float) -> float:
    return 0.0 if score == math.inf else 10.0 ** (-score / 10.0)


def _loss_terms(table: SensitivityTable, combine: str):
    if combine == "noise":
        base_n = _noise(table.base_score)
        return lambda g, c: _noise(table.score(g, c)) - base_n if c else 0.0
    if combine == "additive":
        return lambda g, c: table.base_score - table.score(g, c) if c else 0.0
    raise ValueError(f"combine must be one of {COMBINE_MODES}, got {combine!r}")


def predict_score(table: SensitivityTable, choice: Choice, combine: str = "noise") -> float:
    """Phase-1 estimate of the score of ``choice``."""
    term = _loss_terms(table, combine)
    total = sum(term(g, c) for g, c in enumerate(choice))
    if combine == "noise":
        n = _noise(table.base_score) + total
        return math.inf if n <= 0 else -10.0 * math.log10(n)
    return table.base_score - total


def build_path(problem: SearchProblem, table: SensitivityTable, *, combine: str = "noise",
               cost: Callable[[Choice], float] | None = None) -> list[PathStep]:
    """The greedy path from all-highest down to where no move saves cost."""
    cost = cost or problem.cost
    term = _loss_terms(table, combine)
    sizes = [len(g.candidates) for g in problem.groups]
    cur = [0] * len(sizes)
    cur_cost = cost(tuple(cur))
    steps = [PathStep(0, tuple(cur), cur_cost, predict_score(table, tuple(cur), combine), None)]
    eps = 1e-12 * max(1.0, abs(cur_cost))
    while True:
        best = None
        for g, n in enumerate(sizes):
            for j in range(cur[g] + 1, n):
                trial = list(cur)
                trial[g] = j
                c = cost(tuple(trial))
                saving = cur_cost - c
                if not saving > eps:
                    continue
                loss = term(g, j) - term(g, cur[g])
                key = (loss / saving, loss, g, j)
                if best is None or key < best[0]:
                    best = (key, g, j, c)
        if best is None:
            break
        _, g, j, c = best
        frm = cur[g]
        cur[g] = j
        cur_cost = c
        steps.append(PathStep(len(steps), tuple(cur), c, predict_score(table, tuple(cur), combine), (g, frm, j)))
    return steps

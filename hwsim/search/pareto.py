"""Phase 2: the greedy Pareto path, guided by the phase-1 sensitivities.

Start with every group at its highest candidate. At each step consider, for every group,
the *move* to its next lower candidate (the next one that saves cost — a step that saves
nothing under the metric is passed over, so no group is stuck behind it; with
``skip=True`` every lower candidate is a possible move, e.g. W8A16 → W4A8 directly); take
the move with the smallest estimated score loss per unit of cost saved. A group is never raised again, so cost falls strictly along the path. Ties are
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
               cost: Callable[[Choice], float] | None = None,
               neighbours: Sequence[frozenset] | None = None, skip: bool = False) -> list[PathStep]:
    """The greedy path from all-highest down to where no move saves cost.

    ``skip`` lets a move jump over lower candidates (see the module docstring); off by
    default: each step lowers one group to its next candidate that saves cost.

    ``neighbours[g]`` (optional) is the set of groups whose candidate can change what a move
    of group g saves (its graph neighbours, for a cost that is a sum of local terms). With
    it, the saving of each move is recomputed only when the moved group is g or one of its
    neighbours; every accepted step's cost is still a full ``cost`` evaluation, and a step
    whose full cost does not fall is re-chosen with every saving recomputed, so the path
    is the one without ``neighbours`` (up to float rounding in near-ties) whenever the
    locality holds.
    """
    cost = cost or problem.cost
    term = _loss_terms(table, combine)
    sizes = [len(g.candidates) for g in problem.groups]

    cur = [0] * len(sizes)
    cur_cost = cost(tuple(cur))
    steps = [PathStep(0, tuple(cur), cur_cost, predict_score(table, tuple(cur), combine), None)]
    eps = 1e-12 * max(1.0, abs(cur_cost))
    saving: dict[tuple[int, int], float] = {}     # (group, candidate) -> cost saved by that move now
    stale = set(range(len(sizes)))

    def refresh(groups_to_update):
        for g in groups_to_update:
            for j in range(cur[g] + 1, sizes[g]):
                trial = list(cur)
                trial[g] = j
                saving[(g, j)] = cur_cost - cost(tuple(trial))

    while True:
        refresh(sorted(stale) if neighbours is not None else range(len(sizes)))
        best = None
        for g, n in enumerate(sizes):
            for j in range(cur[g] + 1, n):
                sv = saving[(g, j)]
                if not sv > eps:
                    continue          # a step that saves nothing is passed over (never a dead end)
                loss = term(g, j) - term(g, cur[g])
                key = (loss / sv, loss, g, j)
                if best is None or key < best[0]:
                    best = (key, g, j)
                if not skip:
                    break             # only the next candidate that saves cost
        if best is None:
            break
        _, g, j = best
        trial = list(cur)
        trial[g] = j
        c = cost(tuple(trial))
        if not cur_cost - c > eps or (neighbours is not None and abs(c - (cur_cost - saving[(g, j)])) > eps):
            if neighbours is None:
                break
            neighbours = None                    # locality did not hold: recompute everything from now on
            stale = set(range(len(sizes)))
            continue
        frm = cur[g]
        cur[g] = j
        cur_cost = c
        for k in [k for k in saving if k[0] == g and k[1] <= j]:
            del saving[k]
        if neighbours is not None:
            # with a cost that is a sum of local terms, a move of g shifts cost(cur) and
            # cost(trial) of every group far from g by the same amount: their savings stand
            stale = {g} | set(neighbours[g])
        steps.append(PathStep(len(steps), tuple(cur), c, predict_score(table, tuple(cur), combine), (g, frm, j)))
    return steps

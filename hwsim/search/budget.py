"""Phase 3: the cheapest path point that meets the budget, with few evaluations.

The path's cost falls strictly with the index, and its score falls (roughly) too, so the
cheapest point meeting ``score >= threshold`` is the last index that meets it. The
search brackets it: index 0 must meet it (else no point does), the last point is tried
next (if it meets the budget it is the answer), then the bracket ``[lo meets, hi fails]``
shrinks. Probes cycle through three kinds: *interpolation* (the last index the phase-1
predicted curve, mapped affinely through the two evaluated bracket ends, says still meets
the budget), *confirmation* (the neighbour of that probe on the other side of the
estimated boundary — with a good prediction these two probes close the bracket), and
*bisection* (which bounds the worst case at about ``3 log2(n)`` evaluations). Where the true score is not monotone along the path the
result is a point whose successor fails, not necessarily the globally cheapest one;
``full_curve=True`` evaluates every point and returns the cheapest one meeting the budget.

Examples
--------
>>> scores = [40, 39, 37, 36, 33, 30, 25]
>>> r = find_budget_index(len(scores), lambda i: scores[i], 35.0)
>>> r.index, r.evaluated
(3, [0, 6, 2, 3, 4])
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

__all__ = ["BudgetSearch", "find_budget_index"]


@dataclass
class BudgetSearch:
    """Outcome: ``index`` of the chosen point (None when even index 0 misses the budget)."""

    index: int | None
    evaluated: list[int] = field(default_factory=list)
    scores: dict[int, float] = field(default_factory=dict)


def _interp_probe(lo, hi, s_lo, s_hi, thr, predicted):
    """Estimated last index in (lo, hi) that still meets ``thr``.

    Uses the phase-1 predicted curve mapped affinely through the two evaluated bracket
    ends when it is usable, else linear interpolation of the two evaluated scores.
    """
    inf = float("inf")
    if (predicted is not None and s_lo != inf and s_hi != -inf
            and all(p is not None and abs(p) != inf for p in predicted[lo:hi + 1])
            and predicted[lo] != predicted[hi]):
        p_lo, p_hi = predicted[lo], predicted[hi]
        last = lo + 1
        for i in range(lo + 1, hi):
            est = s_lo + (predicted[i] - p_lo) * (s_hi - s_lo) / (p_hi - p_lo)
            if est >= thr:
                last = i
        return last
    if s_lo == s_hi or s_lo == inf or s_hi == -inf:
        return (lo + hi) // 2
    f = (s_lo - thr) / (s_lo - s_hi)
    return max(lo + 1, min(hi - 1, lo + int(f * (hi - lo))))


def find_budget_index(n: int, evaluate: Callable[[int], float], threshold: float, *,
                      predicted: Sequence[float] | None = None, full_curve: bool = False) -> BudgetSearch:
    """Search the path (``n`` points, ``evaluate(i)`` -> score) for the cheapest point meeting the budget."""
    res = BudgetSearch(None)

    def ev(i):
        if i not in res.scores:
            res.scores[i] = float(evaluate(i))
            res.evaluated.append(i)
        return res.scores[i]

    if n <= 0:
        return res
    if full_curve:
        for i in range(n):
            ev(i)
        ok = [i for i in range(n) if res.scores[i] >= threshold]
        res.index = max(ok) if ok else None
        return res
    if ev(0) < threshold:
        return res
    if n == 1 or ev(n - 1) >= threshold:
        res.index = n - 1
        return res
    lo, hi = 0, n - 1
    mode, last_met = "interp", True
    while hi - lo > 1:
        if mode == "interp":
            m = _interp_probe(lo, hi, res.scores[lo], res.scores[hi], threshold, predicted)
        elif mode == "confirm":
            m = lo + 1 if last_met else hi - 1
        else:
            m = (lo + hi) // 2
        last_met = ev(m) >= threshold
        if last_met:
            lo = m
        else:
            hi = m
        mode = {"interp": "confirm", "confirm": "bisect", "bisect": "interp"}[mode]
    res.index = lo
    return res

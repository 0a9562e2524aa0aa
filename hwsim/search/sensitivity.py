"""Phase 1: per-group sensitivity.

For every group and every candidate below its highest, score the configuration with
that group lowered and every other group at its highest candidate. Together with the
all-highest *base* configuration this costs ``1 + sum(len(candidates) - 1)`` evaluations,
each memoised and checkpointed by :class:`~hwsim.search.checkpoint.EvalStore`.

Examples
--------
>>> from hwsim.search.problem import GroupSpec, FunctionProblem
>>> from hwsim.search.checkpoint import EvalStore
>>> p = FunctionProblem([GroupSpec("a", "xy"), GroupSpec("b", "xyz")],
...                     score=lambda c: 40.0 - c[0] - 2 * c[1], cost=lambda c: 10.0 - sum(c))
>>> t = run_sensitivity(p, EvalStore(p.score))
>>> t.base_score, t.score(1, 2), len(t.entries)
(40.0, 36.0, 3)
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

from .checkpoint import EvalStore
from .problem import Choice, GroupSpec, SearchProblem

__all__ = ["SensitivityEntry", "SensitivityTable", "phase1_choices", "run_sensitivity"]


@dataclass(frozen=True)
class SensitivityEntry:
    """One phase-1 measurement: ``group`` lowered to ``candidate``, all others highest."""

    group: int
    candidate: int
    score: float
    cost: float
    loss: float          # base score - score (positive = this change hurts)

    def to_dict(self, groups: Sequence[GroupSpec] | None = None) -> dict:
        d = {"group": self.group, "candidate": self.candidate, "score": self.score,
             "cost": self.cost, "loss": self.loss}
        if groups is not None:
            g = groups[self.group]
            d["group_name"] = g.name
            d["pair"] = str(g.candidates[self.candidate])
        return d


@dataclass(frozen=True)
class SensitivityTable:
    base_score: float
    base_cost: float
    entries: tuple[SensitivityEntry, ...]

    def score(self, group: int, candidate: int) -> float:
        """Phase-1 score of ``group`` at ``candidate`` (the base score for candidate 0)."""
        if candidate == 0:
            return self.base_score
        return self._index[(group, candidate)].score

    def __post_init__(self):
        object.__setattr__(self, "_index", {(e.group, e.candidate): e for e in self.entries})

    def ranked(self) -> list[SensitivityEntry]:
        """Least sensitive first: by score descending, then group, then candidate (deterministic)."""
        return sorted(self.entries, key=lambda e: (-e.score, e.group, e.candidate))


def phase1_choices(groups: Sequence[GroupSpec]) -> list[Choice]:
    """The configurations phase 1 evaluates (base first), in a fixed order."""
    n = len(groups)
    out = [tuple([0] * n)]
    for gi, g in enumerate(groups):
        for j in range(1, len(g.candidates)):
            c = [0] * n
            c[gi] = j
            out.append(tuple(c))
    return out


def run_sensitivity(problem: SearchProblem, store: EvalStore, *, workers: int = 1,
                    phase: str = "phase1") -> SensitivityTable:
    """Evaluate phase 1 (missing evaluations only) and return the table.

    ``workers`` > 1 evaluates in a thread pool; results do not depend on it (each score
    is a pure function of its configuration and the table is assembled in a fixed order).
    """
    groups = tuple(problem.groups)
    choices = phase1_choices(groups)
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as ex:
            scores = list(ex.map(lambda c: store.score(c, phase), choices))
    else:
        scores = [store.score(c, phase) for c in choices]
    base = scores[0]
    base_cost = problem.cost(choices[0])
    entries = []
    for c, s in zip(choices[1:], scores[1:]):
        gi = next(i for i, v in enumerate(c) if v)
        entries.append(SensitivityEntry(gi, c[gi], s, problem.cost(c), base - s))
    return SensitivityTable(base, base_cost, tuple(entries))

"""The small protocol the search algorithm works against, independent of any executor.

A search problem has quantizer *groups*, each with candidates ordered from the highest
precision (index 0) to the lowest, a ``score(choice)`` (higher is better) and a
``cost(choice)`` (lower is better, in the profile's metric). A *choice* is a tuple with
one candidate index per group. Phases 1–3 only call these three things, so they run on
synthetic problems (tests, brute force) exactly as on a real model.

Examples
--------
>>> from hwsim.search.problem import GroupSpec, FunctionProblem
>>> p = FunctionProblem([GroupSpec("g0", ("W8A8", "W4A8"))],
...                     score=lambda c: 40.0 - 5 * c[0], cost=lambda c: 8.0 - 4 * c[0])
>>> p.score((1,)), p.cost((1,))
(35.0, 4.0)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

__all__ = ["Choice", "GroupSpec", "SearchProblem", "FunctionProblem", "choice_key", "parse_choice_key"]

Choice = tuple
"""One candidate index per group; 0 is the group's highest candidate."""


@dataclass(frozen=True)
class GroupSpec:
    """A group as the algorithm sees it: a name and its candidates, highest first.

    ``candidates`` may hold :class:`hwsim.bits.BitPair` objects or strings; only their
    order and count matter to the algorithm. ``first_node`` (optional) is the topological
    index of the first graph node a change of this group can affect (prefix caching).
    """

    name: str
    candidates: tuple
    first_node: int = 0
    info: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "candidates", tuple(self.candidates))
        if not self.candidates:
            raise ValueError(f"group {self.name!r} has no candidates")


@runtime_checkable
class SearchProblem(Protocol):
    """What phases 1–3 need. ``score`` higher is better; ``cost`` lower is better."""

    groups: Sequence[GroupSpec]

    def score(self, choice: Choice) -> float: ...

    def cost(self, choice: Choice) -> float: ...


class FunctionProblem:
    """A :class:`SearchProblem` from two plain functions (synthetic problems, tests)."""

    def __init__(self, groups: Sequence[GroupSpec], score: Callable[[Choice], float],
                 cost: Callable[[Choice], float], fingerprint: str = "", reference_score: float | None = None):
        self.groups = tuple(groups)
        self._score = score
        self._cost = cost
        self.fingerprint = fingerprint
        self.reference_score = reference_score

    def score(self, choice: Choice) -> float:
        return float(self._score(tuple(choice)))

    def cost(self, choice: Choice) -> float:
        return float(self._cost(tuple(choice)))

    def describe(self, choice: Choice) -> Any:
        return {g.name: str(g.candidates[i]) for g, i in zip(self.groups, choice)}


def choice_key(choice: Choice) -> str:
    """``(0, 2, 1) -> "0.2.1"`` (stable text key for checkpoints)."""
    return ".".join(str(int(i)) for i in choice)


def parse_choice_key(key: str) -> Choice:
    return tuple(int(x) for x in key.split(".")) if key else ()

"""The result of a mixed-precision search: :class:`SearchResult` and its parts.

Everything is plain data (strings, floats, lists, dicts) so it serialises with
:meth:`SearchResult.to_dict` and is easy to consume (``hwsim compare``, HTML reports).

Fields of :class:`SearchResult`
-------------------------------
model, profile : names.
score_name : ``"sqnr_db"`` (SQNR of the integer outputs vs float, dB) or the user
    metric's name (e.g. ``"top1_accuracy"``, in %). Higher is better.
cost_metric, cost_unit : the metric the search minimises (``latency`` in s, ``bops``,
    ``energy`` in J, ``memory`` in bytes) — the profile's unless overridden.
target : ``{"kind": "sqnr" | "max_drop", "value": ..., "threshold": ...}``; a point meets the
    budget when ``score >= threshold`` (max_drop: threshold = reference_score - value).
reference_score : the float model's score under the user metric (None for SQNR).
groups : list of :class:`~hwsim.groups.QuantizerGroup` dicts (name, members, ops, candidates).
sensitivity : phase-1 table: one dict per (group, lower candidate): ``group``, ``group_name``,
    ``pair``, ``score``, ``cost``, ``loss`` (base score - score).
base : :class:`SearchPoint` with every group at its highest candidate.
pareto : the greedy path, list of :class:`SearchPoint` with strictly falling cost; ``score``
    is None for points never evaluated (lazy evaluation).
chosen : the answer (a :class:`SearchPoint`): the cheapest evaluated configuration meeting
    the budget; ``source`` says whether it is a path point or a uniform baseline.
budget_met : False when not even the all-highest configuration meets the budget (then
    ``chosen`` is the all-highest point).
baselines : name (``"W8A8"`` ...) -> :class:`SearchPoint` of the uniform configurations;
    ``exact`` is False when some group could not take that pair.
evaluations : ``{"phase1", "phase3", "baselines", "total", "fresh", "resumed", "cached",
    "pareto_points", "pareto_points_evaluated", "budget_probes", "checkpoint"}`` — distinct
    configurations scored per phase (a configuration counts in the first phase that asked
    for it); fresh = run in this process, resumed = read from a checkpoint; budget_probes =
    path indices phase 3 looked at, in order; checkpoint = "new" | "resumed" |
    "discarded (inputs changed)" | "none".
times : wall seconds: ``setup`` (import, calibration, float reference), ``phase1``,
    ``phase2``, ``phase3``, ``baselines``, ``report``, ``total``.
prefix_cache : ``{"evaluations", "nodes_run", "nodes_skipped", "skipped_fraction"}``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..bits import BitPair

__all__ = ["SearchPoint", "SearchResult"]


@dataclass
class SearchPoint:
    """A configuration with its cost and (if evaluated) score.

    ``index`` is the position on the path (None for baselines); ``config`` maps each
    configured node to its pair (strings like ``"W8A8"``); ``moved`` names the group step
    that produced the point (``{"group", "from", "to"}``).
    """

    index: int | None
    cost: float
    score: float | None
    config: dict[str, str]
    choice: tuple
    predicted: float | None = None
    moved: dict | None = None
    source: str = "pareto"
    exact: bool = True

    @property
    def evaluated(self) -> bool:
        return self.score is not None

    def pairs(self) -> dict[str, BitPair]:
        return {k: BitPair.parse(v) for k, v in self.config.items()}

    def to_dict(self) -> dict:
        return {"index": self.index, "cost": self.cost, "score": self.score, "evaluated": self.evaluated,
                "predicted": self.predicted, "moved": self.moved, "source": self.source, "exact": self.exact,
                "choice": list(self.choice), "config": dict(self.config)}


@dataclass
class SearchResult:
    """See the module docstring for every field."""

    model: str
    profile: str
    score_name: str
    cost_metric: str
    cost_unit: str
    target: dict
    reference_score: float | None
    groups: list[dict]
    sensitivity: list[dict]
    base: SearchPoint
    pareto: list[SearchPoint]
    chosen: SearchPoint
    budget_met: bool
    baselines: dict[str, SearchPoint]
    evaluations: dict
    times: dict
    prefix_cache: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)

    @property
    def config(self) -> dict[str, BitPair]:
        """The chosen precision config (node -> :class:`BitPair`), usable by ``hwsim run --config``."""
        return self.chosen.pairs()

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "profile": self.profile, "score_name": self.score_name,
            "cost_metric": self.cost_metric, "cost_unit": self.cost_unit, "target": dict(self.target),
            "reference_score": self.reference_score, "budget_met": self.budget_met,
            "chosen": self.chosen.to_dict(), "base": self.base.to_dict(),
            "baselines": {k: v.to_dict() for k, v in self.baselines.items()},
            "pareto": [p.to_dict() for p in self.pareto],
            "sensitivity": list(self.sensitivity), "groups": list(self.groups),
            "evaluations": dict(self.evaluations), "times": dict(self.times),
            "prefix_cache": dict(self.prefix_cache), "files": dict(self.files),
        }

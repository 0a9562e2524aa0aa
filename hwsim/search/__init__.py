"""Mixed-precision search (Pandey & Nagel 2023): sensitivity, greedy Pareto path, budget search.

Public API: :func:`search` (model + profile + calibration data -> :class:`SearchResult`),
:func:`recheck`; the executor-independent algorithm is in :mod:`hwsim.search.algorithm`
(phases over any :class:`~hwsim.search.problem.SearchProblem`).
"""
from .api import DEFAULT_BASELINES, recheck, search
from .result import SearchPoint, SearchResult

__all__ = ["search", "recheck", "SearchResult", "SearchPoint", "DEFAULT_BASELINES"]

"""Compare candidate accelerators on one model and one budget.

For every hardware profile, :func:`compare` runs the mixed-precision search
(:func:`hwsim.search.search`) in that profile's own efficiency metric, then prices the
chosen configuration, the uniform baselines and every evaluated Pareto point in *all*
metrics the profile defines — latency (s), energy (J), BOPs relative to FP32 (32×32 bits
per MAC, so every profile is on one scale) and memory (bytes) — and names the profile that
wins each metric among those that meet the budget.

Profiles run in parallel across processes (``jobs``). Profiles whose numerics agree —
the same quantization rules, arithmetic and candidate pairs, hence the same integer
outputs for the same configuration — run in one worker that shares every score
(phase 1 included) instead of recomputing it; :attr:`ProfileOutcome.shared_scores`
counts the reuse.

Examples
--------
>>> from hwsim.demo_data import demo_model_path, load_demo_data
>>> from hwsim.compare import compare
>>> calib, _, _ = load_demo_data()
>>> c = compare(demo_model_path(), ["cpu_onnxruntime", "edge_tpu_like"], calib[:32], target_sqnr=20.0, jobs=1)
>>> sorted(o.profile for o in c.outcomes), c.winners["latency"] in ("cpu_onnxruntime", "edge_tpu_like")
(['cpu_onnxruntime', 'edge_tpu_like'], True)
"""
from __future__ import annotations

import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from .errors import ConfigError
from .search.api import numerics_key

__all__ = ["compare", "CompareResult", "ProfileOutcome", "METRICS", "numerics_key"]

METRICS = ("latency", "energy", "relative_bops", "memory")
"""The metrics every comparison reports (lower is better); energy only where a profile defines it."""

UNITS = {"latency": "s", "energy": "J", "relative_bops": "× FP32", "memory": "bytes"}


def _price(report) -> dict:
    """All comparison metrics of one cost report."""
    t = report.totals
    return {
        "latency": float(t.latency_s),
        "energy": None if t.energy_j is None else float(t.energy_j),
        "bops": float(t.bops),
        "relative_bops": float(t.bops) / (float(t.macs) * 32 * 32) if t.macs else 0.0,
        "memory": float(t.memory_bytes),
        "weight_bytes": int(t.weight_bytes),
        "peak_activation_bytes": int(t.peak_activation_bytes),
        "macs": int(t.macs),
    }


def _mix(config: Mapping[str, str]) -> str:
    """``"6×W8A8, 2×W4A8"``: how many configured layers run at each pair."""
    c = Counter(config.values())
    return ", ".join(f"{n}×{p}" for p, n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass
class ProfileOutcome:
    """One profile's answer: the search result plus prices in every metric.

    ``chosen`` / ``baselines[name]`` / ``pareto[i]`` are dicts with ``config``, ``score``,
    ``meets_budget`` and the :data:`METRICS` (``None`` where the profile lacks the data).
    ``layers`` is the per-node cost of the chosen configuration (name, op, pair, latency,
    energy, bound) for the latency breakdown.
    """

    profile: str
    description: str
    metric: str
    search: dict
    chosen: dict
    baselines: dict
    pareto: list
    layers: list
    budget_met: bool
    shared_scores: int = 0
    wall_s: float = 0.0

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("profile", "description", "metric", "budget_met", "chosen",
                                              "baselines", "pareto", "layers", "shared_scores", "wall_s",
                                              "search")}


@dataclass
class CompareResult:
    """The comparison: one :class:`ProfileOutcome` per profile and the winner of each metric."""

    model: str
    target: dict
    score_name: str
    outcomes: list[ProfileOutcome]
    winners: dict[str, str | None]
    margins: dict[str, dict]
    times: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)

    def outcome(self, profile: str) -> ProfileOutcome:
        for o in self.outcomes:
            if o.profile == profile:
                return o
        raise KeyError(profile)

    def to_dict(self) -> dict:
        return {"model": self.model, "target": self.target, "score_name": self.score_name,
                "winners": self.winners, "margins": self.margins, "times": self.times, "files": self.files,
                "profiles": [o.to_dict() for o in self.outcomes]}


# -- worker ------------------------------------------------------------------------------------


def _run_family(model, profiles: Sequence, calib, kwargs: dict, out_dirs: Sequence) -> list[dict]:
    """Search every profile of one numerics family, sharing scores between them."""
    from .search import search

    memo: dict = {}
    results = []
    for prof, out in zip(profiles, out_dirs):
        t0 = time.perf_counter()
        before = len(memo)
        r = search(model, prof, calib, out_dir=out, score_memo=memo, **kwargs)
        problem = r.problem
        hits = r.evaluations.get("total", 0) - (len(memo) - before)

        def priced(point, *, _p=problem) -> dict:
            choice = tuple(point.choice)
            d = {"config": dict(point.config), "score": point.score, "index": point.index,
                 "source": point.source, "exact": point.exact, "mix": _mix(point.config)}
            d.update(_price(_p.cost_report(choice)))
            return d

        threshold = r.target.get("threshold", -math.inf)

        def meets(score) -> bool:
            return score is not None and score >= threshold

        chosen = priced(r.chosen)
        chosen["meets_budget"] = bool(r.budget_met and meets(r.chosen.score))
        baselines = {}
        for name, b in r.baselines.items():
            baselines[name] = priced(b)
            baselines[name]["meets_budget"] = meets(b.score)
        pareto = []
        for p in r.pareto:
            d = priced(p)
            d["meets_budget"] = meets(p.score)
            pareto.append(d)
        report = problem.cost_report(tuple(r.chosen.choice))
        layers = [{"name": n.name, "op": n.op, "pair": n.pair, "latency": n.latency_s, "energy": n.energy_j,
                   "bound": n.bound, "macs": n.macs} for n in report.nodes]
        search_dict = r.to_dict()
        results.append(ProfileOutcome(
            profile=problem.profile.name, description=problem.profile.identity.description,
            metric=r.cost_metric, search=search_dict, chosen=chosen, baselines=baselines, pareto=pareto,
            layers=layers, budget_met=r.budget_met, shared_scores=max(0, int(hits)),
            wall_s=time.perf_counter() - t0).to_dict())
    return results


# -- driver ------------------------------------------------------------------------------------


def _winners(outcomes: list[ProfileOutcome]) -> tuple[dict, dict]:
    winners: dict[str, str | None] = {}
    margins: dict[str, dict] = {}
    for m in METRICS:
        ranked = sorted(((o.chosen[m], o.profile) for o in outcomes
                         if o.chosen.get("meets_budget") and o.chosen.get(m) is not None),
                        key=lambda t: (t[0], t[1]))
        winners[m] = ranked[0][1] if ranked else None
        if len(ranked) >= 2:
            best, second = ranked[0], ranked[1]
            margins[m] = {"winner": best[1], "value": best[0], "runner_up": second[1], "runner_up_value": second[0],
                          "ratio": (second[0] / best[0]) if best[0] > 0 else math.inf}
        elif ranked:
            margins[m] = {"winner": ranked[0][1], "value": ranked[0][0], "runner_up": None}
    return winners, margins


def compare(model, profiles: Sequence, calib, *, target_sqnr: float | None = None,
            max_drop: float | None = None, labels=None, eval_data=None, out_dir=None, jobs: int | None = None,
            full_curve: bool = False, observer: str = "minmax", progress: bool = False) -> CompareResult:
    """Search every profile for the cheapest config meeting the budget and compare them.

    Parameters
    ----------
    model : ONNX path or a :class:`~hwsim.graph.Graph` (e.g. imported with fixed dimensions).
    profiles : profile names (shipped), YAML paths or :class:`~hwsim.profile.HardwareProfile` objects.
    calib : calibration inputs (array for a single-input model or name -> array).
    target_sqnr, max_drop, labels, eval_data : the budget, as in :func:`hwsim.search.search`.
    out_dir : when given, each profile's search writes its files to ``out_dir/<profile>/``
        (checkpointed: a rerun resumes) and the comparison's files are written by
        :func:`hwsim.report.compare_report.write_compare` (the CLI does that).
    jobs : worker processes (default: number of cores, at most one per numerics family).
    """
    from .profile import resolve_profile

    t0 = time.perf_counter()
    if not profiles:
        raise ConfigError("give at least one profile to compare")
    resolved = [resolve_profile(p) for p in profiles]
    names = [p.name for p in resolved]
    dup = [n for n, c in Counter(names).items() if c > 1]
    if dup:
        raise ConfigError(f"profiles given twice: {', '.join(dup)}")
    families: dict[str, list[int]] = {}
    for i, p in enumerate(resolved):
        families.setdefault(numerics_key(p), []).append(i)
    out = Path(out_dir) if out_dir is not None else None
    kwargs = dict(target_sqnr=target_sqnr, max_drop=max_drop, labels=labels, eval_data=eval_data,
                  full_curve=full_curve, observer=observer, progress=False)
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(families)))
    if isinstance(model, (str, Path)):
        from .onnx_import import load_model

        model = load_model(model)        # once, here; workers receive the Graph
    tasks = [([resolved[i] for i in idx], [None if out is None else out / resolved[i].name for i in idx])
             for idx in families.values()]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(resolved), desc="compare", unit="profile", dynamic_ncols=True)
    raw: list[dict] = []
    try:
        if jobs == 1:
            for profs, outs in tasks:
                raw.extend(_run_family(model, profs, calib, kwargs, outs))
                if bar is not None:
                    bar.update(len(profs))
        else:
            from .parallel import map_in_processes

            calls = [("hwsim.compare", "_run_family", (model, profs, calib, kwargs, outs), {}) for profs, outs in tasks]
            done = map_in_processes(calls, jobs, on_done=lambda i, r: bar.update(len(r)) if bar is not None else None)
            for r in done:
                raw.extend(r)
    finally:
        if bar is not None:
            bar.close()
    order = {n: i for i, n in enumerate(names)}
    outcomes = sorted((ProfileOutcome(**r) for r in raw), key=lambda o: order[o.profile])
    winners, margins = _winners(outcomes)
    first = outcomes[0].search
    return CompareResult(model=first["model"], target=first["target"], score_name=first["score_name"],
                         outcomes=outcomes, winners=winners, margins=margins,
                         times={"total": time.perf_counter() - t0, "jobs": jobs, "families": len(families)})

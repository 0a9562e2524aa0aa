"""``hwsim.search.search``: mixed-precision search of a model on a hardware profile.

Pandey & Nagel 2023 ("A Practical Mixed Precision Algorithm for Post-Training
Quantization"), as AIMET's AMP implements it, with its known weaknesses fixed: every
evaluation runs the **integer** executor; calibration happens once; the Pareto path's cost
falls strictly (groups are only lowered, chosen by score lost per cost saved under the
profile's metric, precision conversions included); ``full_curve`` evaluates every point;
every evaluation is checkpointed so a killed search resumes to the identical result.

Examples
--------
>>> from hwsim.demo_data import demo_model_path, load_demo_data
>>> from hwsim.search import search
>>> calib, _, _ = load_demo_data()
>>> r = search(demo_model_path(), "cpu_onnxruntime", calib[:32], target_sqnr=25.0)
>>> r.budget_met, r.chosen.score >= 25.0, r.chosen.cost <= r.base.cost
(True, True, True)
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..bits import BitPair
from ..errors import ConfigError, DataError
from ..graph import Graph
from .algorithm import run_phases
from .checkpoint import CHECKPOINT_NAME, EvalStore
from .evaluator import ModelProblem, top1_accuracy
from .result import SearchPoint, SearchResult

__all__ = ["search", "recheck", "numerics_key", "DEFAULT_BASELINES"]

DEFAULT_BASELINES = ("W8A16", "W8A8", "W4A8")


def numerics_key(profile) -> str:
    """What decides a profile's integer outputs: quantization rules, arithmetic, candidate pairs.

    Two profiles with the same key give identical scores for identical configurations.
    """
    return repr((profile.quantization, profile.arithmetic, profile.candidates,
                 sorted(profile.op_overrides.items())))


def _load_graph(model) -> Graph:
    if isinstance(model, Graph):
        return model
    from ..onnx_import import load_model
    return load_model(model)


def _target(target, target_sqnr, max_drop) -> dict:
    given = [x is not None for x in (target, target_sqnr, max_drop)]
    if sum(given) > 1:
        raise ConfigError("give one budget: target (= target_sqnr) or max_drop")
    if target is not None:
        target_sqnr = target
    if target_sqnr is not None:
        v = float(target_sqnr)
        if not math.isfinite(v):
            raise ConfigError(f"target SQNR must be a finite number of dB, got {target_sqnr!r}")
        return {"kind": "sqnr", "value": v}
    if max_drop is not None:
        v = float(max_drop)
        if not v >= 0:
            raise ConfigError(f"max drop must be >= 0, got {max_drop!r}")
        return {"kind": "max_drop", "value": v}
    return {"kind": "none", "value": None}


def search(model: "str | Path | Graph", profile, calib, target: float | None = None, *,
           target_sqnr: float | None = None, max_drop: float | None = None,
           metric: Callable | None = None, labels=None, eval_data=None, cost_metric: str | None = None,
           out_dir=None, full_curve: bool = False, workers: int = 1, observer: str = "minmax",
           baselines: Sequence[str] = DEFAULT_BASELINES, prefix_cache: bool = True,
           progress: bool = False, resume: bool = True, score_memo=None, skip: bool = False) -> SearchResult:
    """Find the cheapest mixed-precision config meeting a budget.

    Parameters
    ----------
    model : ONNX path or a :class:`~hwsim.graph.Graph`.
    profile : a :class:`~hwsim.profile.HardwareProfile`, a shipped profile name or a YAML path.
    calib : calibration inputs (array for a single-input model, or name -> array).
    target, target_sqnr : budget as SQNR in dB of the integer outputs against float.
    max_drop : budget as the allowed drop of the score: against the float model's score
        with a user metric (``metric`` or ``labels``), else against the all-highest config.
    metric : ``metric(outputs: dict[name, array]) -> float``, higher is better.
    labels : labels for ``eval_data`` (or ``calib``): the metric becomes top-1 accuracy (%).
    eval_data : inputs the score is computed on (default: ``calib``).
    cost_metric : ``latency`` | ``bops`` | ``energy`` | ``memory`` (default: the profile's).
    out_dir : write results (sensitivity.json, pareto.json, config.yaml, pareto.png,
        report.md, result.json) and the checkpoint there.
    full_curve : evaluate every point of the Pareto path.
    workers : threads for phase 1 (results do not depend on it).
    baselines : uniform pairs to evaluate and compare against (those the profile lacks are skipped).
    prefix_cache : reuse integer tensors of the unchanged prefix of the graph.
    progress : show a progress bar (stderr).
    resume : reuse the checkpoint in ``out_dir`` when its inputs match.
    skip : let a phase-2 step lower a group by more than one candidate (W8A16 -> W4A8) when
        that loses less per cost saved; default: one candidate per step, as in the paper.
    score_memo : a dict shared between searches of the same model and data on several
        profiles (``hwsim compare``): scores are keyed by the profile's :func:`numerics_key`
        and the configuration, so profiles with the same numerics reuse each other's
        evaluations (phase 1 included).
    """
    from ..profile import resolve_profile

    t_start = time.perf_counter()
    tgt = _target(target, target_sqnr, max_drop)
    if tgt["kind"] == "none" and not full_curve:
        raise ConfigError("give a budget (target_sqnr or max_drop), or full_curve=True to map the whole front")
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    graph = _load_graph(model)
    prof = resolve_profile(profile)
    if labels is not None and metric is None:
        metric = top1_accuracy(labels)
        n = len(np.asarray(labels).reshape(-1))
        data = eval_data if eval_data is not None else calib
        first = data if not isinstance(data, dict) else next(iter(data.values()))
        if len(first) != n:
            raise DataError(f"labels: {n} labels for {len(first)} scoring inputs")
    problem = ModelProblem(graph, prof, calib, score_data=eval_data, metric=metric, cost_metric=cost_metric,
                           observer=observer, prefix_cache=prefix_cache)
    if tgt["kind"] == "max_drop" and problem.reference_score is not None:
        tgt["reference"] = "float"
        tgt["threshold"] = problem.reference_score - tgt["value"]
    elif tgt["kind"] == "sqnr":
        if problem.user_metric is not None:
            raise ConfigError("target_sqnr is an SQNR budget; with a user metric or labels use max_drop")
        tgt["threshold"] = tgt["value"]
    out = Path(out_dir) if out_dir is not None else None
    ck = out / CHECKPOINT_NAME if out is not None else None
    if ck is not None and not resume and ck.exists():
        ck.unlink()
    bar = None
    if progress:
        from tqdm import tqdm
        n1 = 1 + sum(len(g.candidates) - 1 for g in problem.groups)
        bar = tqdm(total=n1 + len(baselines), desc=f"search {graph.name} on {prof.name}", unit="eval",
                   dynamic_ncols=True, leave=False)

    def on_eval(choice, score, fresh):
        if bar is not None:
            if bar.n >= bar.total:
                bar.total = bar.n + 1
            bar.update(1)
            bar.set_postfix_str(f"{problem.score_name}={score:.2f}", refresh=False)

    score_fn = problem.score
    if score_memo is not None:
        nkey = numerics_key(prof)

        def score_fn(choice, _score=problem.score):
            key = (nkey, tuple(sorted(problem.describe(choice).items())))
            if key not in score_memo:
                score_memo[key] = _score(choice)
            return score_memo[key]

    store = EvalStore(score_fn, ck, fingerprint=problem.fingerprint, on_eval=on_eval)
    base_pairs = {}
    for name in baselines:
        pair = BitPair.parse(name)
        if pair in prof.candidates:
            base_pairs[str(pair)] = problem.uniform_choice(pair)
    t_setup = time.perf_counter() - t_start
    if tgt["kind"] == "max_drop" and "threshold" not in tgt:
        tgt["reference"] = "all-highest"
        base_score = store.score((0,) * len(problem.groups), "phase1")
        tgt["threshold"] = base_score - tgt["value"]
    threshold = tgt.get("threshold", -math.inf)
    try:
        ph = run_phases(problem, threshold=threshold, store=store, combine=problem.combine, full_curve=full_curve,
                        workers=workers, baselines={k: v[0] for k, v in base_pairs.items()},
                        cost=problem.cost, neighbours=problem.neighbours(), skip=skip)
    finally:
        if bar is not None:
            bar.close()

    def point(p, exact=True) -> SearchPoint:
        moved = None
        if p.moved is not None:
            g, a, b = p.moved
            grp = problem.groups[g]
            moved = {"group": grp.name, "from": str(grp.candidates[a]), "to": str(grp.candidates[b])}
        return SearchPoint(p.index, p.cost, p.score, problem.describe(p.choice), tuple(p.choice), p.predicted,
                           moved, p.source, exact)

    pareto = [point(p) for p in ph.points]
    chosen = point(ph.chosen, base_pairs[ph.chosen.source.split()[-1]][1] if ph.chosen.source != "pareto" else True)
    counts = ph.counts
    by = counts["by_phase"]
    evaluations = {"phase1": by.get("phase1", 0), "phase3": by.get("phase3", 0), "baselines": by.get("baselines", 0),
                   "total": counts["distinct"], "fresh": counts["fresh"], "resumed": counts["resumed"],
                   "cached": counts["cached"], "pareto_points": len(pareto),
                   "pareto_points_evaluated": sum(1 for p in pareto if p.evaluated),
                   "budget_probes": list(ph.budget_evaluated),
                   "checkpoint": ("none" if ck is None else "discarded (inputs changed)" if store.discarded
                                  else "resumed" if counts["resumed"] else "new")}
    cs = dict(problem.cache_stats)
    tot = cs["nodes_run"] + cs["nodes_skipped"]
    cs["skipped_fraction"] = cs["nodes_skipped"] / tot if tot else 0.0
    times = {"setup": t_setup, **{k: v for k, v in ph.times.items()}}
    result = SearchResult(
        model=graph.name, profile=prof.name, score_name=problem.score_name,
        cost_metric=problem.cost_metric.value, cost_unit=problem.cost_unit, target=tgt,
        reference_score=problem.reference_score,
        groups=[g.to_dict() for g in problem.qgroups],
        sensitivity=[e.to_dict(problem.groups) for e in ph.table.entries],
        base=pareto[0], pareto=pareto, chosen=chosen, budget_met=ph.budget_met,
        baselines={k: SearchPoint(None, b.cost, b.score, problem.describe(b.choice), tuple(b.choice),
                                  source=b.source, exact=base_pairs[k][1]) for k, b in ph.baselines.items()},
        evaluations=evaluations, times=times, prefix_cache=cs)
    if out is not None:
        from .report import write_outputs
        t0 = time.perf_counter()
        write_outputs(result, problem, out)
        result.times["report"] = time.perf_counter() - t0
    result.times["total"] = time.perf_counter() - t_start
    if out is not None:
        from ..io import atomic_write_json
        atomic_write_json(out / "result.json", result.to_dict())
    problem.release_cache()
    result.problem = problem          # not a dataclass field: the live problem, for recheck()
    return result


def recheck(result: SearchResult, problem: ModelProblem | None = None, *, points: str = "evaluated") -> list[str]:
    """Re-evaluate stored points from scratch (no prefix cache) and list mismatches (empty = all equal).

    Checks each evaluated Pareto point, the chosen point and the baselines: the stored cost
    must equal a fresh cost-model evaluation of the stored config and the stored score a
    fresh integer run.
    """
    problem = problem or getattr(result, "problem")
    fresh = ModelProblem(problem.graph, problem.profile, problem.calib,
                         score_data=None if problem.data is problem.calib else problem.data,
                         metric=problem.user_metric, cost_metric=problem.cost_metric.value,
                         observer=problem.stats.observer, prefix_cache=False, groups=problem.qgroups)
    bad = []
    pts = [p for p in result.pareto if p.evaluated or points == "all"]
    pts += [result.chosen] + list(result.baselines.values())
    for p in pts:
        choice = problem.qgroups.choice_for_config(p.pairs())
        c = fresh.cost(choice)
        if c != p.cost:
            bad.append(f"point {p.index} ({p.source}): stored cost {p.cost!r} != fresh {c!r}")
        if p.score is not None:
            s = fresh.score(choice)
            if not (s == p.score):
                bad.append(f"point {p.index} ({p.source}): stored score {p.score!r} != fresh {s!r}")
    return bad

"""Files a search writes: sensitivity.json, pareto.json, config.yaml, pareto.png, report.md, report.html.

All written atomically (``hwsim.io``); the plot uses matplotlib's Agg backend (no display).
``config.yaml`` is a :mod:`hwsim.quant.config` file (``hwsim run --config config.yaml``).
"""
from __future__ import annotations

import io
import math
from collections import Counter
from pathlib import Path

from ..io import atomic_write_bytes, atomic_write_json, atomic_write_text
from .result import SearchResult

__all__ = ["write_outputs", "plot_pareto", "markdown_report", "fmt_cost"]


def fmt_cost(v: float, unit: str) -> str:
    """Human units: 1.23 ms, 4.5 GBOPs, 12 µJ, 3.4 kB."""
    if v is None:
        return "-"
    if unit == "s":
        for s, u in ((1, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")):
            if abs(v) >= s:
                return f"{v / s:.4g} {u}"
        return f"{v:.3g} s"
    if unit == "J":
        for s, u in ((1, "J"), (1e-3, "mJ"), (1e-6, "µJ"), (1e-9, "nJ")):
            if abs(v) >= s:
                return f"{v / s:.4g} {u}"
        return f"{v:.3g} J"
    prefix = {"BOPs": "BOPs", "bytes": "B"}[unit]
    for s, u in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= s:
            return f"{v / s:.4g} {u}{prefix}"
    return f"{v:.4g} {prefix}"


def _fmt_score(s, name):
    if s is None:
        return "-"
    if s == math.inf:
        return "inf"
    return f"{s:.2f}" + (" dB" if name == "sqnr_db" else "")


def plot_pareto(result: SearchResult) -> bytes:
    """PNG bytes: cost vs score of the path (evaluated points solid, predictions hollow),
    the uniform baselines, the chosen point and the budget line."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 5), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    ref = result.baselines.get("W8A8")
    scale = ref.cost if ref is not None and ref.cost else result.base.cost
    xlab = f"{result.cost_metric} relative to uniform {'W8A8' if ref is not None else 'highest'}"
    ev = [p for p in result.pareto if p.evaluated and math.isfinite(p.score)]
    pr = [p for p in result.pareto if not p.evaluated and p.predicted is not None and math.isfinite(p.predicted)]
    if pr:
        ax.plot([p.cost / scale for p in pr], [p.predicted for p in pr], "o", mfc="none", color="#9ab",
                ms=4, label="path point (phase-1 prediction, not evaluated)")
    if ev:
        ax.plot([p.cost / scale for p in ev], [p.score for p in ev], "o-", color="#1f5fa8", ms=5,
                label="path point (evaluated, integer executor)")
    markers = {"W8A16": ("s", "#2a9d2a"), "W8A8": ("D", "#d98200"), "W4A8": ("^", "#c0392b")}
    for name, b in result.baselines.items():
        if b.score is None or not math.isfinite(b.score):
            continue
        m, c = markers.get(name, ("P", "#555"))
        ax.plot([b.cost / scale], [b.score], m, color=c, ms=9, label=f"uniform {name}")
    ch = result.chosen
    if ch.score is not None and math.isfinite(ch.score):
        ax.plot([ch.cost / scale], [ch.score], "*", color="#8e44ad", ms=16, label="chosen")
    thr = result.target.get("threshold")
    if thr is not None and math.isfinite(thr):
        ax.axhline(thr, color="#8e44ad", ls="--", lw=1, label=f"budget ({result.target['kind']})")
    ax.set_xlabel(xlab)
    ax.set_ylabel({"sqnr_db": "SQNR of integer outputs vs float (dB)"}.get(result.score_name, result.score_name))
    ax.set_title(f"{result.model} on {result.profile}: mixed-precision Pareto path", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def markdown_report(result: SearchResult, problem=None) -> str:
    r = result
    u = r.cost_unit
    L = []
    L.append(f"# Mixed-precision search: {r.model} on {r.profile}\n")
    tgt = r.target
    if tgt["kind"] == "sqnr":
        budget = f"SQNR ≥ {tgt['value']:.2f} dB (integer outputs vs float)"
    elif tgt["kind"] == "max_drop":
        budget = (f"{r.score_name} drop ≤ {tgt['value']:g} from the {tgt.get('reference')} score "
                  f"(threshold {tgt['threshold']:.4g})")
    else:
        budget = "none (full curve)"
    L.append(f"- cost metric: **{r.cost_metric}** (minimised); score: **{r.score_name}** (integer executor)")
    L.append(f"- budget: {budget} — {'**met**' if r.budget_met else '**NOT met** even at the highest precision'}")
    if r.reference_score is not None:
        L.append(f"- float model {r.score_name}: {r.reference_score:.4g}")
    L.append(f"- quantizer groups: {len(r.groups)}; Pareto path: {len(r.pareto)} points, "
             f"{r.evaluations['pareto_points_evaluated']} evaluated")
    L.append(f"- chosen: {r.chosen.source}, cost {fmt_cost(r.chosen.cost, u)}, "
             f"{r.score_name} {_fmt_score(r.chosen.score, r.score_name)}\n")
    L.append("## Result vs uniform precision\n")
    L.append(f"| configuration | {r.cost_metric} | relative to W8A8 | {r.score_name} | meets budget |")
    L.append("|---|---:|---:|---:|:---:|")
    ref = r.baselines.get("W8A8")
    thr = tgt.get("threshold", -math.inf)
    rows = [("**chosen (mixed)**", r.chosen)] + [(f"uniform {k}" + ("" if b.exact else " (nearest)"), b)
                                                  for k, b in r.baselines.items()]
    for name, p in rows:
        rel = f"{p.cost / ref.cost:.3f}" if ref is not None and ref.cost else "-"
        meets = "-" if p.score is None else ("yes" if p.score >= thr else "no")
        L.append(f"| {name} | {fmt_cost(p.cost, u)} | {rel} | {_fmt_score(p.score, r.score_name)} | {meets} |")
    L.append("")
    L.append("## Per-layer precision of the chosen config\n")
    counts = Counter(r.chosen.config.values())
    L.append("Pairs used: " + ", ".join(f"{k} × {v}" for k, v in sorted(counts.items())) + "\n")
    group_of = {op: g["name"] for g in r.groups for op in g["ops"]}
    cands = {g["name"]: g["candidates"] for g in r.groups}
    ops = {}
    if problem is not None:
        ops = {n.name: n.op for n in problem.graph.nodes}
    L.append("| layer | op | group | pair | group candidates |")
    L.append("|---|---|---|---|---|")
    for node, pair in r.chosen.config.items():
        g = group_of.get(node, "?")
        L.append(f"| {node} | {ops.get(node, '')} | {g} | {pair} | {' > '.join(cands.get(g, []))} |")
    L.append("")
    L.append("## Work done\n")
    e, t = r.evaluations, r.times
    L.append("| phase | evaluations | wall time |")
    L.append("|---|---:|---:|")
    L.append(f"| setup (import, calibration once, float reference) | - | {t.get('setup', 0):.2f} s |")
    L.append(f"| phase 1: sensitivity | {e['phase1']} | {t.get('phase1', 0):.2f} s |")
    L.append(f"| phase 2: greedy Pareto path ({len(r.pareto)} points, cost model only) | 0 | {t.get('phase2', 0):.2f} s |")
    L.append(f"| phase 3: budget search (probes {e['budget_probes']}) | {e['phase3']} | {t.get('phase3', 0):.2f} s |")
    L.append(f"| uniform baselines | {e['baselines']} | {t.get('baselines', 0):.2f} s |")
    L.append(f"| total | {e['total']} distinct ({e['fresh']} run now, {e['resumed']} resumed from checkpoint) | "
             f"{t.get('total', sum(v for k, v in t.items() if k != 'total')):.2f} s |")
    pc = r.prefix_cache
    if pc.get("evaluations"):
        L.append(f"\nPrefix cache: {pc['nodes_skipped']} of {pc['nodes_skipped'] + pc['nodes_run']} node executions "
                 f"({100 * pc['skipped_fraction']:.1f} %) reused from cached integer tensors of an unchanged prefix.")
    L.append("\n## Most sensitive groups (phase 1)\n")
    L.append(f"| group | lowered to | {r.score_name} | loss | cost saved |")
    L.append("|---|---|---:|---:|---:|")
    base_cost = r.base.cost
    for s in sorted(r.sensitivity, key=lambda s: (-s["loss"], s["group"], s["candidate"]))[:15]:
        L.append(f"| {s['group_name']} | {s['pair']} | {_fmt_score(s['score'], r.score_name)} | {s['loss']:.3f} | "
                 f"{fmt_cost(base_cost - s['cost'], u)} |")
    L.append("\n## Pareto path\n")
    L.append(f"| # | step | {r.cost_metric} | {r.score_name} | predicted |")
    L.append("|---:|---|---:|---:|---:|")
    for p in r.pareto:
        step = "all highest" if p.moved is None else f"{p.moved['group']}: {p.moved['from']} → {p.moved['to']}"
        mark = " ⟵ chosen" if p.index == r.chosen.index and r.chosen.source == "pareto" else ""
        L.append(f"| {p.index} | {step}{mark} | {fmt_cost(p.cost, u)} | {_fmt_score(p.score, r.score_name)} | "
                 f"{_fmt_score(p.predicted, r.score_name)} |")
    L.append("\nFiles: sensitivity.json, pareto.json, config.yaml (`hwsim run --config`), pareto.png, result.json.")
    return "\n".join(L) + "\n"


def write_outputs(result: SearchResult, problem, out_dir) -> dict:
    """Write every result file into ``out_dir``; returns name -> path (also stored in ``result.files``)."""
    from ..quant.config import save_config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    files["sensitivity.json"] = atomic_write_json(out / "sensitivity.json", {
        "model": result.model, "profile": result.profile, "score_name": result.score_name,
        "cost_metric": result.cost_metric, "base_score": result.base.score, "base_cost": result.base.cost,
        "groups": result.groups, "entries": result.sensitivity})
    files["pareto.json"] = atomic_write_json(out / "pareto.json", {
        "model": result.model, "profile": result.profile, "score_name": result.score_name,
        "cost_metric": result.cost_metric, "cost_unit": result.cost_unit, "target": result.target,
        "points": [p.to_dict() for p in result.pareto], "chosen": result.chosen.to_dict(),
        "baselines": {k: v.to_dict() for k, v in result.baselines.items()}})
    cfg = result.config
    common = Counter(map(str, cfg.values())).most_common(1)[0][0] if cfg else None
    files["config.yaml"] = save_config(out / "config.yaml", cfg, default=common, meta={
        "written_by": "hwsim search", "model": result.model, "profile": result.profile,
        "cost_metric": result.cost_metric, "cost": float(result.chosen.cost),
        "score_name": result.score_name, "score": None if result.chosen.score is None else float(result.chosen.score),
        "budget_met": bool(result.budget_met)})
    png = plot_pareto(result)
    md = markdown_report(result, problem)
    files["pareto.png"] = atomic_write_bytes(out / "pareto.png", png)
    files["report.md"] = atomic_write_text(out / "report.md", md)
    from ..report.search_report import write_search_html
    files["report.html"] = write_search_html(md, png, out)
    files["result.json"] = out / "result.json"
    result.files = {k: str(v) for k, v in files.items()}
    return result.files

"""Write a comparison: ``compare.json``, ``compare.md``, ``fronts.png``,
``latency_breakdown.png`` and a self-contained ``report.html``.

Every file is written atomically; the human-readable Markdown and HTML say which
profile wins each metric, by how much, and at what precision per layer.
"""
from __future__ import annotations

from pathlib import Path

from ..io import atomic_write_bytes, atomic_write_json, atomic_write_text
from ..search.report import fmt_cost
from .html import HtmlReport, figure_png
from .plots import fronts_figure, latency_breakdown_figure

__all__ = ["write_compare", "summary_lines", "fmt_value"]

_LABEL = {"latency": "latency", "energy": "energy", "relative_bops": "BOPs (rel. FP32)", "memory": "memory"}


def fmt_value(metric: str, v) -> str:
    """A comparison metric in human units (:func:`hwsim.search.report.fmt_cost`, as the search reports)."""
    if v is None:
        return "—"
    if metric == "relative_bops":
        return f"{v:.4f}"
    return fmt_cost(v, {"latency": "s", "energy": "J", "memory": "bytes", "bops": "BOPs"}[metric])


def _score(v, score_name: str) -> str:
    if v is None:
        return "—"
    if v == float("inf"):
        return "∞"
    return f"{v:.2f} dB" if score_name == "sqnr_db" else f"{v:.2f}"


def _budget_text(result) -> str:
    t = result.target
    if t.get("kind") == "sqnr":
        return f"SQNR ≥ {t['value']:g} dB (integer outputs vs float)"
    if t.get("kind") == "max_drop":
        ref = t.get("reference", "float")
        return f"{result.score_name} drop ≤ {t['value']:g} vs {ref} (threshold {t.get('threshold', float('nan')):.2f})"
    return "none (full curve)"


def summary_lines(result) -> list[str]:
    """One sentence per metric: who wins, by how much."""
    lines = []
    for m, info in result.margins.items():
        if info.get("runner_up"):
            lines.append(f"{_LABEL[m]}: {info['winner']} wins with {fmt_value(m, info['value'])}, "
                         f"{info['ratio']:.2f}× better than {info['runner_up']} ({fmt_value(m, info['runner_up_value'])}).")
        else:
            lines.append(f"{_LABEL[m]}: {info['winner']} ({fmt_value(m, info['value'])}) is the only profile "
                         "meeting the budget with this metric.")
    missed = [o.profile for o in result.outcomes if not o.chosen.get("meets_budget")]
    if missed:
        lines.append(f"Not meeting the budget at any precision they support: {', '.join(missed)}.")
    return lines


def _rows(result):
    metrics = ("latency", "energy", "relative_bops", "memory")
    rows, win_rows = [], []
    for o in result.outcomes:
        c = o.chosen
        wins = [m for m in metrics if result.winners.get(m) == o.profile]
        if wins:
            win_rows.append(len(rows))
        rows.append([o.profile, o.metric, c["mix"], _score(c["score"], result.score_name),
                     "yes" if c.get("meets_budget") else "no",
                     *[fmt_value(m, c.get(m)) for m in metrics], ", ".join(_LABEL[m] for m in wins) or ""])
    headers = ["profile", "optimises", "chosen precision", "score", "meets budget", "latency", "energy",
               "BOPs (rel. FP32)", "memory", "wins"]
    return headers, rows, win_rows


def _baseline_rows(result):
    rows = []
    for o in result.outcomes:
        for name, b in o.baselines.items():
            rows.append([o.profile, name + ("" if b.get("exact", True) else " (partial)"),
                         _score(b["score"], result.score_name), "yes" if b.get("meets_budget") else "no",
                         fmt_value("latency", b.get("latency")), fmt_value("energy", b.get("energy")),
                         fmt_value("relative_bops", b.get("relative_bops")), fmt_value("memory", b.get("memory"))])
    return ["profile", "uniform", "score", "meets budget", "latency", "energy", "BOPs (rel. FP32)", "memory"], rows


def _layer_rows(result):
    """Per-layer chosen pair for every profile (rows: layers in model order)."""
    names = []
    for o in result.outcomes:
        for n in o.chosen["config"]:
            if n not in names:
                names.append(n)
    headers = ["layer"] + [o.profile for o in result.outcomes]
    rows = [[n] + [o.chosen["config"].get(n, "—") for o in result.outcomes] for n in names]
    return headers, rows


def _md_table(headers, rows) -> str:
    out = ["| " + " | ".join(map(str, headers)) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(out)


def write_compare(result, out_dir) -> dict:
    """Write every comparison file into ``out_dir``; returns name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    threshold = result.target.get("threshold")
    fronts = figure_png(fronts_figure(result.outcomes, result.score_name, threshold))
    latency_winner = result.winners.get("latency") or result.outcomes[0].profile
    breakdown = figure_png(latency_breakdown_figure(result.outcome(latency_winner)))
    files = {
        "fronts.png": atomic_write_bytes(out / "fronts.png", fronts),
        "latency_breakdown.png": atomic_write_bytes(out / "latency_breakdown.png", breakdown),
    }
    headers, rows, win_rows = _rows(result)
    bh, brows = _baseline_rows(result)
    lh, lrows = _layer_rows(result)
    summary = summary_lines(result)
    timing = ", ".join(f"{o.profile} {o.wall_s:.1f} s" for o in result.outcomes)

    md = [f"# Accelerator comparison: {result.model}", "",
          f"Budget: {_budget_text(result)}. Each profile's search minimises its own metric; every "
          "configuration is then priced in all metrics (BOPs relative to FP32 = 32×32 bits per MAC).", "",
          "## Verdict", "", *[f"- {s}" for s in summary], "",
          "## Chosen configuration per profile", "", _md_table(headers, rows), "",
          "## Uniform-precision baselines", "", _md_table(bh, brows), "",
          "## Precision per layer", "", _md_table(lh, lrows), "",
          "## Plots", "", "![Pareto fronts](fronts.png)", "",
          f"![Per-layer latency of {latency_winner}](latency_breakdown.png)", "",
          f"Wall time: {result.times.get('total', 0):.1f} s with {result.times.get('jobs', 1)} worker(s) "
          f"({timing}).", ""]
    files["compare.md"] = atomic_write_text(out / "compare.md", "\n".join(md))

    html = HtmlReport(f"Accelerator comparison: {result.model}", f"Budget: {_budget_text(result)}")
    html.heading("Verdict")
    for s in summary:
        html.callout(s)
    html.heading("Chosen configuration per profile").table(headers, rows, highlight=win_rows)
    html.heading("Pareto fronts").figure(fronts, "Every profile's evaluated Pareto points on common axes; "
                                         "★ = chosen config at the budget, ○ = uniform precision.")
    html.heading(f"Per-layer latency: {latency_winner}").figure(breakdown, "Chosen configuration, coloured by pair.")
    html.heading("Uniform-precision baselines").table(bh, brows)
    html.heading("Precision per layer").table(lh, lrows)
    html.paragraph(f"Wall time {result.times.get('total', 0):.1f} s ({timing}).", "meta")
    files["report.html"] = html.write(out / "report.html")
    result.files = {k: str(v) for k, v in files.items()} | {"compare.json": str(out / "compare.json")}
    files["compare.json"] = atomic_write_json(out / "compare.json", result.to_dict())
    return {k: Path(v) for k, v in files.items()}

"""Plots for comparisons: Pareto fronts of several profiles on common axes, per-layer latency.

All functions return a matplotlib Figure (Agg backend); :func:`hwsim.report.html.figure_png`
turns one into PNG bytes.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["fronts_figure", "latency_breakdown_figure", "PAIR_COLORS"]

PAIR_COLORS = {"W4A8": "#d95f02", "W8A8": "#1b9e77", "W8A16": "#7570b3", "W4A16": "#e7298a",
               "W16A16": "#66a61e", "W4A4": "#e6ab02"}
_MARKERS = "osD^vP*Xh<>"
_AXES = (("latency", "latency (s)"), ("energy", "energy (J)"), ("relative_bops", "BOPs relative to FP32"))


def _score_label(score_name: str) -> str:
    return {"sqnr_db": "SQNR vs float (dB)", "top1_accuracy": "top-1 accuracy (%)"}.get(score_name, score_name)


def fronts_figure(outcomes, score_name: str, threshold: float | None = None):
    """Every profile's evaluated Pareto points, chosen config (star) and uniform baselines
    (hollow markers), one panel per metric: latency, energy (profiles that define it),
    relative BOPs. x: cost (log scale), y: score."""
    axes_used = [(k, label) for k, label in _AXES if any(o.chosen.get(k) is not None for o in outcomes)]
    fig, axes = plt.subplots(1, len(axes_used), figsize=(5.2 * len(axes_used), 4.3), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, (key, label) in zip(axes[0], axes_used):
        for i, o in enumerate(outcomes):
            if o.chosen.get(key) is None:
                continue
            color = cmap(i % 10)
            pts = sorted((p[key], p["score"]) for p in o.pareto if p["score"] is not None and p[key] is not None)
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, "-", color=color, alpha=0.55, lw=1.2)
                ax.plot(xs, ys, _MARKERS[i % len(_MARKERS)], color=color, ms=4, label=f"{o.profile}")
            for name, b in o.baselines.items():
                if b["score"] is not None and b.get(key) is not None:
                    ax.plot([b[key]], [b["score"]], _MARKERS[i % len(_MARKERS)], mfc="none", mec=color, ms=9, mew=1.4)
                    ax.annotate(name, (b[key], b["score"]), textcoords="offset points", xytext=(5, -10),
                                fontsize=7, color=color)
            c = o.chosen
            if c["score"] is not None:
                ax.plot([c[key]], [c["score"]], "*", color=color, ms=16, mec="black", mew=0.6, zorder=5)
        if threshold is not None and threshold > -1e300:
            ax.axhline(threshold, color="grey", ls="--", lw=1)
            ax.annotate("budget", xy=(0.01, threshold), xycoords=("axes fraction", "data"), fontsize=8,
                        color="grey", va="bottom")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(_score_label(score_name))
        ax.grid(True, which="both", alpha=0.25)
    axes[0][0].legend(fontsize=8, loc="lower right")
    fig.suptitle("Pareto fronts per accelerator (★ chosen at the budget, ○ uniform precision)", fontsize=11)
    fig.tight_layout()
    return fig


def latency_breakdown_figure(outcome, top: int = 25):
    """Per-layer latency of a profile's chosen configuration, coloured by bit-width pair
    (largest ``top`` layers; the rest summed)."""
    layers = [l for l in outcome.layers if l["latency"] > 0]
    layers.sort(key=lambda l: -l["latency"])
    shown, rest = layers[:top], layers[top:]
    names = [f"{l['name']} ({l['op']})" for l in shown]
    vals = [l["latency"] * 1e6 for l in shown]
    colors = [PAIR_COLORS.get(l["pair"] or "", "#999999") for l in shown]
    if rest:
        names.append(f"{len(rest)} other layers")
        vals.append(sum(l["latency"] for l in rest) * 1e6)
        colors.append("#cccccc")
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(names) + 1.4))
    ax.barh(range(len(names))[::-1], vals, color=colors)
    ax.set_yticks(range(len(names))[::-1], names, fontsize=7)
    ax.set_xlabel("latency (µs)")
    ax.set_title(f"{outcome.profile}: per-layer latency of the chosen config", fontsize=10)
    pairs = sorted({l["pair"] for l in shown if l["pair"]})
    handles = [plt.Rectangle((0, 0), 1, 1, color=PAIR_COLORS.get(p, "#999999")) for p in pairs]
    if handles:
        ax.legend(handles, pairs, fontsize=8, loc="lower right")
    ax.grid(True, axis="x", alpha=0.25)
    fig.tight_layout()
    return fig

"""Median (min-max) of several ``hwsim bench --json`` runs, per kernel x pair x shape x threads.

On a shared machine single runs move by +-30 %; ratios (to onnxruntime and torch, to one
thread, W4A8 to W8A8) are taken within each run first, then summarised. Usage::

    python3 bench/summarize.py bench/results/bench-0928Z-aligned.json bench/results/bench-0932Z-aligned.json ...
"""
from __future__ import annotations

import argparse
import json
import statistics


def summarize(paths):
    """Rows of (key, [GOP/s per run], [ratio to ORT MatMulInteger/QLinearConv per run])."""
    runs = [{(r["kernel"], r["pair"], r["shape"], r["threads"]): r for r in json.load(open(p))["rows"]}
            for p in paths]
    out = []
    for key in runs[0]:
        rows = [run[key] for run in runs if key in run]
        gops = [r["gops"] for r in rows]
        ratio = [r["gops"] / r["ort_int_gops"] for r in rows if r.get("ort_int_gops")]
        out.append((key, gops, ratio))
    return out


def per_run(paths, value):
    """{key: [``value(row)`` in each run where it is not None]}, ``value`` a row field name
    (e.g. ``scaling``: the kernel at two threads against one thread timed right after it;
    ``vs_W8A8``: W4A8 against W8A8) or a function of the row."""
    get = value if callable(value) else (lambda r: r.get(value))
    out = {}
    for p in paths:
        for r in json.load(open(p))["rows"]:
            v = get(r)
            if v is not None:
                out.setdefault((r["kernel"], r["pair"], r["shape"], r["threads"]), []).append(v)
    return out


def _ratio_to(peer):
    """Row -> our GOP/s over the peer's ``peer`` field, or None without that peer."""
    return lambda r: r["gops"] / r[peer] if r.get(peer) else None


def _span(v, fmt):
    return f"{fmt.format(statistics.median(v))} ({fmt.format(min(v))}-{fmt.format(max(v))})" if v else "-"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="JSON files written by hwsim bench --json")
    args = ap.parse_args(argv)
    print(f"{len(args.runs)} runs; median (min-max)")
    scaling, vs8 = per_run(args.runs, "scaling"), per_run(args.runs, "vs_W8A8")
    torch = per_run(args.runs, _ratio_to("torch_int_gops"))
    print(f"{'kernel':8} {'pair':7} {'shape':17} thr  {'GOP/s':>22}  {'xORTint':>16}  {'x1thr':>16}  {'xW8A8':>16}"
          f"  {'xTorch':>16}")
    for key, gops, ratio in summarize(args.runs):
        kernel, pair, shape, thr = key
        print(f"{kernel:8} {pair:7} {shape:17} {thr:3}  {_span(gops, '{:.0f}'):>22}  {_span(ratio, '{:.2f}'):>16}  "
              f"{_span(scaling.get(key, []), '{:.2f}'):>16}  {_span(vs8.get(key, []), '{:.2f}'):>16}  "
              f"{_span(torch.get(key, []), '{:.2f}'):>16}")


if __name__ == "__main__":
    main()

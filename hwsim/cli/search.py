"""``hwsim search``: mixed-precision search for a model on a hardware profile."""
from __future__ import annotations

import sys

from ._common import add_budget_arguments, add_model_arguments, load_budget_inputs, load_graph

DESCRIPTION = """\
Find the cheapest per-layer precision config (in the profile's metric: latency, BOPs,
energy or memory; precision conversions included) that meets a budget, scoring every
candidate through the integer executor (Pandey & Nagel 2023, as in AIMET's AMP):

  phase 1  sensitivity of each quantizer group at each lower candidate
  phase 2  greedy Pareto path from all-highest, cost falling strictly
  phase 3  binary + interpolation search for the cheapest point meeting the budget

Writes into --out: sensitivity.json, pareto.json, config.yaml (for `hwsim run --config`),
pareto.png, report.md, result.json and checkpoint.json (rerun the same command to resume
a killed search without repeating finished evaluations).

examples:
  hwsim search model.onnx --profile cpu_onnxruntime --calib calib.npy --target-sqnr 30 --out res/
  hwsim search model.onnx --profile mobile_npu --calib calib.npy --max-drop 1.0 \\
      --eval test_x.npy --labels test_y.npy --out res/
"""


def add_arguments(p):
    add_model_arguments(p)
    p.add_argument("--profile", required=True, help="hardware profile: a shipped name or a YAML file")
    add_budget_arguments(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (results and checkpoint)")
    p.add_argument("--metric", choices=("latency", "bops", "energy", "memory"),
                   help="cost metric to minimise (default: the profile's metric)")
    p.add_argument("--workers", type=int, default=1, help="threads for phase 1 (results do not depend on it)")
    p.add_argument("--baselines", default="W8A16,W8A8,W4A8",
                   help="uniform pairs to compare against, comma-separated (default: W8A16,W8A8,W4A8)")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint in --out")
    p.add_argument("--no-prefix-cache", action="store_true",
                   help="recompute the whole graph for every evaluation (for measuring the cache's saving)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from hwsim.bits import BitPair
    from hwsim.errors import ConfigError
    from hwsim.profile import resolve_profile
    from hwsim.search import search
    from hwsim.search.report import fmt_cost

    graph = load_graph(args)
    profile = resolve_profile(args.profile)
    calib, eval_data, labels = load_budget_inputs(args, graph.input_names)
    try:
        baselines = [s.strip() for s in args.baselines.split(",") if s.strip()]
        for s in baselines:
            BitPair.parse(s)
    except ValueError as e:
        raise ConfigError(f"--baselines: {e}") from None
    r = search(graph, profile, calib, target_sqnr=args.target_sqnr, max_drop=args.max_drop, labels=labels,
               eval_data=eval_data, cost_metric=args.metric, out_dir=args.out, full_curve=args.full_curve, workers=args.workers,
               observer=args.calibrator, baselines=baselines, prefix_cache=not args.no_prefix_cache,
               progress=not args.no_progress and sys.stderr.isatty(), resume=not args.no_resume)
    u = r.cost_unit
    sname = r.score_name
    print(f"{r.model} on {r.profile}: {len(r.groups)} quantizer groups, metric {r.cost_metric}")
    e, t = r.evaluations, r.times
    print(f"evaluations: phase 1 {e['phase1']}, phase 3 {e['phase3']}, baselines {e['baselines']} "
          f"({e['fresh']} run, {e['resumed']} resumed); time: phase 1 {t['phase1']:.1f} s, "
          f"phase 2 {t['phase2']:.1f} s, phase 3 {t['phase3']:.1f} s, total {t['total']:.1f} s")
    ref = r.baselines.get("W8A8")
    print(f"{'configuration':<22} {r.cost_metric:>14} {'vs W8A8':>8} {sname:>14}")
    rows = [("chosen (mixed)", r.chosen)] + [(f"uniform {k}", b) for k, b in r.baselines.items()]
    for name, p in rows:
        rel = f"{p.cost / ref.cost:.3f}" if ref is not None and ref.cost else "-"
        sc = "-" if p.score is None else f"{p.score:.3f}"
        print(f"{name:<22} {fmt_cost(p.cost, u):>14} {rel:>8} {sc:>14}")
    if not r.budget_met:
        print("budget NOT met even with every group at its highest candidate; config.yaml holds that config")
    print(f"wrote {', '.join(sorted(r.files))} in {args.out}")
    return 0 if r.budget_met else 1

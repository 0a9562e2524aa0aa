"""``hwsim compare``: which candidate accelerator serves a model best at one budget."""
from __future__ import annotations

import sys

from ._common import add_budget_arguments, add_model_arguments, load_budget_inputs, load_graph

DESCRIPTION = """\
Run the mixed-precision search on every profile (in parallel across cores; profiles with
the same numerics share their evaluations), price each profile's chosen configuration and
uniform baselines in latency, energy, BOPs (relative to FP32) and memory, and say which
profile wins each metric and by how much.

Writes into --out: compare.json, compare.md, report.html (self-contained, plots embedded),
fronts.png (all Pareto fronts on common axes), latency_breakdown.png (the latency winner,
per layer), and one folder per profile with its search results and checkpoint (rerun the
same command to resume).

examples:
  hwsim compare model.onnx --profiles cpu_onnxruntime mobile_npu edge_tpu_like \\
      --calib calib.npy --target-sqnr 30 --out cmp/
  hwsim compare model.onnx --profiles a.yaml b.yaml --calib calib.npy \\
      --max-drop 1.0 --eval test_x.npy --labels test_y.npy --out cmp/
"""


def add_arguments(p):
    add_model_arguments(p)
    p.add_argument("--profiles", nargs="+", required=True, metavar="P",
                   help="hardware profiles to compare: shipped names or YAML files")
    add_budget_arguments(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--jobs", type=int, default=None,
                   help="worker processes (default: one per core, at most one per numerics family)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def print_summary(result, files) -> None:
    from hwsim.report.compare_report import fmt_value, summary_lines

    print(f"{result.model}: {len(result.outcomes)} profiles compared in {result.times['total']:.1f} s")
    print(f"{'profile':<24} {'chosen precision':<26} {'score':>8} {'latency':>12} {'energy':>12} "
          f"{'BOPs/FP32':>10} {'memory':>10}")
    for o in result.outcomes:
        c = o.chosen
        score = "-" if c["score"] is None else f"{c['score']:.2f}"
        mark = "" if c.get("meets_budget") else "  (misses budget)"
        print(f"{o.profile:<24} {c['mix']:<26} {score:>8} {fmt_value('latency', c['latency']):>12} "
              f"{fmt_value('energy', c['energy']):>12} {fmt_value('relative_bops', c['relative_bops']):>10} "
              f"{fmt_value('memory', c['memory']):>10}{mark}")
    for line in summary_lines(result):
        print(line)
    print(f"report: {files['report.html']}  (also compare.md, compare.json, fronts.png, latency_breakdown.png)")


def run(args) -> int:
    from hwsim.errors import ConfigError
    from hwsim.compare import compare
    from hwsim.report.compare_report import write_compare

    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {args.jobs}")
    graph = load_graph(args)
    calib, eval_data, labels = load_budget_inputs(args, graph.input_names)
    result = compare(graph, args.profiles, calib, target_sqnr=args.target_sqnr, max_drop=args.max_drop,
                     labels=labels, eval_data=eval_data, out_dir=args.out, jobs=args.jobs,
                     full_curve=args.full_curve, observer=args.calibrator,
                     progress=not args.no_progress and sys.stderr.isatty())
    files = write_compare(result, args.out)
    print_summary(result, files)
    return 0 if any(o.chosen.get("meets_budget") for o in result.outcomes) else 1

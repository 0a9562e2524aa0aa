"""``hwsim inspect``: per-layer cost table of a model on a hardware profile."""
from __future__ import annotations

from ._common import add_model_arguments, load_graph

DESCRIPTION = """\
Print one row per node of the imported model: op, input and output shapes, MACs, BOPs,
bytes moved (packed weights + activations), roofline latency (or the profile's measured
entry), energy and what bounds it: compute or memory (roofline), measured (the profile's
latency table), fused (a Relu/Clip folded into its producer) or none (a free reshape-like
op); then network totals (latency includes precision conversions between nodes whose
activation widths differ). hw_profiles/README.md gives every formula.

Every node runs at --bits (default: the profile's highest candidate; an op type the
profile restricts runs at its own highest allowed pair), or at the per-layer pairs of
--config. --json writes the same numbers (times in seconds, energy in joules).

examples:
  hwsim inspect model.onnx --profile cpu_onnxruntime
  hwsim inspect model.onnx --profile my_npu.yaml --bits W4A8 --json cost.json
"""

__all__ = ["DESCRIPTION", "add_arguments", "run", "format_table"]


def add_arguments(p):
    add_model_arguments(p)
    p.add_argument("--profile", required=True,
                   help="hardware profile: the name of a shipped profile (e.g. cpu_onnxruntime) or a YAML file")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--bits", metavar="PAIR",
                   help="bit-width pair for every node, e.g. W8A8 (default: the profile's highest candidate)")
    g.add_argument("--config", metavar="CFG",
                   help="per-layer precision config YAML (default: PAIR, layers: {node: PAIR}) as written by search")
    p.add_argument("--json", metavar="OUT", help="also write the per-node costs and totals as JSON (atomically)")


def _si(x, unit="", digits=3) -> str:
    if x is None:
        return "-"
    x = float(x)
    if x == 0:
        return f"0{unit}"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= factor:
            return f"{x / factor:.{digits}g}{prefix}{unit}"
    return f"{x:.{digits}g}{unit}"


def _time(s) -> str:
    if s is None:
        return "-"
    if s == 0:
        return "0"
    for factor, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")):
        if abs(s) >= factor:
            return f"{s / factor:.3g}{unit}"
    return f"{s / 1e-12:.3g}ps"


def _energy(j) -> str:
    if j is None:
        return "-"
    if j == 0:
        return "0"
    for factor, unit in ((1.0, "J"), (1e-3, "mJ"), (1e-6, "uJ"), (1e-9, "nJ")):
        if abs(j) >= factor:
            return f"{j / factor:.3g}{unit}"
    return f"{j / 1e-12:.3g}pJ"


def _shape(s) -> str:
    return "x".join(str(d) for d in s) if s else "scalar"


def _bytes(b) -> str:
    b = int(b)
    for factor, unit in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if b >= factor:
            return f"{b / factor:.3g}{unit}"
    return f"{b}B"


def format_table(report, graph, profile, metric_line: str = "") -> str:
    """The human-readable per-layer table and totals of a :class:`~hwsim.cost.CostReport`."""
    rows = []
    for nc in report.nodes:
        node = graph.node(nc.name)
        act_in = [graph.shape(t) for t in node.inputs if t and not graph.is_constant(t)]
        ins = ",".join(_shape(s) for s in act_in) or "-"
        outs = ",".join(_shape(s) for s in nc.output_shapes)
        rows.append((nc.name, nc.op, nc.pair or "-", ins, outs, _si(nc.macs), _si(nc.bops),
                     _bytes(nc.bytes), _time(nc.latency_s), _energy(nc.energy_j), nc.bound))
    t = report.totals
    head = ("name", "op", "pair", "input", "output", "MACs", "BOPs", "bytes", "latency", "energy", "bound")
    total = ("TOTAL", "", "", "", "", _si(t.macs), _si(t.bops), _bytes(t.weight_bytes + t.activation_bytes),
             _time(t.latency_s), _energy(t.energy_j), "")
    widths = [max(len(str(r[i])) for r in [head, total, *rows]) for i in range(len(head))]
    right = {5, 6, 7, 8, 9}

    def line(r):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    out = [f"model {report.model} on profile {report.profile} (candidates "
           f"{', '.join(map(str, profile.candidates))}; {len(report.nodes)} nodes)",
           line(head), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    out.append("  ".join("-" * w for w in widths))
    out.append(line(total))
    out.append(f"weights {_bytes(t.weight_bytes)} (packed), peak activations {_bytes(t.peak_activation_bytes)}, "
               f"memory {_bytes(t.memory_bytes)}; BOPs {t.relative_bops:.3g}x of {t.reference}; "
               f"{t.compute_bound_nodes} compute-bound / {t.memory_bound_nodes} memory-bound nodes")
    out.append(f"latency {_time(t.latency_s)} = nodes {_time(t.node_latency_s)} + {t.conversions} precision "
               f"conversion(s) {_time(t.conversion_latency_s)}"
               + ("" if t.energy_j is None else f"; energy {_energy(t.energy_j)}"))
    if metric_line:
        out.append(metric_line)
    return "\n".join(out)


def run(args) -> int:
    from hwsim.bits import BitPair
    from hwsim.cost import CostModel, metric_value
    from hwsim.errors import ConfigError
    from hwsim.io import atomic_write_json
    from hwsim.profile import resolve_profile

    profile = resolve_profile(args.profile)
    graph = load_graph(args)
    cm = CostModel(graph, profile)
    if args.config:
        from hwsim.quant.config import load_config
        pairs = load_config(args.config, graph, profile)
        setting = {"config": str(args.config)}
    else:
        if args.bits:
            try:
                pair = BitPair.parse(args.bits)
            except ValueError as e:
                raise ConfigError(f"--bits: {e}") from None
            if pair not in profile.candidates:
                raise ConfigError(f"--bits {pair}: not supported by profile '{profile.name}'; allowed: "
                                  f"{', '.join(map(str, profile.candidates))}")
        else:
            pair = profile.highest_candidate
        pairs = cm.uniform_pairs(pair)
        setting = {"bits": str(pair)}
    report = cm.evaluate(pairs)
    m = profile.metric
    value = metric_value(report, m)
    ref = cm.reference_value(m)
    rel = value / ref if ref else None
    units = {"latency": "s", "bops": "BOPs", "energy": "J", "memory": "bytes"}[m.name.value]
    metric_line = (f"metric {m.name.value}: {value:.6g} {units} = "
                   f"{rel:.3g}x of the {m.reference_label} reference" if rel is not None else "")
    print(format_table(report, graph, profile, metric_line))
    if args.json:
        doc = {"model": report.model, "profile": profile.name, "profile_file": profile.file, **setting,
               "metric": {"name": m.name.value, "reference": m.reference_label, "value": value,
                          "reference_value": ref, "relative": rel},
               **{k: v for k, v in report.to_dict().items() if k not in ("model", "profile")}}
        atomic_write_json(args.json, doc)
        print(f"wrote {args.json}")
    return 0

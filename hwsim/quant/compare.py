"""Per-node comparison of float, fake-quant and integer execution (``hwsim run --compare``).

For every node output :func:`compare` reports

* ``sqnr_fake_db`` / ``sqnr_int_db`` — SQNR of the fake-quant and of the (dequantized)
  integer tensor against the float tensor: ``10·log10(Σ f² / Σ (f − q)²)``;
* ``max_lsb`` / ``frac_diff`` — fake-quant vs integer difference in LSBs of the tensor's
  scale (max and fraction of differing elements), accumulated through the network;
* ``local_max_lsb`` / ``local_frac_diff`` — the same, but with the fake-quant op fed the
  *integer* executor's inputs, isolating what this node's integer arithmetic does
  differently (requantization rounding, integer accumulation, overflow) from what it
  inherited;
* ``acc_overflows`` and ``out_clamped`` from the integer report, the node's ``kind`` (float
  islands are marked) and its pair.

Examples
--------
>>> import numpy as np
>>> from hwsim.graph import Graph, Node, TensorInfo
>>> from hwsim.profile import shipped_profile
>>> from hwsim.quant import calibrate, quantize_graph, compare
>>> rng = np.random.default_rng(0)
>>> g = Graph("g", (TensorInfo("x", (None, 8)),), ("y",),
...           (Node("fc", "Gemm", ("x", "w"), ("y",), {"transB": 1}),),
...           {"w": rng.normal(size=(4, 8)).astype(np.float32)}, shapes={"x": (1, 8), "y": (1, 4)})
>>> x = rng.normal(size=(64, 8)).astype(np.float32)
>>> qg = quantize_graph(g, shipped_profile("cpu_onnxruntime"), calibrate(g, x, progress=False), "W8A8")
>>> rep = compare(qg, {"x": x})
>>> row = rep.rows[0]
>>> row.node, row.sqnr_int_db > 30, row.max_lsb <= 1
('fc', True, True)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Mapping

import numpy as np

from hwsim.execute import run_graph

from .calibrate import check_feeds, float_dispatch
from .fake_exec import fake_node, run_fake
from .int_exec import IntReport, run_int
from .qgraph import QuantizedGraph

__all__ = ["NodeComparison", "CompareReport", "compare", "sqnr_db"]


def sqnr_db(ref: np.ndarray, test: np.ndarray) -> float:
    """``10·log10(Σ ref² / Σ (ref − test)²)`` in dB (inf when equal, -inf when ref is 0)."""
    ref = np.asarray(ref, np.float64)
    err = float(np.sum((ref - np.asarray(test, np.float64)) ** 2))
    sig = float(np.sum(ref ** 2))
    if err == 0.0:
        return float("inf")
    if sig == 0.0:
        return float("-inf")
    return float(10.0 * np.log10(sig / err))


@dataclass
class NodeComparison:
    """One row of the comparison (one node output tensor)."""

    node: str
    op: str
    kind: str
    pair: str | None
    tensor: str
    sqnr_fake_db: float
    sqnr_int_db: float
    max_lsb: int
    frac_diff: float
    local_max_lsb: int
    local_frac_diff: float
    acc_overflows: int
    out_clamped: int
    float_island: bool
    cause: str = ""
    pair_saturations: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CompareReport:
    """Rows in graph order plus output-level summaries and the integer report."""

    rows: list[NodeComparison]
    outputs: dict[str, dict]
    int_report: IntReport
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"meta": self.meta, "outputs": self.outputs, "nodes": [r.to_dict() for r in self.rows],
                "int_report": self.int_report.to_dict()}

    def table(self) -> str:
        """Human-readable per-node table."""
        head = (f"{'node':<28} {'op':<18} {'kind':<12} {'pair':<6} {'SQNR fake':>9} {'SQNR int':>9} "
                f"{'max LSB':>7} {'diff %':>7} {'local':>5} {'overfl':>6}")
        lines = [head, "-" * len(head)]

        def db(v):
            return "inf" if v == float("inf") else ("-inf" if v == float("-inf") else f"{v:.1f}")

        for r in self.rows:
            kind = r.kind + ("*" if r.float_island else "")
            lines.append(f"{r.node[:28]:<28} {r.op[:18]:<18} {kind:<12} {r.pair or '-':<6} {db(r.sqnr_fake_db):>9} "
                         f"{db(r.sqnr_int_db):>9} {r.max_lsb:>7d} {100 * r.frac_diff:>6.2f}% {r.local_max_lsb:>5d} "
                         f"{r.acc_overflows:>6d}")
        sat = [r for r in self.rows if r.pair_saturations]
        if sat:
            lines.append("x86 int16 pair saturations (vpmaddubsw emulation): "
                         + ", ".join(f"{r.node} ({r.pair_saturations})" for r in sat))
        lines.append("")
        for name, o in self.outputs.items():
            lines.append(f"output {name}: SQNR fake {db(o['sqnr_fake_db'])} dB, int {db(o['sqnr_int_db'])} dB, "
                         f"fake vs int max {o['max_lsb']} LSB on {100 * o['frac_diff']:.2f}% of elements")
        if any(r.float_island for r in self.rows):
            lines.append("* float island: dequantize -> float op -> quantize (no integer kernel)")
        lines.append("local = max LSB difference of this node alone (fed the integer executor's inputs)")
        causes: dict[str, list[str]] = {}
        for r in self.rows:
            if r.local_max_lsb > 0 and r.cause:
                causes.setdefault(r.cause, []).append(r.node)
        for cause, nodes in causes.items():
            shown = ", ".join(nodes[:4]) + (f" and {len(nodes) - 4} more" if len(nodes) > 4 else "")
            lines.append(f"local differences from {cause}: {shown}")
        return "\n".join(lines)


def _lsb(a: np.ndarray, b: np.ndarray, scale: float) -> tuple[int, float]:
    d = np.rint(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)) / float(scale))
    if d.size == 0:
        return 0, 0.0
    return int(d.max()), float(np.count_nonzero(d) / d.size)


def _cause(qg: QuantizedGraph, node, plan) -> str:
    """What makes this node's integer result differ from fake-quant's float rounding."""
    if plan.kind in ("fused", "move") and node.op != "Concat":
        return ""
    if plan.kind in ("float_island", "float"):
        return "float islands (float op between dequantize and quantize; same as fake-quant)"
    scheme = qg.profile.requant_for(plan.pair).value if plan.pair is not None else ""
    if plan.kind == "lut":
        return ("lookup tables filled with TFLite's reciprocal-multiply rounding" if scheme.startswith("tflite")
                else "lookup tables (exactly the fake-quant values)")
    if node.op in ("Add", "Mul", "Div", "Sub"):
        return f"elementwise {plan.as_op or node.op} rescaling ({scheme} arithmetic)"
    if node.op in ("AveragePool", "GlobalAveragePool", "Concat"):
        return f"integer rescaling of {node.op} ({scheme} multiplier)"
    if plan.kind == "dynamic":
        return "per-batch input quantization"
    extra = ""
    if plan.accumulator_bits and plan.accumulator_bits < 32:
        extra += ", accumulator overflow"
    if plan.pairwise_int16:
        extra += ", int16 pair saturation"
    return f"{scheme} requantization (multiplier precision, tie rule, exact integer sums vs float32 sums{extra})"


def compare(qg: QuantizedGraph, feeds: Mapping[str, np.ndarray]) -> CompareReport:
    """Run float, fake-quant and integer execution on ``feeds`` and compare node by node."""
    feeds = check_feeds(qg.graph, feeds)
    g = qg.graph
    f_env = run_graph(g, feeds, float_dispatch(), None, keep="all")
    q_env = run_fake(qg, feeds, keep="all")
    i_raw, rep = run_int(qg, feeds, keep="all", raw=True)

    def deq(t):
        v = i_raw[t]
        p = qg.act.get(t)
        return p.dequantize(v) if (p is not None and v.dtype.kind in "iu") else v

    rows = []
    for n in g.nodes:
        plan = qg.plans[n.name]
        nr = rep.nodes.get(n.name)
        local_in = [None if not t else (deq(t) if t in i_raw else g.constants.get(t)) for t in n.inputs]
        if plan.kind != "fused" and not qg.dynamic:
            local = fake_node(qg, n, local_in)
        else:
            local = None
        for k, t in enumerate(n.outputs):
            if not t or t not in f_env:
                continue
            fl, fk, it = f_env[t], q_env[t], deq(t)
            if plan.fused_node is not None:   # compare against the float tensor after the folded activation
                fl = f_env[g.node(plan.fused_node).outputs[0]]
            p = qg.act.get(t)
            scale = float(np.max(p.scale)) if p is not None else 1.0
            if p is not None:
                mx, fr = _lsb(fk, it, scale)
                lmx, lfr = _lsb(local[k], it, scale) if local is not None else (0, 0.0)
            else:
                mx, fr, lmx, lfr = 0, 0.0, 0, 0.0
            rows.append(NodeComparison(
                node=n.name, op=n.op, kind=plan.kind, pair=None if plan.pair is None else str(plan.pair), tensor=t,
                sqnr_fake_db=sqnr_db(fl, fk), sqnr_int_db=sqnr_db(fl, it), max_lsb=mx, frac_diff=fr,
                local_max_lsb=lmx, local_frac_diff=lfr,
                acc_overflows=0 if nr is None else nr.acc_overflows, out_clamped=0 if nr is None else nr.out_clamped,
                float_island=plan.kind in ("float_island", "float"), cause=_cause(qg, n, plan),
                pair_saturations=0 if nr is None else nr.pair_saturations))
    outputs = {}
    for t in g.outputs:
        p = qg.act.get(t)
        mx, fr = _lsb(q_env[t], deq(t), float(np.max(p.scale))) if p is not None else (0, 0.0)
        outputs[t] = {"sqnr_fake_db": sqnr_db(f_env[t], q_env[t]), "sqnr_int_db": sqnr_db(f_env[t], deq(t)),
                      "max_lsb": mx, "frac_diff": fr, "elements": int(np.size(f_env[t]))}
    meta = {"model": g.name, "profile": getattr(qg.profile, "name", None), "observer": qg.observer,
            "config": {k: str(v) for k, v in qg.config.items()},
            "float_islands": list(qg.float_islands), "total_acc_overflows": rep.total_overflows}
    return CompareReport(rows, outputs, rep, meta)

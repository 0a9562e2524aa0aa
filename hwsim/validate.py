"""Validate hwsim's integer execution of a quantized ONNX model against onnxruntime.

:func:`validate` imports the model as it is (:func:`hwsim.quant.qdq_import.import_quantized`:
its own scales, zero points, integer weights and biases), runs it with hwsim's integer
kernels, runs the same model in onnxruntime, and compares:

* every graph output, end to end: compared elements, mismatches, max difference in LSBs of
  the output's quantization scale;
* every integer intermediate tensor (onnxruntime exposes them when they are added as graph
  outputs on a copy of the model), both end to end and *isolated* — hwsim's node fed with
  onnxruntime's own inputs of that node — so a difference is attributed to the node that
  makes it, not to the ones that inherit it. ``first_divergence`` names the first node (in
  topological order) whose output differs.

Which arithmetic onnxruntime uses is read from the graph it actually runs (its optimized
model): where every quantized op became an integer kernel (QLinearConv, QLinearMatMul,
QGemm, QLinearAdd, ...) the tolerance is 0 LSB everywhere; where onnxruntime runs a float
op between DequantizeLinear and QuantizeLinear (int16 activations, int4 weights, ops
without an integer kernel) those nodes may differ by 1 LSB in isolation (float32 sums in a
different order), and the ±1 LSB tolerance applies to them; end-to-end differences are
reported as they are.

Session options (measured with onnxruntime 1.31 on x86-64): the QDQ fusions into integer
kernels happen at graph optimization level ``ORT_ENABLE_EXTENDED`` or higher (with
``ORT_DISABLE_ALL`` / ``ORT_ENABLE_BASIC`` every Conv/Add/Gemm runs in float between DQ and Q);
``session.qdqisint8allowed=1`` is needed for int8-activation groups (without it the first
Conv/Add groups of an int8 model run in float), uint8 groups are fused either way; int16
activations and int4 weights are never fused (float Conv/MatMul/Gemm). :func:`validate` uses
``ORT_ENABLE_ALL`` (the default) plus ``session.qdqisint8allowed=1``.

Examples
--------
>>> from hwsim.validate import ort_session_options
>>> ort_session_options().get_session_config_entry("session.qdqisint8allowed")
'1'
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import onnx
from onnx import helper

from hwsim.errors import ConfigError, DataError, ModelError
from hwsim.quant.qdq_import import INT_OPS, QModel, import_quantized, run_quantized

__all__ = ["TensorComparison", "ValidationReport", "validate", "ort_session_options", "ort_executed_ops",
           "ORT_INTEGER_OPS", "FLOAT_PATH_TOLERANCE_LSB"]

#: ops onnxruntime executes with integer arithmetic.
ORT_INTEGER_OPS = frozenset({
    "QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool",
    "QLinearAveragePool", "QLinearConcat", "QLinearLeakyRelu", "QLinearSigmoid", "QLinearSoftmax",
    "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear",
})
#: ops that neither compute nor round (layout, selection, the quantizers themselves).
_NEUTRAL_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "Transpose", "Reshape", "Flatten", "Squeeze",
                          "Unsqueeze", "Identity", "MaxPool", "NhwcMaxPool", "Shape", "Gather", "Concat", "Slice",
                          "ReorderInput", "ReorderOutput"})
#: documented tolerance where onnxruntime runs a float op between DQ and Q.
FLOAT_PATH_TOLERANCE_LSB = 1


def ort_session_options(int8_kernels: bool = True, optimized_model_path: str | None = None):
    """onnxruntime SessionOptions that make ORT run its integer kernels on x86.

    ``session.qdqisint8allowed=1`` enables the int8-activation QDQ fusions; the default
    optimization level (all) is kept because the QDQ fusions are what produce integer kernels.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if int8_kernels:
        so.add_session_config_entry("session.qdqisint8allowed", "1")
    if optimized_model_path:
        so.optimized_model_filepath = optimized_model_path
    return so


def _session(model_bytes: bytes, **kw):
    import onnxruntime as ort

    try:
        return ort.InferenceSession(model_bytes, ort_session_options(**kw), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"onnxruntime cannot load the model: {msg}") from None


def ort_executed_ops(model_bytes: bytes, int8_kernels: bool = True) -> list[tuple[str, str]]:
    """(node name, op type) of the graph onnxruntime actually executes after its optimizations."""
    fd, path = tempfile.mkstemp(suffix=".onnx")
    os.close(fd)
    try:
        _session(model_bytes, int8_kernels=int8_kernels, optimized_model_path=path)
        m = onnx.load(path)
        return [(n.name, n.op_type) for n in m.graph.node]
    finally:
        for p in (path, path + ".data"):
            if os.path.exists(p):
                os.unlink(p)


@dataclass(frozen=True)
class TensorComparison:
    """One tensor compared: element count, differing elements, max |difference| in LSBs.

    Integer tensors: code difference. Float outputs of a DequantizeLinear: difference divided
    by that quantizer's scale. Other float outputs (e.g. QGemm without an output scale): the
    absolute difference."""

    compared: int
    mismatches: int
    max_abs_lsb: float

    def to_dict(self) -> dict:
        return {"compared": self.compared, "mismatches": self.mismatches, "max_abs_lsb": self.max_abs_lsb}


def _compare(ours: np.ndarray, theirs: np.ndarray, lsb) -> TensorComparison:
    a = np.asarray(ours)
    b = np.asarray(theirs)
    if a.shape != b.shape:
        raise ModelError(f"shape mismatch between hwsim {list(a.shape)} and onnxruntime {list(b.shape)}")
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        d = np.abs(a.astype(np.int64) - b.astype(np.int64)).astype(np.float64)
    else:
        d = np.abs(a.astype(np.float64) - b.astype(np.float64))
        if lsb is not None:
            s = np.asarray(lsb, np.float64)
            d = d / s if s.ndim == 0 else d / s.reshape([-1] + [1] * (d.ndim - 2)) if d.ndim > 1 else d / s
    mism = int(np.count_nonzero(a != b))
    mx = float(d.max()) if d.size else 0.0
    if lsb is not None or a.dtype.kind in "iu":
        mx = float(np.round(mx, 6))
    return TensorComparison(int(a.size), mism, mx)


@dataclass
class ValidationReport:
    """Result of :func:`validate` (``to_dict()`` is the JSON the CLI writes)."""

    model: str
    against: str
    bit_exact: bool
    within_tolerance: bool
    tolerance_lsb: int
    outputs: dict[str, TensorComparison]
    nodes: list[dict[str, Any]]
    first_divergence: dict[str, Any] | None
    ort_integer_path: bool
    ort_float_nodes: list[str]
    intermediates_compared: bool
    session_options: dict[str, str] = field(default_factory=dict)
    model_kind: str = "qdq"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "against": self.against,
            "bit_exact": self.bit_exact,
            "within_tolerance": self.within_tolerance,
            "tolerance_lsb": self.tolerance_lsb,
            "outputs": {k: v.to_dict() for k, v in self.outputs.items()},
            "first_divergence": self.first_divergence,
            "ort_integer_path": self.ort_integer_path,
            "ort_float_nodes": list(self.ort_float_nodes),
            "intermediates_compared": self.intermediates_compared,
            "session_options": dict(self.session_options),
            "model_kind": self.model_kind,
            "nodes": self.nodes,
        }

    def summary_lines(self) -> list[str]:
        lines = [f"model {self.model} ({self.model_kind}) against {self.against}: "
                 + ("onnxruntime runs integer kernels for every quantized op" if self.ort_integer_path
                    else f"onnxruntime runs {len(self.ort_float_nodes)} op(s) in float: "
                         + ", ".join(self.ort_float_nodes[:8]) + (" ..." if len(self.ort_float_nodes) > 8 else ""))]
        w = max([len(k) for k in self.outputs] + [6])
        lines.append(f"{'output':<{w}}  {'compared':>9}  {'mismatches':>10}  {'max |diff| LSB':>14}")
        for k, v in self.outputs.items():
            lines.append(f"{k:<{w}}  {v.compared:>9}  {v.mismatches:>10}  {v.max_abs_lsb:>14g}")
        if self.first_divergence is None:
            lines.append("first divergence: none" + ("" if self.intermediates_compared
                                                    else " (intermediates not compared)"))
        else:
            f = self.first_divergence
            iso = ("isolated: not computed" if f["isolated_mismatches"] is None else
                   f"isolated: {f['isolated_mismatches']} differ, max {f['isolated_max_abs_lsb']:g} LSB")
            lines.append(f"first divergence: node '{f['node']}' ({f['op']}) tensor '{f['tensor']}': "
                         f"{f['mismatches']} of {f['compared']} differ, max {f['max_abs_lsb']:g} LSB ({iso})")
            if f.get("hwsim_float_ops") and not f.get("ort_float"):
                lines.append(f"  hwsim runs {', '.join(f['hwsim_float_ops'])} as a float island; onnxruntime "
                             "runs an integer kernel there, which hwsim does not model")
        verdict = ("bit-exact" if self.bit_exact else
                   f"within tolerance (±{self.tolerance_lsb} LSB per node where onnxruntime runs float)"
                   if self.within_tolerance else "NOT within tolerance")
        lines.append(f"result: {verdict}")
        return lines


def _check_profile(profile) -> None:
    """``--against onnxruntime`` needs a profile whose requantization is onnxruntime's."""
    if profile is None:
        return
    from hwsim.kernels.schemes import Requant

    schemes = {getattr(v, "value", v) for v in profile.arithmetic.requant.values()}
    if schemes != {Requant.ONNXRUNTIME.value}:
        raise ConfigError(f"profile '{profile.name}' requantizes with {', '.join(sorted(schemes))}; validating "
                          "against onnxruntime needs requant: onnxruntime (e.g. hw_profiles/cpu_onnxruntime.yaml)")


def _instrumented(model: onnx.ModelProto, tensors: list[str], formats) -> bytes:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    produced = {o for n in m.graph.node for o in n.output}
    for t in tensors:
        if t in have or t not in produced:
            continue
        fmt = formats[t]
        np_dt = fmt.storage_dtype if fmt.bits != 4 else None
        if np_dt is None:
            continue   # int4 graph outputs: not exposed
        m.graph.output.append(helper.make_tensor_value_info(t, helper.np_dtype_to_tensor_dtype(np_dt), None))
    return m.SerializeToString()


class _IsolatedEvaluator:
    """Computes one node's output from onnxruntime's own integer intermediates: the node (and
    any float-island chain between it and the nearest exposed integer tensors) is run by
    hwsim on onnxruntime's inputs, so a difference belongs to this node alone."""

    def __init__(self, qm: QModel, ivals, feeds):
        from hwsim.ops import FLOAT_OPS

        self.qm = qm
        self.ivals = ivals
        self.feeds = feeds
        self.dispatch = {**FLOAT_OPS, **INT_OPS}
        self.memo: dict[str, np.ndarray] = {}

    def _value(self, x: str, chain: list[str], depth: int):
        g = self.qm.graph
        if x in self.ivals:
            return self.ivals[x]
        if x in g.constants:
            return g.constants[x]
        if x in self.feeds:
            return self.feeds[x]
        if x in self.memo:
            return self.memo[x]
        prod = g.producer(x)
        if prod is None or depth > 16:
            return None
        chain.append(prod.name)
        outs = self._run(prod, chain, depth + 1)
        if outs is None:
            return None
        for name, v in zip(prod.outputs, outs):
            if name:
                self.memo[name] = v
        return self.memo.get(x)

    def _run(self, node, chain, depth):
        impl = self.dispatch.get(node.op)
        if impl is None:
            return None
        args = []
        for x in node.inputs:
            if x == "":
                args.append(None)
                continue
            v = self._value(x, chain, depth)
            if v is None:
                return None
            args.append(v)
        return impl(node, args, None)

    def node_output(self, node, tensor: str, chain: list[str]):
        outs = self._run(node, chain, 0)
        if outs is None:
            return None
        return outs[list(node.outputs).index(tensor)]


def validate(model, feeds: Mapping[str, np.ndarray], *, against: str = "onnxruntime", profile=None,
             int8_kernels: bool = True, compare_intermediates: bool = True) -> ValidationReport:
    """Run ``model`` (path, bytes or ModelProto) in hwsim's integer executor and in onnxruntime.

    Parameters
    ----------
    feeds : input name -> array.
    against : only ``"onnxruntime"``.
    profile : optional HardwareProfile; must use ``requant: onnxruntime``.
    int8_kernels : set ``session.qdqisint8allowed=1`` (default; what makes int8 QDQ run in integer).
    compare_intermediates : expose and compare integer intermediates (first divergence).

    Returns
    -------
    ValidationReport
        ``within_tolerance`` is the verdict: 0 mismatches anywhere when onnxruntime's
        arithmetic is integer for every quantized op; otherwise every node within
        ±1 LSB in isolation, and nodes onnxruntime runs in integer exact.
    """
    if against != "onnxruntime":
        raise ConfigError(f"--against must be onnxruntime, got {against!r}")
    _check_profile(profile)
    from hwsim.quant.qdq_import import _load

    proto = _load(model)
    name = str(model) if not isinstance(model, (onnx.ModelProto, bytes, bytearray)) else (proto.graph.name or "model")
    qm = import_quantized(proto)
    raw = proto.SerializeToString()

    # ours: every tensor kept
    ours = run_quantized(qm, feeds, keep="all")
    feeds_ort = {t.name: np.asarray(feeds[t.name]).astype(t.dtype, copy=False) for t in qm.graph.inputs}

    # onnxruntime, plain (the verdict on outputs uses the unmodified model)
    sess = _session(raw, int8_kernels=int8_kernels)
    out_names = [o.name for o in sess.get_outputs()]
    try:
        theirs = dict(zip(out_names, sess.run(out_names, feeds_ort)))
    except Exception as e:
        raise DataError(f"onnxruntime rejected the input: {str(e).strip().splitlines()[0]}") from None
    executed = ort_executed_ops(raw, int8_kernels)
    float_nodes = [nm for nm, op in executed if op not in ORT_INTEGER_OPS and op not in _NEUTRAL_OPS]
    integer_path = not float_nodes
    tol = 0 if integer_path else FLOAT_PATH_TOLERANCE_LSB

    outputs = {o: _compare(ours[o], theirs[o], qm.lsb(o)) for o in qm.graph.outputs}

    # intermediates
    nodes_report: list[dict[str, Any]] = []
    first = None
    inter_ok = False
    if compare_intermediates:
        tensors = [t for t in qm.integer_tensors if t not in qm.graph.outputs]
        isess = _session(_instrumented(proto, tensors, qm.formats), int8_kernels=int8_kernels)
        inames = [o.name for o in isess.get_outputs()]
        ivals = dict(zip(inames, isess.run(inames, feeds_ort)))
        # exposing tensors must not change what onnxruntime computes
        inter_ok = all(np.array_equal(ivals[o], theirs[o]) for o in out_names)
        if inter_ok:
            float_set = set(float_nodes)
            iso_eval = _IsolatedEvaluator(qm, ivals, feeds_ort)
            for n in qm.graph.nodes:
                outs = [t for t in n.outputs if t in ivals and t in qm.formats]
                if not outs:
                    continue
                t = outs[0]
                e2e = _compare(ours[t], ivals[t], None)
                iso = None
                chain: list[str] = []
                got = iso_eval.node_output(n, t, chain)
                if got is not None:
                    iso = _compare(got, ivals[t], None)
                src = [x for c in [n.name] + chain for x in qm.source_nodes.get(c, (c,))]
                ort_float = any(x in float_set for x in src)
                entry = {"node": n.name, "op": n.op, "tensor": t, **e2e.to_dict(),
                         "isolated_mismatches": None if iso is None else iso.mismatches,
                         "isolated_max_abs_lsb": None if iso is None else iso.max_abs_lsb,
                         "ort_float": ort_float,
                         "hwsim_float_ops": [c for c in [n.name] + chain
                                             if qm.graph.has_node(c) and qm.graph.node(c).op not in INT_OPS]}
                nodes_report.append(entry)
                if first is None and e2e.mismatches:
                    first = entry
    bit_exact = all(v.mismatches == 0 for v in outputs.values()) and (first is None)
    if integer_path:
        within = bit_exact
    else:
        within = True
        for e in nodes_report:
            iso = e["isolated_max_abs_lsb"]
            lim = tol if e["ort_float"] else 0
            if iso is None:
                iso = e["max_abs_lsb"]
            if iso > lim:
                within = False
        if not inter_ok and compare_intermediates:
            within = all(v.max_abs_lsb <= tol for v in outputs.values())
        if not compare_intermediates:
            within = all(v.max_abs_lsb <= tol for v in outputs.values())
    return ValidationReport(
        model=name, against=against, bit_exact=bit_exact, within_tolerance=bool(within), tolerance_lsb=tol,
        outputs=outputs, nodes=nodes_report, first_divergence=first, ort_integer_path=integer_path,
        ort_float_nodes=float_nodes, intermediates_compared=inter_ok,
        session_options={"session.qdqisint8allowed": "1" if int8_kernels else "0",
                         "graph_optimization_level": "ORT_ENABLE_ALL"},
        model_kind=qm.kind)

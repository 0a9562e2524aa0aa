"""Integer executor: only integer arithmetic between the input quantizer and the output dequantizer.

:func:`run_int` quantizes the graph inputs with their :class:`~hwsim.quant.qparams.QuantParams`
(``hwsim.kernels.quantize``, the profile's tie rule), runs every node on integer codes
through :func:`hwsim.execute.run_graph`, and dequantizes what it returns. Per node:

* ``int``   — Conv / Gemm / MatMul through ``hwsim.kernels.qconv2d`` / ``qgemm`` with the
  profile's accumulator width, overflow rule and requantization scheme (fused ReLU/ReLU6
  clamp included); Add / Mul through ``hwsim.kernels.elementwise.qadd`` / ``qmul``;
  average pooling as an integer window sum requantized by ``hwsim.kernels.requantize``
  with the real multiplier ``s_in / (n · s_out)``;
* ``move``  — data movement and clamping on integer codes (same scale in and out; Concat
  requantizes inputs whose scale differs from its output's);
* ``lut``   — a lookup table with one entry per input code, filled once from the float
  function (as TFLite builds its int8 sigmoid/tanh tables);
* ``float_island`` — dequantize → float op → quantize (Softmax, LayerNorm …): flagged in the
  report, never silent;
* ``fused`` — an activation already applied by its producer's output clamp.

The returned :class:`IntReport` counts, per node, MACs, accumulator overflow events
(wrap or saturate, after every addition), x86 int16 pair saturations and outputs clamped by
requantization.

Examples
--------
>>> import numpy as np
>>> from hwsim.graph import Graph, Node, TensorInfo
>>> from hwsim.profile import shipped_profile
>>> from hwsim.quant import calibrate, quantize_graph, run_int
>>> rng = np.random.default_rng(0)
>>> g = Graph("g", (TensorInfo("x", (None, 8)),), ("y",),
...           (Node("fc", "Gemm", ("x", "w", "b"), ("y",), {"transB": 1}),),
...           {"w": rng.normal(size=(4, 8)).astype(np.float32), "b": np.zeros(4, np.float32)},
...           shapes={"x": (1, 8), "y": (1, 4)})
>>> x = rng.normal(size=(32, 8)).astype(np.float32)
>>> qg = quantize_graph(g, shipped_profile("cpu_onnxruntime"), calibrate(g, x, progress=False), "W8A8")
>>> outs, report = run_int(qg, {"x": x})
>>> outs["y"].dtype, report.nodes["fc"].macs, report.nodes["fc"].acc_overflows
(dtype('float32'), 1024, 0)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, MutableMapping

import numpy as np

from hwsim.errors import KernelError, UnsupportedOpError
from hwsim.execute import run_graph
from hwsim.graph import Node

from .calibrate import check_feeds, float_dispatch
from .qgraph import QuantizedGraph, NodePlan
from .qparams import QuantParams

__all__ = ["run_int", "IntReport", "NodeReport", "int_dispatch", "quantize_feeds", "reusable_values"]


@dataclass
class NodeReport:
    """What happened in one node during integer execution (summed over calls)."""

    name: str
    op: str
    kind: str
    pair: str | None
    macs: int = 0
    acc_overflows: int = 0
    pair_saturations: int = 0
    out_clamped: int = 0
    calls: int = 0
    note: str = ""

    @property
    def float_island(self) -> bool:
        return self.kind in ("float_island", "float")

    def to_dict(self) -> dict:
        return {"op": self.op, "kind": self.kind, "pair": self.pair, "float_island": self.float_island,
                "macs": self.macs, "acc_overflows": self.acc_overflows,
                "pair_saturations": self.pair_saturations, "out_clamped": self.out_clamped,
                "calls": self.calls, "note": self.note}


@dataclass
class IntReport:
    """Per-node integer-execution report (node name -> :class:`NodeReport`, graph order)."""

    nodes: dict[str, NodeReport] = field(default_factory=dict)

    @property
    def float_islands(self) -> tuple[str, ...]:
        return tuple(n for n, r in self.nodes.items() if r.float_island)

    @property
    def total_overflows(self) -> int:
        return sum(r.acc_overflows for r in self.nodes.values())

    def merge(self, other: "IntReport") -> "IntReport":
        """Add ``other``'s counts into this report (for runs over several batches)."""
        for k, r in other.nodes.items():
            mine = self.nodes.get(k)
            if mine is None:
                self.nodes[k] = NodeReport(**{f: getattr(r, f) for f in r.__dataclass_fields__})
            else:
                for f in ("macs", "acc_overflows", "pair_saturations", "out_clamped", "calls"):
                    setattr(mine, f, getattr(mine, f) + getattr(r, f))
        return self

    def to_dict(self) -> dict:
        return {"total_acc_overflows": self.total_overflows, "float_islands": list(self.float_islands),
                "nodes": {k: r.to_dict() for k, r in self.nodes.items()}}


class _Ctx:
    __slots__ = ("qg", "report", "rounding")

    def __init__(self, qg: QuantizedGraph, report: IntReport):
        self.qg = qg
        self.report = report
        self.rounding = qg.profile.arithmetic.rounding


def _rec(ctx: _Ctx, node: Node, plan: NodePlan, stats=None):
    r = ctx.report.nodes.get(node.name)
    if r is None:
        r = ctx.report.nodes[node.name] = NodeReport(node.name, node.op, plan.kind,
                                                     None if plan.pair is None else str(plan.pair), note=plan.note)
    r.calls += 1
    if stats is not None:
        r.macs += int(stats.macs)
        r.acc_overflows += int(stats.acc_overflows)
        r.pair_saturations += int(stats.pair_saturations)
        r.out_clamped += int(stats.out_clamped)


# -- helpers -----------------------------------------------------------------------------------

def _k():
    import hwsim.kernels as k
    return k


def _accum(plan: NodePlan):
    from hwsim.kernels.params import AccumParams
    return AccumParams(plan.accumulator_bits, plan.overflow, plan.pairwise_int16)


def _clamp_codes(plan: NodePlan, out: QuantParams) -> dict:
    """act_min / act_max / activation keywords for RequantParams.create from a fused activation."""
    fa = plan.fused_activation
    if fa is None:
        return {}
    if isinstance(fa, str):
        return {"activation": fa}
    lo, hi = fa
    s, z = float(out.scale), int(out.zero_point)
    kw = {}
    if np.isfinite(lo):
        kw["act_min"] = int(np.clip(z + np.round(lo / s), out.fmt.qmin, out.fmt.qmax))
    if np.isfinite(hi):
        kw["act_max"] = int(np.clip(z + np.round(hi / s), out.fmt.qmin, out.fmt.qmax))
    return kw


def _requant(plan: NodePlan, sx, sw, out: QuantParams, bias_float=None):
    from hwsim.kernels.params import RequantParams
    return RequantParams.create(plan.requant, float(sx), np.atleast_1d(sw), float(out.scale), out.fmt,
                                int(out.zero_point), rounding=plan.rounding, bias_float=bias_float,
                                **_clamp_codes(plan, out))


def _wzp(wp: QuantParams) -> tuple:
    return tuple(int(z) for z in np.atleast_1d(wp.zero_point))


def _as_input(x: np.ndarray) -> np.ndarray:
    """Integer codes in a dtype the kernels accept (int8/uint8/int16/uint16)."""
    if x.dtype in (np.int8, np.uint8, np.int16, np.uint16):
        return x
    raise KernelError(f"integer kernels take 8/16-bit codes, got {x.dtype}")


# -- op implementations ------------------------------------------------------------------------

def _conv(node, inputs, ctx):
    plan = ctx.qg.plans[node.name]
    if plan.kind == "dynamic":
        return _dynamic(node, inputs, ctx, plan)
    k = _k()
    p = plan._cache.get("conv")
    if p is None:
        x_p, out = plan.inputs[0], plan.outputs[0]
        wp = plan.weight_params
        a = node.attrs
        rp = _requant(plan, x_p.scale, wp.scale, out,
                      bias_float=plan.bias_float if plan.bias_q is None and plan.bias_float is not None else None)
        p = k.ConvParams(strides=tuple(a["strides"]), pads=tuple(a["pads"]), dilations=tuple(a["dilations"]),
                         groups=int(a.get("group", 1)), x_zero_point=int(x_p.zero_point), w_zero_point=_wzp(wp),
                         accum=_accum(plan), requant=rp)
        plan._cache["conv"] = p
    y, st = k.qconv2d(_as_input(inputs[0]), plan.weight_q, plan.bias_q, p)
    _rec(ctx, node, plan, st)
    return (y,)


def _gemm_weight(plan: NodePlan, node: Node) -> np.ndarray:
    w = plan._cache.get("wT")
    if w is None:
        w = plan.weight_q
        if node.op == "Gemm" and node.attrs.get("transB", 0):
            w = np.ascontiguousarray(w.T)
        plan._cache["wT"] = w
    return w


def _gemm(node, inputs, ctx):
    plan = ctx.qg.plans[node.name]
    if plan.kind == "dynamic":
        return _dynamic(node, inputs, ctx, plan)
    k = _k()
    if plan.weight_q is None:            # MatMul of two activations
        return _matmul_act(node, inputs, ctx, plan)
    p = plan._cache.get("gemm")
    if p is None:
        x_p, out = plan.inputs[0], plan.outputs[0]
        wp = plan.weight_params
        rp = _requant(plan, x_p.scale, wp.scale, out,
                      bias_float=plan.bias_float if plan.bias_q is None and plan.bias_float is not None else None)
        p = k.GemmParams(x_zero_point=int(x_p.zero_point), w_zero_point=_wzp(wp), accum=_accum(plan), requant=rp)
        plan._cache["gemm"] = p
    y, st = k.qgemm(_as_input(inputs[0]), _gemm_weight(plan, node), plan.bias_q, p)
    _rec(ctx, node, plan, st)
    return (y,)


def _matmul_act(node, inputs, ctx, plan):
    k = _k()
    a_p, b_p, out = plan.inputs[0], plan.inputs[1], plan.outputs[0]
    if b_p.per_channel:
        raise KernelError(f"node '{node.name}': per-channel second operand")
    p = plan._cache.get("mm")
    if p is None:
        p = k.GemmParams(x_zero_point=int(a_p.zero_point), w_zero_point=(int(b_p.zero_point),),
                         accum=_accum(plan), requant=_requant(plan, a_p.scale, b_p.scale, out))
        plan._cache["mm"] = p
    a, b = _as_input(inputs[0]), _as_input(inputs[1])
    shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = np.broadcast_to(a, shape + a.shape[-2:])
    b = np.broadcast_to(b, shape + b.shape[-2:])
    out_arr = np.empty(shape + (a.shape[-2], b.shape[-1]), out.fmt.storage_dtype)
    total = None
    for idx in np.ndindex(*shape):
        y, st = k.qgemm(np.ascontiguousarray(a[idx]), np.ascontiguousarray(b[idx]), None, p)
        out_arr[idx] = y
        total = st if total is None else total + st
    _rec(ctx, node, plan, total)
    return (out_arr,)


_ADD_FALLBACK = {"fbgemm": "onnxruntime", "power_of_two": "onnx_reference"}


def _elementwise(node, inputs, ctx):
    from hwsim.kernels.elementwise import qadd, qmul
    plan = ctx.qg.plans[node.name]
    a_p, b_p, out = plan.inputs[0], plan.inputs[1], plan.outputs[0]
    a = plan.const_q.get(0, inputs[0]) if 0 in plan.const_q else inputs[0]
    b = plan.const_q.get(1, inputs[1]) if 1 in plan.const_q else inputs[1]
    scheme = getattr(plan.requant, "value", plan.requant)
    scheme = _ADD_FALLBACK.get(scheme, scheme)
    if scheme.startswith("tflite") and not _tflite_elementwise_ok(a_p, b_p, out):
        # TFLite's ADD/MUL exist for 8-bit operands and symmetric int16 only; wider or
        # asymmetric 16-bit operands use ONNX Runtime's float32 QLinearAdd/Mul arithmetic
        scheme = "onnxruntime"
    fn = qadd if (plan.as_op or node.op) == "Add" else qmul
    y = fn(a, b, (float(a_p.scale), int(a_p.zero_point)), (float(b_p.scale), int(b_p.zero_point)),
           (float(out.scale), int(out.zero_point)), out.fmt.storage_dtype.name, scheme=scheme)
    if out.fmt.bits not in (8, 16) or out.fmt.narrow:       # e.g. 4-bit codes stored in int8
        y = np.clip(y, out.fmt.qmin, out.fmt.qmax).astype(y.dtype)
    _rec(ctx, node, plan)
    return (y,)


def _avgpool_windows(node, x, ctx, plan):
    """AveragePool: exact int64 window sums of the centred codes (padding adds 0, a real 0);
    each output is requantized with ``s_in / (n · s_out)`` for its own divisor ``n`` (the
    kernel size, or the number of real taps with ``count_include_pad=0`` and in ceil-mode
    overhangs), one rounding per output."""
    from hwsim.kernels.params import KernelStats, RequantParams
    from hwsim.ops.pool import _positions, _slice, _windows
    k = _k()
    x_p, out = plan.inputs[0], plan.outputs[0]
    a = node.attrs
    xp, outs, ks, s, d, begins, ends, extra = _windows(x, a, 0)
    nd = x.ndim - 2
    include = bool(a.get("count_include_pad", 0))
    mask = np.ones(x.shape[2:], np.int64)
    mask = np.pad(mask, [(begins[i], ends[i]) for i in range(nd)], constant_values=1 if include else 0)
    mask = np.pad(mask, [(0, extra[i]) for i in range(nd)], constant_values=0)[None, None]
    acc = np.zeros(x.shape[:2] + tuple(outs), np.int64)
    cnt = np.zeros((1, 1) + tuple(outs), np.int64)
    for pos in _positions(ks):
        acc += _slice(xp, pos, outs, s, d)
        cnt += _slice(mask, pos, outs, s, d)
    cnt = np.broadcast_to(cnt, acc.shape)
    y = np.empty(acc.shape, out.fmt.storage_dtype)
    clamped = 0
    for n in np.unique(cnt):
        n = int(max(n, 1))
        rp = plan._cache.get(("rp", n))
        if rp is None:
            rp = RequantParams.create(plan.requant, float(x_p.scale), np.float32(1.0 / n), float(out.scale), out.fmt,
                                      int(out.zero_point), rounding=plan.rounding)
            plan._cache[("rp", n)] = rp
        sel = cnt == n
        yq, st = k.requantize(acc[sel], rp, axis=-1)
        y[sel] = yq
        clamped += st.out_clamped
    lim = 1 << (plan.accumulator_bits - 1)
    ov = int(np.count_nonzero((acc < -lim) | (acc >= lim)))
    _rec(ctx, node, plan, KernelStats(macs=int(acc.size) * int(np.prod(ks)), acc_overflows=ov, out_clamped=clamped))
    return (y,)


def _tflite_elementwise_ok(*params: QuantParams) -> bool:
    bits = {p.fmt.bits for p in params}
    if bits == {8}:
        return True
    return bits == {16} and all(p.fmt.signed and not np.any(p.zero_point) for p in params)


def _avgpool(node, inputs, ctx):
    k = _k()
    plan = ctx.qg.plans[node.name]
    x_p, out = plan.inputs[0], plan.outputs[0]
    x = inputs[0].astype(np.int64) - int(x_p.zero_point)
    if node.op == "GlobalAveragePool":
        axes = tuple(range(2, x.ndim))
        n = int(np.prod([x.shape[i] for i in axes]))
        acc = x.sum(axis=axes, keepdims=True)
    elif node.op in ("ReduceMean", "ReduceSum"):
        axes = tuple(int(a) % x.ndim for a in node.attrs["axes"])
        acc = x.sum(axis=axes, keepdims=bool(node.attrs.get("keepdims", 1)))
        n = int(np.prod([x.shape[i] for i in axes])) if node.op == "ReduceMean" else 1
    else:
        return _avgpool_windows(node, x, ctx, plan)
    rp = plan._cache.get("rp")
    if rp is None:
        from hwsim.kernels.params import RequantParams
        rp = RequantParams.create(plan.requant, float(x_p.scale), np.float32(1.0 / n), float(out.scale), out.fmt,
                                  int(out.zero_point), rounding=plan.rounding)
        plan._cache["rp"] = rp
    lim = 1 << (plan.accumulator_bits - 1)
    ov = int(np.count_nonzero((acc < -lim) | (acc >= lim)))
    y, st = k.requantize(acc, rp, axis=-1)
    from hwsim.kernels.params import KernelStats
    _rec(ctx, node, plan, KernelStats(macs=int(acc.size) * n, acc_overflows=ov, out_clamped=st.out_clamped))
    return (y,)


def _move(node, inputs, ctx):
    plan = ctx.qg.plans[node.name]
    if 0 in plan.const_q:                     # e.g. Gather from a constant embedding table
        inputs = [plan.const_q[0], *inputs[1:]]
    x = inputs[0]
    if node.op == "Relu":
        y = np.maximum(x, x.dtype.type(int(plan.inputs[0].zero_point)))
    elif node.op == "Clip":
        p = plan.inputs[0]
        lo, hi = float(node.attrs.get("min", -np.inf) or -np.inf), node.attrs.get("max", np.inf)
        hi = np.inf if hi is None else float(hi)
        qlo = p.fmt.qmin if not np.isfinite(lo) else int(np.clip(int(p.zero_point) + np.round(lo / float(p.scale)),
                                                                  p.fmt.qmin, p.fmt.qmax))
        qhi = p.fmt.qmax if not np.isfinite(hi) else int(np.clip(int(p.zero_point) + np.round(hi / float(p.scale)),
                                                                  p.fmt.qmin, p.fmt.qmax))
        y = np.clip(x, qlo, qhi).astype(x.dtype)
    elif node.op == "Pad":
        if node.attrs.get("mode", "constant") == "constant":
            p = plan.inputs[0]
            v = float(node.attrs.get("value", 0.0) or 0.0)       # real 0 -> the zero point
            z = int(np.clip(p.quantize(np.array([max(min(v, 3e38), -3e38)], np.float32),
                                       rounding=ctx.rounding.value)[0], p.fmt.qmin, p.fmt.qmax))
            node = node.replace(attrs=dict(node.attrs, value=z))
        y = float_dispatch()["Pad"](node, inputs, None)[0]
    elif node.op == "Concat":
        return _concat(node, inputs, ctx, plan)
    elif node.op == "Split":
        return _split(node, inputs, ctx, plan)
    else:
        y = float_dispatch()[node.op](node, inputs, None)[0]
    _rec(ctx, node, plan)
    return (y,)


def _same(a: QuantParams, b: QuantParams) -> bool:
    return a is b or (a.fmt == b.fmt and np.array_equal(a.scale, b.scale) and np.array_equal(a.zero_point, b.zero_point))


def _concat(node, inputs, ctx, plan):
    k = _k()
    out = plan.outputs[0]
    parts = []
    total = None
    for i, t in enumerate(node.inputs):
        if not t:
            continue
        x = plan.const_q[i] if i in plan.const_q else inputs[i]
        p = plan.inputs[i]
        if _same(p, out):
            parts.append(x.astype(out.fmt.storage_dtype, copy=False))
            continue
        rp = plan._cache.get(("rp", i))
        if rp is None:
            from hwsim.kernels.params import RequantParams
            rp = RequantParams.create(ctx.qg.profile.requant_for(plan.pair),
                                      float(p.scale), np.float32(1.0), float(out.scale), out.fmt,
                                      int(out.zero_point), rounding=plan.rounding)
            plan._cache[("rp", i)] = rp
        y, st = k.requantize(x.astype(np.int64) - int(p.zero_point), rp, axis=0)
        parts.append(y)
        total = st if total is None else total + st
    _rec(ctx, node, plan, total)
    return (np.concatenate(parts, axis=node.attrs["axis"]),)


def _split(node, inputs, ctx, plan):
    """Split the integer codes; pieces whose quantizer differs from the input's are requantized."""
    k = _k()
    p_in = plan.inputs[0]
    pieces = float_dispatch()["Split"](node, [inputs[0], *inputs[1:]], None)
    out, total = [], None
    for i, (y, p) in enumerate(zip(pieces, plan.outputs)):
        if p is None or _same(p_in, p):
            out.append(y.astype(p_in.fmt.storage_dtype, copy=False))
            continue
        rp = plan._cache.get(("split", i))
        if rp is None:
            from hwsim.kernels.params import RequantParams
            rp = RequantParams.create(ctx.qg.profile.requant_for(plan.pair), float(p_in.scale), np.float32(1.0),
                                      float(p.scale), p.fmt, int(p.zero_point), rounding=plan.rounding)
            plan._cache[("split", i)] = rp
        yq, st = k.requantize(y.astype(np.int64) - int(p_in.zero_point), rp, axis=-1)
        out.append(yq)
        total = st if total is None else total + st
    _rec(ctx, node, plan, total)
    return tuple(out)


def _lut(node, inputs, ctx):
    from hwsim.kernels.lut import Lut, apply_lut, build_lut
    plan = ctx.qg.plans[node.name]
    lut = plan._cache.get("lut")
    x_p, out = plan.inputs[0], plan.outputs[0]
    if lut is None:
        fop = float_dispatch()[node.op]

        def fn(v):
            return fop(node, [np.asarray(v, np.float32)], None)[0]

        scheme = ctx.qg.profile.requant_for(plan.pair).value
        if scheme.startswith("tflite") and x_p.fmt == out.fmt and x_p.fmt.bits <= 16:
            # TFLite LUTPopulate: reciprocal multiply, ties away from zero
            lut = build_lut(fn, float(x_p.scale), int(x_p.zero_point), float(out.scale), int(out.zero_point), out.fmt)
        else:
            # ONNX-style: the output quantizer applied to f(every input code), the profile's tie rule
            codes = np.arange(x_p.fmt.qmin, x_p.fmt.qmax + 1, dtype=np.int64)
            table = out.quantize(fn(x_p.dequantize(codes)), rounding=ctx.rounding.value).astype(np.int64)
            lut = Lut(table, x_p.fmt.qmin, float(out.scale), int(out.zero_point), out.fmt.storage_dtype.name)
        plan._cache["lut"] = lut
    y = apply_lut(inputs[0], lut)
    _rec(ctx, node, plan)
    return (y,)


def _float_island(node, inputs, ctx):
    plan = ctx.qg.plans[node.name]
    real = []
    for i, (x, p) in enumerate(zip(inputs, plan.inputs)):
        if p is not None and x is not None:
            x = plan.const_q[i] if i in plan.const_q else x
            real.append(p.dequantize(x))
        else:
            real.append(x)
    outs = float_dispatch()[node.op](node, real, None)
    res = tuple(p.quantize(o, rounding=ctx.rounding.value) if p is not None else o
                for o, p in zip(outs, plan.outputs))
    _rec(ctx, node, plan)
    return res


def _fused(node, inputs, ctx):
    _rec(ctx, node, ctx.qg.plans[node.name])
    return (inputs[0],)


def _dynamic(node, inputs, ctx, plan):
    """Dynamic quantization: per-batch input range, integer accumulation, float output."""
    k = _k()
    prof = ctx.qg.profile
    x = inputs[0]
    bits = plan.pair.a
    fmt = prof.activation_format(bits, nonnegative=bool(np.min(x) >= 0))
    x_p = QuantParams.from_range(float(np.min(x)), float(np.max(x)), fmt,
                                 symmetric=prof.activation_symmetric(bits), power_of_two=prof.power_of_two_scales)
    xq = x_p.quantize(x, rounding=ctx.rounding.value)
    wp = plan.weight_params
    if node.op == "Conv":
        a = node.attrs
        p = k.ConvParams(strides=tuple(a["strides"]), pads=tuple(a["pads"]), dilations=tuple(a["dilations"]),
                         groups=int(a.get("group", 1)), x_zero_point=int(x_p.zero_point), w_zero_point=_wzp(wp),
                         accum=_accum(plan))
        acc, st = k.conv2d_acc(xq, plan.weight_q, None, p)
        ch = (1, -1) + (1,) * (acc.ndim - 2)
    else:
        p = k.GemmParams(x_zero_point=int(x_p.zero_point), w_zero_point=_wzp(wp), accum=_accum(plan))
        acc, st = k.gemm_acc(xq, _gemm_weight(plan, node), None, p)
        ch = (1,) * (acc.ndim - 1) + (-1,)
    scale = (np.float32(x_p.scale) * wp.scale.astype(np.float32)).astype(np.float32)
    y = acc.astype(np.float32) * scale.reshape(ch if scale.ndim else ())
    if plan.bias_float is not None:
        y = y + plan.bias_float.reshape(ch)
    _rec(ctx, node, plan, st)
    return (y.astype(np.float32),)


def _float(node, inputs, ctx):
    _rec(ctx, node, ctx.qg.plans[node.name])
    return float_dispatch()[node.op](node, inputs, None)


_BY_KIND = {"lut": _lut, "float_island": _float_island, "fused": _fused, "move": _move, "float": _float}
_INT_BY_OP = {"Conv": _conv, "Gemm": _gemm, "MatMul": _gemm, "Add": _elementwise, "Mul": _elementwise,
              "Div": _elementwise, "Sub": _elementwise,
              "AveragePool": _avgpool, "GlobalAveragePool": _avgpool, "ReduceMean": _avgpool,
              "ReduceSum": _avgpool}


def _dispatch_node(node, inputs, ctx):
    plan = ctx.qg.plans[node.name]
    kind = plan.kind
    if kind in ("int", "dynamic"):
        impl = _INT_BY_OP.get(node.op)
        if impl is None:
            raise UnsupportedOpError(node.name, node.op, _INT_BY_OP, "no integer kernel")
        return impl(node, inputs, ctx)
    return _BY_KIND[kind](node, inputs, ctx)


def int_dispatch(qg: QuantizedGraph) -> dict:
    """The dispatch table (op type -> implementation) of the integer executor for ``qg``."""
    return {op: _dispatch_node for op in {n.op for n in qg.graph.nodes}}


def quantize_feeds(qg: QuantizedGraph, feeds: Mapping[str, np.ndarray], source: str = "input") -> dict:
    """Check the float inputs and quantize them with their quantizers (static mode)."""
    feeds = check_feeds(qg.graph, feeds, source)
    if qg.dynamic:
        return feeds
    from hwsim.kernels.quantize import quantize
    r = qg.profile.arithmetic.rounding
    out = {}
    for k, v in feeds.items():
        if v.dtype.kind != "f":               # integer inputs (indices, token ids) pass unchanged
            out[k] = v
            continue
        p = qg.params(k)
        out[k] = quantize(v, p.scale, p.zero_point, p.fmt, r, axis=p.axis)
    return out


def reusable_values(qg: QuantizedGraph, cached_qg: QuantizedGraph, cached_values: Mapping[str, np.ndarray]) -> dict:
    """The tensors of ``cached_values`` (integer codes from a run of ``cached_qg`` on the same
    inputs) that are bit-identical under ``qg``: pass the result as ``values=`` to :func:`run_int`."""
    new, old = qg.tensor_keys(), cached_qg.tensor_keys()
    return {t: v for t, v in cached_values.items() if t in new and new[t] == old.get(t)}


def run_int(qg: QuantizedGraph, feeds: Mapping[str, np.ndarray], *,
            values: MutableMapping[str, np.ndarray] | None = None, keep: str | Iterable[str] = "outputs",
            raw: bool = False, report: IntReport | None = None) -> tuple[dict[str, np.ndarray], IntReport]:
    """Run ``qg`` in integer arithmetic.

    Parameters
    ----------
    feeds : input name -> float array (checked: names, shapes, dtypes, NaN/Inf).
    values : prefix cache of *integer* tensors (see :func:`reusable_values`); nodes whose
        outputs are present are skipped; updated in place with every tensor computed.
    keep : ``"outputs"``, ``"all"`` or tensor names to return besides the outputs.
    raw : return integer codes instead of dequantized float32 arrays.
    report : an :class:`IntReport` to add counts to (a new one by default).

    Returns
    -------
    (outputs, report) : tensor name -> float32 (dequantized) or integer codes; the per-node report.
    """
    if not isinstance(qg, QuantizedGraph):
        raise TypeError(f"run_int needs a QuantizedGraph, got {type(qg).__name__}")
    rep = report if report is not None else IntReport()
    for n in qg.graph.nodes:
        plan = qg.plans[n.name]
        if n.name not in rep.nodes:
            rep.nodes[n.name] = NodeReport(n.name, n.op, plan.kind, None if plan.pair is None else str(plan.pair),
                                           note=plan.note)
    qfeeds = quantize_feeds(qg, feeds)
    ctx = _Ctx(qg, rep)
    env = run_graph(qg.graph, qfeeds, int_dispatch(qg), ctx, values=values, keep=keep)
    if raw or qg.dynamic:
        return dict(env), rep
    out = {}
    for t, v in env.items():
        p = qg.act.get(t)
        out[t] = p.dequantize(v) if (p is not None and v.dtype.kind in "iu") else v
    return out, rep

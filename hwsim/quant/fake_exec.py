"""Fake-quant executor: quantize–dequantize in float around the float ops (AIMET / PPQ style).

Every activation is held as a float32 value on its quantization grid: graph inputs and
node outputs are fake-quantized with their :class:`~hwsim.quant.qparams.QuantParams`,
weights are replaced by their dequantized integer codes, biases by their dequantized
int32/int64 values (the float bias where the scheme keeps it float), and each node runs
its ``hwsim.ops`` float implementation. A folded ReLU/ReLU6 is applied in float before the
producer's output is fake-quantized. What remains different from the integer executor is
exactly what integer hardware does differently: the requantization arithmetic
(fixed-point multipliers, tie rules, double rounding), exact integer accumulation (and
its overflows) versus float32 sums, and integer average-pool / elementwise rescaling.

Examples
--------
>>> import numpy as np
>>> from hwsim.graph import Graph, Node, TensorInfo
>>> from hwsim.profile import shipped_profile
>>> from hwsim.quant import calibrate, quantize_graph, run_fake
>>> g = Graph("g", (TensorInfo("x", (None, 4)),), ("y",), (Node("r", "Relu", ("x",), ("y",)),), {},
...           shapes={"x": (1, 4), "y": (1, 4)})
>>> x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
>>> qg = quantize_graph(g, shipped_profile("cpu_onnxruntime"), calibrate(g, x, progress=False), "W8A8")
>>> y = run_fake(qg, {"x": x})["y"]
>>> bool(np.all(y >= 0)), float(np.abs(y - np.maximum(x, 0)).max()) < float(qg.params("y").scale)
(True, True)
"""
from __future__ import annotations

from typing import Iterable, Mapping, MutableMapping

import numpy as np

from hwsim.execute import run_graph
from hwsim.graph import Node

from .calibrate import check_feeds, float_dispatch
from .qgraph import NodePlan, QuantizedGraph
from .qparams import QuantParams

__all__ = ["run_fake", "fake_dispatch", "fake_node"]


def _weights(plan: NodePlan) -> tuple[np.ndarray | None, np.ndarray | None]:
    got = plan._cache.get("fake_w")
    if got is None:
        w = plan.weight_params.dequantize(plan.weight_q) if plan.weight_q is not None else None
        b = None
        if plan.bias_q is not None:
            s = (np.float32(plan.inputs[0].scale) * plan.weight_params.scale.astype(np.float32)).astype(np.float32)
            b = (plan.bias_q.astype(np.float64) * s.astype(np.float64)).astype(np.float32)
        elif plan.bias_float is not None:
            b = plan.bias_float
        got = (w, b)
        plan._cache["fake_w"] = got
    return got


def _apply_fused(plan: NodePlan, y: np.ndarray) -> np.ndarray:
    fa = plan.fused_activation
    if fa is None:
        return y
    if fa == "relu":
        return np.maximum(y, 0, dtype=y.dtype)
    if fa == "relu6":
        return np.clip(y, 0, 6).astype(y.dtype)
    lo, hi = fa
    return np.clip(y, lo, hi).astype(y.dtype)


def _dynamic_params(qg: QuantizedGraph, x: np.ndarray, bits: int) -> QuantParams:
    prof = qg.profile
    fmt = prof.activation_format(bits, nonnegative=bool(np.min(x) >= 0))
    return QuantParams.from_range(float(np.min(x)), float(np.max(x)), fmt,
                                  symmetric=prof.activation_symmetric(bits), power_of_two=prof.power_of_two_scales)


def fake_node(qg: QuantizedGraph, node: Node, inputs: list) -> tuple:
    """One node in fake-quant: substitute quantized weights/constants, run the float op,
    apply the folded activation, fake-quantize the outputs. ``inputs`` are float arrays
    already on their quantization grids."""
    plan = qg.plans[node.name]
    rounding = qg.profile.arithmetic.rounding.value
    if plan.kind == "fused":
        return (inputs[0],)
    args = list(inputs)
    if plan.kind == "dynamic":
        x_p = _dynamic_params(qg, args[0], plan.pair.a)
        args[0] = x_p.fake_quantize(args[0], rounding)
        w, _ = _weights(plan)
        args[1] = w
        if len(args) > 2 and args[2] is not None:
            args[2] = plan.bias_float
        return float_dispatch()[node.op](node, args, None)
    if plan.kind == "float":
        return float_dispatch()[node.op](node, args, None)
    for i, arr in plan.const_q.items():
        args[i] = plan.inputs[i].dequantize(arr)
    if plan.weight_q is not None:
        w, b = _weights(plan)
        args[1] = w
        if len(args) > 2 and node.inputs[2]:
            args[2] = b
    # constant padding: real 0 is exact on every grid, so float 0 equals the integer zero point
    outs = float_dispatch()[plan.as_op or node.op](node, args, None)
    res = []
    for o, p in zip(outs, plan.outputs):
        o = _apply_fused(plan, o)
        res.append(p.fake_quantize(o, rounding) if p is not None and o.dtype.kind == "f" else o)
    return tuple(res)


def fake_dispatch(qg: QuantizedGraph) -> dict:
    """Dispatch table (op type -> implementation) of the fake-quant executor for ``qg``."""
    def impl(node, inputs, ctx):
        return fake_node(qg, node, inputs)
    return {op: impl for op in {n.op for n in qg.graph.nodes}}


def run_fake(qg: QuantizedGraph, feeds: Mapping[str, np.ndarray], *,
             values: MutableMapping[str, np.ndarray] | None = None,
             keep: str | Iterable[str] = "outputs") -> dict[str, np.ndarray]:
    """Run ``qg`` in fake-quant (float) simulation; returns tensor name -> float32 array.

    ``feeds`` are checked (names, shapes, dtypes, NaN/Inf) and fake-quantized with the input
    quantizers; ``values`` / ``keep`` as in :func:`hwsim.execute.run_graph`.
    """
    if not isinstance(qg, QuantizedGraph):
        raise TypeError(f"run_fake needs a QuantizedGraph, got {type(qg).__name__}")
    feeds = check_feeds(qg.graph, feeds)
    r = qg.profile.arithmetic.rounding.value
    if not qg.dynamic:
        feeds = {k: qg.params(k).fake_quantize(v, r) if v.dtype.kind == "f" else v for k, v in feeds.items()}
    return run_graph(qg.graph, feeds, fake_dispatch(qg), None, values=values, keep=keep)

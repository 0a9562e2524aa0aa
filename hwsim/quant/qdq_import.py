"""Import third-party quantized ONNX models (QDQ and QOperator) and run them in integer, as they are.

A *QDQ* model (as ``onnxruntime.quantization.quantize_static`` writes it) keeps float ops
between ``DequantizeLinear`` (DQ) and ``QuantizeLinear`` (Q) nodes; a *QOperator* model uses
``QLinearConv``, ``QLinearMatMul``, ``com.microsoft`` ``QGemm`` / ``QLinearAdd`` /
``QLinearMul`` / ``QLinearGlobalAveragePool`` directly. Both are brought to one canonical
form, the QOperator form onnxruntime itself runs after its QDQ fusions:

* ``DQ(x) , DQ(w) , DQ(bias int32) -> Conv -> [Relu | Clip] -> Q``  becomes ``QLinearConv``
  (the ReLU/Clip becomes the integer output clamp); likewise MatMul -> ``QLinearMatMul``,
  Gemm -> ``QGemm``, Add/Mul -> ``QLinearAdd``/``QLinearMul``, GlobalAveragePool ->
  ``QLinearGlobalAveragePool``;
* ``DQ -> MaxPool | Reshape | Flatten | Transpose | Squeeze | Unsqueeze | Identity -> Q`` with the
  same scale and zero point becomes the op applied to the integer tensor;
* anything else stays a float op between explicit ``DequantizeLinear``/``QuantizeLinear``
  nodes (a *float island*, executed by the float op registry, as onnxruntime does).

The scales, zero points, integer weights and int32 biases are the model's own (taken from
its Q/DQ nodes and initializers); nothing is re-calibrated. Every integer op runs through
:mod:`hwsim.kernels` with onnxruntime's arithmetic (``Requant.ONNXRUNTIME``: multiplier
``f32(f32(sx*sw)/sy)``, ``rne(f32(acc)*m)`` clamped in float; MLAS QLinearAdd/QLinearMul).
Integer tensors keep the names of the model's Q outputs, so they can be compared one to one
with onnxruntime's intermediates (:mod:`hwsim.validate`).

Examples
--------
>>> import numpy as np, onnx
>>> from onnx import helper, numpy_helper, TensorProto
>>> inits = [numpy_helper.from_array(np.float32(0.5), "s"), numpy_helper.from_array(np.uint8(10), "z")]
>>> g = helper.make_graph([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q"),
...                        helper.make_node("MaxPool", ["q"], ["p"], name="mp", kernel_shape=[2]),
...                        helper.make_node("DequantizeLinear", ["p", "s", "z"], ["y"], name="dq")],
...                       "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4])],
...                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 3])], inits)
>>> qm = import_quantized(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
>>> [n.op for n in qm.graph.nodes]
['QuantizeLinear', 'MaxPool', 'DequantizeLinear']
>>> run_quantized(qm, {"x": np.array([[[0.0, 1.0, -2.0, 3.1]]], np.float32)})["y"].tolist()
[[[1.0, 1.0, 3.0]]]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import onnx
from onnx import helper, numpy_helper

from hwsim.bits import IntFormat
from hwsim.errors import DataError, ModelError, UnsupportedOpError
from hwsim.execute import run_graph
from hwsim.graph import Graph, Node, TensorInfo

__all__ = ["QModel", "import_quantized", "run_quantized", "is_quantized_model", "INT_OPS", "QOPERATOR_OPS", "FUSABLE_OPS",
           "INT_PASSTHROUGH_OPS"]

#: QOperator ops understood directly (standard domain and com.microsoft).
QOPERATOR_OPS = ("QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd", "QLinearMul",
                 "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearConcat", "QLinearSigmoid",
                 "QLinearLeakyRelu", "QLinearSoftmax", "QuantizeLinear", "DequantizeLinear")
#: float op -> QOperator op it fuses into when wrapped in DQ ... Q.
FUSABLE_OPS = {"Conv": "QLinearConv", "MatMul": "QLinearMatMul", "Gemm": "QGemm", "Add": "QLinearAdd",
               "Mul": "QLinearMul", "GlobalAveragePool": "QLinearGlobalAveragePool", "Softmax": "QLinearSoftmax"}
#: ops that only move or select values: applied to the integer tensor when input and output
#: quantizers agree.
INT_PASSTHROUGH_OPS = ("MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity")

_ONNX_INT_TYPES = {
    onnx.TensorProto.INT8: IntFormat(8, True), onnx.TensorProto.UINT8: IntFormat(8, False),
    onnx.TensorProto.INT16: IntFormat(16, True), onnx.TensorProto.UINT16: IntFormat(16, False),
    onnx.TensorProto.INT32: IntFormat(32, True),
}
if hasattr(onnx.TensorProto, "INT4"):
    _ONNX_INT_TYPES[onnx.TensorProto.INT4] = IntFormat(4, True)
    _ONNX_INT_TYPES[onnx.TensorProto.UINT4] = IntFormat(4, False)


@dataclass(frozen=True, eq=False)
class QModel:
    """A quantized ONNX model in canonical QOperator form, ready for integer execution.

    Attributes
    ----------
    graph : hwsim Graph whose nodes are QOperator ops (``QLinearConv`` ...), ``QuantizeLinear``
        / ``DequantizeLinear``, integer pass-through ops and float-island ops.
    formats : integer tensor name -> IntFormat (int4 tensors are stored unpacked in int8).
    qparams : integer tensor name -> (scale float32 array, zero point int64 array, axis|None),
        and float graph outputs produced by a DequantizeLinear -> that DQ's parameters.
    kind : "qdq", "qoperator" or "mixed" (what the source model was written in).
    float_islands : names of the float ops left between DQ and Q (executed in float).
    source_nodes : canonical node name -> names of the source-model nodes it replaces.
    """

    graph: Graph
    formats: Mapping[str, IntFormat]
    qparams: Mapping[str, tuple]
    kind: str
    float_islands: tuple[str, ...] = ()
    source_nodes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def integer_tensors(self) -> tuple[str, ...]:
        """Integer activation tensors (node outputs), in execution order."""
        return tuple(t for n in self.graph.nodes for t in n.outputs if t in self.formats)

    def lsb(self, tensor: str) -> np.ndarray | None:
        """Scale of one LSB of ``tensor`` (for float outputs of a DequantizeLinear), else None."""
        p = self.qparams.get(tensor)
        return None if p is None else p[0]


# ---------------------------------------------------------------------------------------------
# ONNX reading
# ---------------------------------------------------------------------------------------------

def _to_array(t: onnx.TensorProto) -> np.ndarray:
    a = numpy_helper.to_array(t)
    if t.data_type in _ONNX_INT_TYPES and _ONNX_INT_TYPES[t.data_type].bits == 4:
        a = np.asarray(a).astype(np.int8 if _ONNX_INT_TYPES[t.data_type].signed else np.uint8)
    return np.asarray(a)


def _load(model) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model))
    p = Path(model)
    if not p.is_file():
        raise ModelError(f"{p}: no such model file")
    try:
        return onnx.load(str(p))
    except Exception as e:  # protobuf decode errors have no common base class
        raise ModelError(f"{p}: not a readable ONNX model ({type(e).__name__})") from None


def _infer_shapes(m: onnx.ModelProto) -> dict[str, tuple]:
    """Tensor name -> dims (None where unknown) from ONNX shape inference (best effort)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(m, strict_mode=False)
    except Exception:  # shape inference is an aid (auto_pad=SAME_*), not a requirement
        inferred = m
    out = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        tt = vi.type.tensor_type
        if tt.HasField("shape"):
            out[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
    return out


def _attrs(n: onnx.NodeProto) -> dict[str, Any]:
    out = {}
    for a in n.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, onnx.TensorProto):
            v = _to_array(v)
        elif isinstance(v, list):
            v = tuple(v)
        out[a.name] = v
    return out


class _Ctx:
    """Per-run execution state: cached kernel parameters and kernel statistics per node."""

    def __init__(self):
        self.params: dict[str, Any] = {}
        self.stats: dict[str, Any] = {}


# ---------------------------------------------------------------------------------------------
# Attribute normalisation (the conventions of hwsim.ops)
# ---------------------------------------------------------------------------------------------

def _spatial_attrs(node_name, op, a, ksize, nspatial, in_shape=None):
    k = tuple(a.get("kernel_shape", ksize))
    nd = len(k) if k else nspatial
    out = dict(a)
    auto = out.pop("auto_pad", "NOTSET")
    out["kernel_shape"] = k
    out["strides"] = tuple(a.get("strides", (1,) * nd))
    out["dilations"] = tuple(a.get("dilations", (1,) * nd))
    out["pads"] = tuple(a.get("pads", (0,) * (2 * nd)))
    if auto == "VALID":
        out["pads"] = (0,) * (2 * nd)
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        spatial = None if in_shape is None else tuple(in_shape)[2:]
        if spatial is None or len(spatial) != nd or any(d is None or d <= 0 for d in spatial):
            raise UnsupportedOpError(node_name, op, ("auto_pad NOTSET/VALID, or SAME_* with static spatial shape",),
                                     f"auto_pad={auto} with an unknown input shape")
        begins, ends = [], []
        for i in range(nd):
            o = -(-spatial[i] // out["strides"][i])
            total = max(0, (o - 1) * out["strides"][i] + (k[i] - 1) * out["dilations"][i] + 1 - spatial[i])
            small, big = total // 2, total - total // 2
            begins.append(small if auto == "SAME_UPPER" else big)
            ends.append(big if auto == "SAME_UPPER" else small)
        out["pads"] = tuple(begins + ends)
    elif auto != "NOTSET":
        raise UnsupportedOpError(node_name, op, ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"), f"auto_pad={auto}")
    return out


def _normalize_axes(node_name, op, a, ins, consts, shapes, opset):
    """Axis attributes made non-negative with the input's rank (from shape inference; only
    needed for negative axes and for defaults that depend on the rank)."""
    shp = (shapes or {}).get(ins[0])
    r = None if shp is None else len(shp)

    def need_rank(why):
        if r is None:
            raise UnsupportedOpError(node_name, op, (), f"input rank unknown (shape inference failed) and {why}")
        return r

    def nonneg(v, extra=0):
        v = int(v)
        return v if v >= 0 else v % (need_rank("a negative axis") + extra)

    if op == "Softmax":
        if opset < 13:
            axis = nonneg(a.get("axis", 1))
            return {"axes": tuple(range(axis, need_rank("opset < 13 Softmax")))}, ins
        return {"axes": (nonneg(a.get("axis", -1)),)}, ins
    if op == "LayerNormalization":
        return {"axis": nonneg(a.get("axis", -1)), "epsilon": float(a.get("epsilon", 1e-5))}, tuple(t for t in ins if t)
    if op in ("Concat", "Gather"):
        return {"axis": nonneg(a.get("axis", 0))}, ins
    if op == "Flatten":
        return {"axis": nonneg(a.get("axis", 1))}, ins
    if op == "Transpose":
        if "perm" in a:
            return {"perm": tuple(a["perm"])}, ins
        n = need_rank("no perm")
        return {"perm": tuple(range(n - 1, -1, -1))}, ins
    axes = a.get("axes")
    if len(ins) > 1 and ins[1]:
        if ins[1] not in consts:
            raise UnsupportedOpError(node_name, op, (), "axes computed at run time")
        axes = tuple(int(v) for v in consts[ins[1]].ravel())
    ins = ins[:1]
    if op == "Unsqueeze":
        return {"axes": tuple(sorted(nonneg(x, len(axes)) for x in axes))}, ins
    if op == "Squeeze":
        if axes is None:
            need_rank("no axes")
            axes = tuple(i for i, d in enumerate(shp) if d == 1)
        return {"axes": tuple(sorted(nonneg(x) for x in axes))}, ins
    # ReduceMean
    if not axes:
        axes = tuple(range(need_rank("no axes")))
    return {"axes": tuple(sorted(nonneg(x) for x in axes)), "keepdims": int(a.get("keepdims", 1))}, ins


def _normalize(node_name, op, a, inputs, consts, shapes=None, opset=17) -> tuple[dict, tuple[str, ...]]:
    """Normalised attrs for ``op`` and the inputs left as runtime inputs (constant shape
    operands become attributes)."""
    a = dict(a)
    ins = tuple(inputs)
    if op == "QLinearSoftmax":
        opset_attr = int(a.get("opset", opset))
        # a negative axis is resolved at run time (contrib ops defeat ONNX shape inference)
        return {"axis": int(a.get("axis", 1 if opset_attr < 13 else -1)), "opset": opset_attr}, ins
    if op == "QLinearAveragePool":
        a = _spatial_attrs(node_name, op, a, (), 2, (shapes or {}).get(ins[0]))
        a.setdefault("ceil_mode", 0)
        a.setdefault("count_include_pad", 0)
        if int(a.get("channels_last", 0)):
            raise UnsupportedOpError(node_name, op, (), "channels_last=1")
    elif op in ("Conv", "QLinearConv"):
        w = consts.get(ins[1 if op == "Conv" else 3])
        ks = tuple(w.shape[2:]) if w is not None else ()
        a = _spatial_attrs(node_name, op, a, ks, len(ks), (shapes or {}).get(ins[0]))
        a["group"] = int(a.get("group", 1))
        if w is not None and a["group"] > 1 and w.shape[1] == 1 and w.shape[0] == a["group"]:
            a["depthwise"] = True
    elif op in ("MaxPool", "AveragePool"):
        a = _spatial_attrs(node_name, op, a, (), 2, (shapes or {}).get(ins[0]))
        a.setdefault("ceil_mode", 0)
        if op == "AveragePool":
            a.setdefault("count_include_pad", 0)
        if int(a.get("storage_order", 0)) != 0:
            raise UnsupportedOpError(node_name, op, (), "storage_order=1")
    elif op in ("Gemm", "QGemm"):
        a = {"alpha": float(a.get("alpha", 1.0)), "beta": float(a.get("beta", 1.0)),
             "transA": int(a.get("transA", 0)), "transB": int(a.get("transB", 0))}
    elif op == "Reshape":
        if len(ins) > 1:
            if ins[1] not in consts:
                raise UnsupportedOpError(node_name, op, (), "shape computed at run time")
            a["shape"] = tuple(int(v) for v in consts[ins[1]].ravel())
            ins = ins[:1]
        a["allowzero"] = int(a.get("allowzero", 0))
    elif op == "Clip":
        if len(ins) > 1:
            for pos, key in ((1, "min"), (2, "max")):
                if len(ins) > pos and ins[pos]:
                    if ins[pos] not in consts:
                        raise UnsupportedOpError(node_name, op, (), f"{key} computed at run time")
                    a[key] = float(consts[ins[pos]])
            ins = ins[:1]
    elif op in ("Softmax", "LayerNormalization", "Concat", "Gather", "Flatten", "ReduceMean", "Squeeze",
                "Unsqueeze", "Transpose"):
        a, ins = _normalize_axes(node_name, op, a, ins, consts, shapes, opset)
    elif op == "HardSigmoid":
        a = {"alpha": float(a.get("alpha", 0.2)), "beta": float(a.get("beta", 0.5))}
    elif op in ("QuantizeLinear", "DequantizeLinear"):
        a["axis"] = int(a.get("axis", 1))
    return a, ins


# ---------------------------------------------------------------------------------------------
# QDQ recognition
# ---------------------------------------------------------------------------------------------

@dataclass
class _DQ:
    node: onnx.NodeProto
    x: str
    scale: str
    zp: str
    axis: int


@dataclass
class _Q:
    node: onnx.NodeProto
    y: str
    scale: str
    zp: str
    axis: int


def is_quantized_model(model) -> bool:
    """True when an ONNX model (path, bytes or ModelProto) holds quantization nodes
    (QuantizeLinear, DequantizeLinear or a QOperator op), i.e. it should be run "as it is"
    with :func:`import_quantized` / :func:`run_quantized` rather than calibrated again."""
    m = _load(model)
    return any(n.op_type in QOPERATOR_OPS for n in m.graph.node)


def import_quantized(model) -> QModel:
    """Read a quantized ONNX model (path, bytes or ModelProto) into a :class:`QModel`.

    Raises
    ------
    ModelError : unreadable file, no quantization nodes at all, or an inconsistent graph.
    UnsupportedOpError : an op with no integer or float implementation, or a layout hwsim
        cannot execute (dynamic shapes feeding Reshape, auto_pad=SAME_*, ...).
    """
    from hwsim.ops import FLOAT_OPS

    m = _load(model)
    shapes = _infer_shapes(m)
    g = m.graph
    opset = max([o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] or [17])
    consts: dict[str, np.ndarray] = {t.name: _to_array(t) for t in g.initializer}
    const_types: dict[str, int] = {t.name: t.data_type for t in g.initializer}
    nodes = []
    for n in g.node:
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
            a = _attrs(n)
            if "value" not in a:
                raise UnsupportedOpError(n.name or n.output[0], "Constant", ("value",), "only tensor constants")
            consts[n.output[0]] = np.asarray(a["value"])
            continue
        nodes.append(n)
    # unique names for unnamed nodes
    named = []
    seen: set[str] = set()
    for i, n in enumerate(nodes):
        nm = n.name or f"{n.op_type}_{i}"
        while nm in seen:
            nm = f"{nm}_{i}"
        seen.add(nm)
        named.append((nm, n))

    name_by_id = {id(n): nm for nm, n in named}
    consumers: dict[str, list[tuple[str, onnx.NodeProto]]] = {}
    for nm, n in named:
        for t in n.input:
            if t:
                consumers.setdefault(t, []).append((nm, n))
    graph_outputs = [o.name for o in g.output]
    out_set = set(graph_outputs)

    def _zp_name(n, default_dtype):
        if len(n.input) > 2 and n.input[2]:
            return n.input[2]
        nm = f"{n.output[0]}::zero_point"
        if nm not in consts:
            to = _attrs(n).get("output_dtype", 0) if n.op_type == "QuantizeLinear" else 0
            consts[nm] = np.zeros((), _storage_of(to) if to else default_dtype)
        return nm

    def _storage_of(onnx_type):
        fmt = _ONNX_INT_TYPES.get(onnx_type)
        if fmt is None:
            raise ModelError(f"unsupported quantized type {onnx_type}")
        return fmt.storage_dtype

    dqs: dict[str, _DQ] = {}      # DQ output -> info
    q_by_name: dict[str, _Q] = {}
    for nm, n in named:
        if n.op_type == "DequantizeLinear":
            dqs[n.output[0]] = _DQ(n, n.input[0], n.input[1], _zp_name(n, np.uint8), int(_attrs(n).get("axis", 1)))
        elif n.op_type == "QuantizeLinear":
            info = _Q(n, n.output[0], n.input[1], _zp_name(n, np.uint8), int(_attrs(n).get("axis", 1)))
            q_by_name[nm] = info

    formats: dict[str, IntFormat] = {}
    qparams: dict[str, tuple] = {}

    def _fmt_of_zp(zp_name):
        t = const_types.get(zp_name)
        if t in _ONNX_INT_TYPES:
            return _ONNX_INT_TYPES[t]
        dt = consts[zp_name].dtype
        return IntFormat(dt.itemsize * 8, dt.kind == "i")

    def _params(scale, zp, axis):
        s = np.asarray(consts[scale], np.float32)
        z = np.asarray(consts[zp]).astype(np.int64)
        return (s, z, axis if s.ndim == 1 and s.size > 1 else None)

    def _const_dq(t):
        """DQ of a constant -> (_DQ) else None."""
        d = dqs.get(t)
        return d if d is not None and d.x in consts else None

    def _act_dq(t):
        d = dqs.get(t)
        return d if d is not None and d.x not in consts else None

    def _single_q_after(t):
        """The Q consuming ``t`` (through an optional Relu/Clip), with the clamp op, or None."""
        if t in out_set:
            return None
        cs = consumers.get(t, [])
        if len(cs) != 1:
            return None
        cnm, c = cs[0]
        act = None
        if c.op_type in ("Relu", "Clip"):
            act = (cnm, c)
            if c.output[0] in out_set:
                return None
            cs = consumers.get(c.output[0], [])
            if len(cs) != 1:
                return None
            cnm, c = cs[0]
        if c.op_type != "QuantizeLinear":
            return None
        return q_by_name[cnm], act

    def _scalar_params_equal(d: _DQ, q: _Q):
        sd, zd = consts[d.scale], consts[d.zp]
        sq, zq = consts[q.scale], consts[q.zp]
        return (np.asarray(sd).size == 1 and np.array_equal(np.asarray(sd, np.float32), np.asarray(sq, np.float32))
                and np.array_equal(np.asarray(zd).astype(np.int64), np.asarray(zq).astype(np.int64))
                and _fmt_of_zp(d.zp) == _fmt_of_zp(q.zp))

    # ---- pass 1: decide fusions -----------------------------------------------------------
    plan: dict[str, Node] = {}          # source node name -> canonical node replacing it
    skipped: set[str] = set()           # source nodes absorbed (Q, Relu/Clip)
    src_of: dict[str, tuple[str, ...]] = {}
    kinds = set()
    for nm, n in named:
        op = n.op_type
        if op in QOPERATOR_OPS and op not in ("QuantizeLinear", "DequantizeLinear"):
            kinds.add("qoperator")
            continue
        if op in ("QuantizeLinear", "DequantizeLinear"):
            continue
        after = _single_q_after(n.output[0]) if len(n.output) == 1 else None
        if after is None:
            continue
        q, act = after
        if op in FUSABLE_OPS:
            fused = _fuse(nm, n, q, act, consts, _act_dq, _const_dq, _fmt_of_zp, shapes, opset)
            if fused is None:
                continue
            plan[nm] = fused
            kinds.add("qdq")
        elif op in INT_PASSTHROUGH_OPS and act is None:
            d = _act_dq(n.input[0]) if n.input else None
            if d is None or not _scalar_params_equal(d, q):
                continue
            a, ins = _normalize(nm, op, _attrs(n), n.input, consts, shapes, opset)
            plan[nm] = Node(nm, op, (d.x,) + tuple(ins[1:]), (q.y,), a)
            kinds.add("qdq")
        else:
            continue
        src_of[nm] = (nm,) + ((act[0],) if act else ()) + (name_by_id[id(q.node)],)
        skipped.update(src_of[nm][1:])

    # ---- pass 2: emit ---------------------------------------------------------------------
    emitted: list[Node] = []
    islands = []
    for nm, n in named:
        if nm in skipped:
            continue
        if nm in plan:
            emitted.append(plan[nm])
            continue
        op = n.op_type
        if op == "DequantizeLinear" or op == "QuantizeLinear":
            a, ins = _normalize(nm, op, _attrs(n), n.input, consts, shapes, opset)
            # (a DequantizeLinear of a constant is folded into a float constant below)
            emitted.append(Node(nm, op, (ins[0], ins[1], _zp_name(n, np.uint8)), tuple(n.output), a))
            continue
        if op in QOPERATOR_OPS:
            a, ins = _normalize(nm, op, _attrs(n), n.input, consts, shapes, opset)
            emitted.append(Node(nm, op, tuple(ins), tuple(n.output), a))
            continue
        if op not in FLOAT_OPS:
            raise UnsupportedOpError(nm, op, set(FLOAT_OPS) | set(QOPERATOR_OPS),
                                     "no integer or float implementation")
        a, ins = _normalize(nm, op, _attrs(n), n.input, consts, shapes, opset)
        emitted.append(Node(nm, op, tuple(ins), tuple(n.output), a))
        islands.append(nm)

    if not any(n.op in QOPERATOR_OPS for n in emitted):
        raise ModelError(f"model '{g.name}' has no quantization nodes (QuantizeLinear, DequantizeLinear, QLinear*); "
                         "it is a float model")

    # fold DequantizeLinear of constants (weights of float islands) into float constants
    final: list[Node] = []
    used = {t for n in emitted for t in n.inputs} | out_set
    for n in emitted:
        if n.op == "DequantizeLinear" and n.inputs[0] in consts:
            if n.outputs[0] in used:
                s, z, ax = _params(n.inputs[1], n.inputs[2], n.attrs.get("axis", 1))
                from hwsim.kernels import dequantize
                consts[n.outputs[0]] = dequantize(consts[n.inputs[0]], s, z, ax)
            continue
        final.append(n)
    # drop nodes whose outputs nobody reads (activation DQs absorbed by fusions)
    while True:
        used = {t for n in final for t in n.inputs} | out_set
        keep = [n for n in final if any(t in used for t in n.outputs if t)]
        if len(keep) == len(final):
            break
        final = keep

    # integer formats / quantization parameters of integer tensors
    inputs = []
    for vi in g.input:
        if vi.name in consts:
            continue
        dims = tuple((d.dim_value if d.HasField("dim_value") else None) for d in vi.type.tensor_type.shape.dim)
        et = vi.type.tensor_type.elem_type
        dtype = helper.tensor_dtype_to_np_dtype(et).name if et else "float32"
        inputs.append(TensorInfo(vi.name, dims, dtype))
        if et in _ONNX_INT_TYPES:
            formats[vi.name] = _ONNX_INT_TYPES[et]
    for n in final:
        out_zp = _out_zero_point_input(n)
        if out_zp is not None:
            formats[n.outputs[0]] = _fmt_of_zp(n.inputs[out_zp])
            qparams[n.outputs[0]] = _params(n.inputs[out_zp - 1], n.inputs[out_zp], n.attrs.get("axis", 1))
        elif n.op == "DequantizeLinear":
            qparams[n.outputs[0]] = _params(n.inputs[1], n.inputs[2], n.attrs.get("axis", 1))
            if n.inputs[0] not in formats:
                formats[n.inputs[0]] = _fmt_of_zp(n.inputs[2])
                qparams[n.inputs[0]] = qparams[n.outputs[0]]
    for n in final:
        if n.op in INT_PASSTHROUGH_OPS and n.inputs[0] in formats:
            formats[n.outputs[0]] = formats[n.inputs[0]]
            if n.inputs[0] in qparams:
                qparams[n.outputs[0]] = qparams[n.inputs[0]]
    # canonical attrs the integer kernels need: output format
    final = [n.replace(attrs={**n.attrs, "out_format": formats[n.outputs[0]]})
             if n.outputs and n.outputs[0] in formats and n.op in _OUT_ZP else n for n in final]

    used_consts = {t for n in final for t in n.inputs if t in consts}
    graph = Graph(name=g.name or "quantized", inputs=tuple(inputs), outputs=tuple(graph_outputs),
                  nodes=tuple(final), constants={k: consts[k] for k in used_consts},
                  shapes={t.name: tuple(1 if d is None else d for d in t.shape) for t in inputs},
                  opset=max([o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] or [0]),
                  metadata={"source": "quantized_onnx"})
    kind = "mixed" if len(kinds) > 1 else (kinds.pop() if kinds else "qdq")
    return QModel(graph, formats, qparams, kind, tuple(i for i in islands if any(n.name == i for n in final)),
                  {k: v for k, v in src_of.items()})


#: op -> position of its output zero-point input (its output scale is the input before).
_OUT_ZP = {"QLinearConv": 7, "QLinearMatMul": 7, "QGemm": 8, "QLinearAdd": 7, "QLinearMul": 7,
           "QLinearGlobalAveragePool": 4, "QLinearAveragePool": 4, "QLinearSigmoid": 4, "QLinearLeakyRelu": 4,
           "QLinearSoftmax": 4,
           "QLinearConcat": 1, "QuantizeLinear": 2}


def _out_zero_point_input(n: Node):
    pos = _OUT_ZP.get(n.op)
    if pos is None or len(n.inputs) <= pos or not n.inputs[pos]:
        return None
    return pos


def _fuse(nm, n, q: _Q, act, consts, act_dq, const_dq, fmt_of_zp, shapes=None, opset=17) -> Node | None:
    """One DQ -> op -> [act] -> Q group as a QOperator node, or None when the group is not
    in a form onnxruntime's integer kernels take (then it stays a float island)."""
    op = n.op_type
    qop = FUSABLE_OPS[op]
    a = {}
    if act is not None:
        anm, an = act
        aa, _ = _normalize(anm, an.op_type, _attrs(an), an.input, consts, shapes)
        s = float(np.asarray(consts[q.scale], np.float32))
        z = int(np.asarray(consts[q.zp]))
        fmt = fmt_of_zp(q.zp)
        from hwsim.kernels import quantize
        lo = aa.get("min", 0.0) if an.op_type == "Clip" else 0.0
        hi = aa.get("max", None) if an.op_type == "Clip" else None
        if lo is not None and np.isfinite(lo):
            a["act_min"] = int(quantize(np.float32(lo), s, z, fmt))
        if hi is not None and np.isfinite(hi):
            a["act_max"] = int(quantize(np.float32(hi), s, z, fmt))
    if op in ("Conv", "MatMul", "Gemm"):
        x = act_dq(n.input[0])
        w = const_dq(n.input[1]) if len(n.input) > 1 else None
        if w is None and op == "MatMul" and len(n.input) > 1:
            w = act_dq(n.input[1])      # activation x activation (attention): QLinearMatMul too
            if w is not None and np.asarray(consts[w.scale]).size != 1:
                return None
        if x is None or w is None:
            return None
        if np.asarray(consts[x.scale]).size != 1:
            return None
        bias = ""
        if len(n.input) > 2 and n.input[2]:
            b = const_dq(n.input[2])
            if b is None or consts[b.x].dtype != np.int32 or np.any(np.asarray(consts[b.zp]) != 0):
                return None
            bias = b.x
        na, _ = _normalize(nm, op, _attrs(n), n.input, consts, shapes)
        na.update(a)
        if op == "Gemm":
            if na["transA"] or na["beta"] != 1.0 or consts[w.x].ndim != 2:
                return None
            ins = (x.x, x.scale, x.zp, w.x, w.scale, w.zp, bias, q.scale, q.zp)
            return Node(nm, "QGemm", ins, (q.y,), na)
        if op == "MatMul":
            if w.x in consts and consts[w.x].ndim != 2:
                return None
            ins = (x.x, x.scale, x.zp, w.x, w.scale, w.zp, q.scale, q.zp)
            return Node(nm, "QLinearMatMul", ins, (q.y,), na)
        ins = (x.x, x.scale, x.zp, w.x, w.scale, w.zp, q.scale, q.zp) + ((bias,) if bias else ())
        return Node(nm, "QLinearConv", ins, (q.y,), na)
    if op in ("Add", "Mul"):
        if len(n.input) != 2:
            return None
        srcs = []
        for t in n.input:
            d = act_dq(t) or const_dq(t)
            if d is None or np.asarray(consts[d.scale]).size != 1:
                return None
            srcs.append(d)
        da, db = srcs
        if fmt_of_zp(da.zp) != fmt_of_zp(q.zp) or fmt_of_zp(db.zp) != fmt_of_zp(q.zp):
            return None
        ins = (da.x, da.scale, da.zp, db.x, db.scale, db.zp, q.scale, q.zp)
        return Node(nm, qop, ins, (q.y,), a)
    if op == "Softmax":
        x = act_dq(n.input[0])
        if (x is None or act is not None or np.asarray(consts[x.scale]).size != 1
                or fmt_of_zp(x.zp) != fmt_of_zp(q.zp) or fmt_of_zp(q.zp).bits != 8):
            return None
        na, _ = _normalize(nm, "QLinearSoftmax", {**_attrs(n), "opset": opset}, n.input, consts, shapes, opset)
        return Node(nm, qop, (x.x, x.scale, x.zp, q.scale, q.zp), (q.y,), na)
    if op == "GlobalAveragePool":
        x = act_dq(n.input[0])
        if x is None or np.asarray(consts[x.scale]).size != 1 or fmt_of_zp(x.zp) != fmt_of_zp(q.zp):
            return None
        return Node(nm, qop, (x.x, x.scale, x.zp, q.scale, q.zp), (q.y,), a)
    return None


# ---------------------------------------------------------------------------------------------
# Integer execution (onnxruntime arithmetic, through hwsim.kernels)
# ---------------------------------------------------------------------------------------------

def _f(v) -> np.ndarray:
    return np.asarray(v, np.float32)


def _i(v) -> np.ndarray:
    return np.asarray(v).astype(np.int64)


def _requant(node, ins, xs, ws, ys, yz, ctx):
    from hwsim.kernels import RequantParams
    key = (node.name, "rq")
    rp = ctx.params.get(key) if ctx is not None else None
    if rp is None:
        fmt = node.attrs["out_format"]
        rp = RequantParams.create("onnxruntime", float(_f(xs)), _f(ws).ravel(), float(_f(ys)), fmt,
                                  int(_i(yz)), act_min=node.attrs.get("act_min"), act_max=node.attrs.get("act_max"))
        if ctx is not None:
            ctx.params[key] = rp
    return rp


def _accum(x_dtype, w_dtype):
    from hwsim.kernels import AccumParams
    wide = np.dtype(x_dtype).itemsize > 1 or np.dtype(w_dtype).itemsize > 1
    return AccumParams(bits=64 if wide else 32)


def _record(ctx, node, stats):
    if ctx is not None:
        prev = ctx.stats.get(node.name)
        ctx.stats[node.name] = stats if prev is None else prev + stats


def _qlinearconv(node, ins, ctx):
    from hwsim.kernels import ConvParams, qconv2d
    x, xs, xz, w, ws, wz, ys, yz = ins[:8]
    bias = ins[8] if len(ins) > 8 else None
    if x.ndim != 4:
        raise UnsupportedOpError(node.name, node.op, ("2-D QLinearConv",), f"{x.ndim - 2}-D input")
    a = node.attrs
    wzs = _i(wz).ravel()
    if wzs.size > 1 and np.any(wzs != wzs[0]):
        # onnxruntime requires equal per-channel weight zero points in QLinearConv
        raise UnsupportedOpError(node.name, node.op, (), "per-channel weight zero points differ")
    p = ConvParams(strides=a["strides"], pads=a["pads"], dilations=a["dilations"], groups=a["group"],
                   x_zero_point=int(_i(xz)), w_zero_point=tuple(wzs.tolist()) if wzs.size > 1 else (int(wzs[0]),),
                   accum=_accum(x.dtype, w.dtype), requant=_requant(node, ins, xs, ws, ys, yz, ctx))
    y, st = qconv2d(x, w, None if bias is None else _i(bias), p)
    _record(ctx, node, st)
    return (y,)


def _gemm_core(node, x, xz, w_kn, wz, bias, rp, ctx):
    from hwsim.kernels import GemmParams, qgemm
    wzs = _i(wz).ravel()
    p = GemmParams(x_zero_point=int(_i(xz)), w_zero_point=tuple(wzs.tolist()), accum=_accum(x.dtype, w_kn.dtype),
                   requant=rp)
    y, st = qgemm(x, w_kn, None if bias is None else _i(bias), p)
    _record(ctx, node, st)
    return y


def _qlinearmatmul(node, ins, ctx):
    a, as_, az, b, bs, bz, ys, yz = ins
    rp = _requant(node, ins, as_, bs, ys, yz, ctx)
    if b.ndim == 2:
        return (_gemm_core(node, a, az, b, bz, None, rp, ctx),)
    # batched B (e.g. attention scores): one GEMM per broadcast batch index
    if a.ndim < 2:
        raise UnsupportedOpError(node.name, node.op, (), "1-D A with batched B")
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a_b = np.broadcast_to(a, batch + a.shape[-2:])
    b_b = np.broadcast_to(b, batch + b.shape[-2:])
    fmt = node.attrs["out_format"]
    out = np.empty(batch + (a.shape[-2], b.shape[-1]), fmt.storage_dtype)
    for idx in np.ndindex(*batch):
        out[idx] = _gemm_core(node, np.ascontiguousarray(a_b[idx]), az, np.ascontiguousarray(b_b[idx]), bz, None,
                              rp, ctx)
    return (out,)


def _qgemm(node, ins, ctx):
    from hwsim.kernels import gemm_acc, GemmParams
    a, as_, az, b, bs, bz = ins[:6]
    c = ins[6] if len(ins) > 6 else None
    ys = ins[7] if len(ins) > 7 else None
    yz = ins[8] if len(ins) > 8 else None
    at = node.attrs
    if at.get("transA", 0):
        a = np.swapaxes(a, -1, -2)
    w = np.ascontiguousarray(b.T) if at.get("transB", 0) else b
    alpha = np.float32(at.get("alpha", 1.0))
    if ys is None:
        # float output: f32(acc) * f32(alpha * sa * sb)   (com.microsoft QGemm without y_scale)
        wzs = _i(bz).ravel()
        acc = gemm_acc(a, w, None if c is None else _i(c),
                       GemmParams(x_zero_point=int(_i(az)), w_zero_point=tuple(wzs.tolist()),
                                  accum=_accum(a.dtype, w.dtype)))
        acc = acc[0] if isinstance(acc, tuple) else acc
        scale = (np.float32(alpha * _f(as_)) * _f(bs).ravel()).astype(np.float32)
        return ((acc.astype(np.float32) * scale).astype(np.float32),)
    sx = np.float32(alpha * _f(as_)) if alpha != 1 else _f(as_)
    rp = _requant(node, ins, sx, bs, ys, yz, ctx)
    return (_gemm_core(node, a, az, w, bz, c, rp, ctx),)


def _qlinear_binary(kind):
    def impl(node, ins, ctx):
        from hwsim.kernels.elementwise import qadd, qmul
        a, as_, az, b, bs, bz, cs, cz = ins
        fmt = node.attrs["out_format"]
        dtype = fmt.storage_dtype.name
        fn = qadd if kind == "add" else qmul
        y = fn(a, b, (float(_f(as_)), int(_i(az))), (float(_f(bs)), int(_i(bz))), (float(_f(cs)), int(_i(cz))),
               dtype, scheme="onnxruntime")
        lo, hi = node.attrs.get("act_min"), node.attrs.get("act_max")
        if lo is not None or hi is not None:
            y = np.clip(y, fmt.qmin if lo is None else lo, fmt.qmax if hi is None else hi).astype(y.dtype)
        return (y,)
    return impl


def _qlinear_gap(node, ins, ctx):
    """MLAS QLinearGlobalAveragePool: int32 sum minus N*zx, times f32(sx / f32(sy * N)), rne, clamp."""
    from hwsim.kernels import RequantParams, requantize
    x, xs, xz, ys, yz = ins
    fmt = node.attrs["out_format"]
    channels_last = int(node.attrs.get("channels_last", 0))
    axes = tuple(range(1, x.ndim - 1)) if channels_last else tuple(range(2, x.ndim))
    n = int(np.prod([x.shape[i] for i in axes]))
    acc = x.astype(np.int64).sum(axis=axes, keepdims=True) - np.int64(n) * int(_i(xz))
    m = np.float32(_f(xs) / np.float32(_f(ys) * np.float32(n)))
    lo = max(fmt.qmin, node.attrs.get("act_min", fmt.qmin))
    hi = min(fmt.qmax, node.attrs.get("act_max", fmt.qmax))
    rp = RequantParams("onnxruntime", fmt, int(_i(yz)), lo, hi, [float(m)], [0], [0], [0.0])
    y, st = requantize(acc, rp)
    _record(ctx, node, st)
    return (y,)


def _quantize(node, ins, ctx):
    from hwsim.kernels import quantize
    x, s, z = ins
    fmt = node.attrs["out_format"]
    axis = node.attrs.get("axis", 1) if np.asarray(s).ndim == 1 and np.asarray(s).size > 1 else None
    return (quantize(x, _f(s), _i(z), fmt, axis=axis),)


def _dequantize(node, ins, ctx):
    from hwsim.kernels import dequantize
    q, s, z = ins
    if q.dtype.kind == "f":
        raise DataError(f"node '{node.name}': DequantizeLinear got a float tensor")
    axis = node.attrs.get("axis", 1) if np.asarray(s).ndim == 1 and np.asarray(s).size > 1 else None
    return (dequantize(q, _f(s), _i(z), axis=axis),)


def _via_float(float_op):
    """QOperator ops onnxruntime computes from dequantized values (AveragePool: float window sum;
    Sigmoid/LeakyRelu: a 256-entry table filled from the float function): dequantize, run the
    float op, quantize with the op's output parameters."""
    def impl(node, ins, ctx):
        from hwsim.kernels import dequantize, quantize
        from hwsim.ops import FLOAT_OPS
        x, xs, xz, ys, yz = ins[:5]
        xf = dequantize(x, _f(xs), _i(xz))
        attrs = dict(node.attrs)
        if float_op == "LeakyRelu":
            a = np.float32(attrs.get("alpha", 0.01))
            y = np.where(xf >= 0, xf, (xf * a).astype(np.float32)).astype(np.float32)
        else:
            y = FLOAT_OPS[float_op](node, [xf], None)[0]
        if float_op == "AveragePool":
            # ORT's quantize_value adds the zero point in float before rounding: rne(f32(y/s) + z)
            fmt = node.attrs["out_format"]
            t = ((y / _f(ys)).astype(np.float32) + np.float32(_i(yz))).astype(np.float32)
            return (np.clip(np.rint(t), fmt.qmin, fmt.qmax).astype(fmt.storage_dtype),)
        return (quantize(y, _f(ys), _i(yz), node.attrs["out_format"]),)
    return impl


def _qlinear_concat(node, ins, ctx):
    """com.microsoft QLinearConcat: every input requantized to the output parameters (values
    whose parameters already match are copied), then concatenated."""
    from hwsim.kernels import dequantize, quantize
    ys, yz = ins[0], ins[1]
    fmt = node.attrs["out_format"]
    parts = []
    for j in range(2, len(ins), 3):
        x, xs, xz = ins[j], ins[j + 1], ins[j + 2]
        if np.array_equal(_f(xs), _f(ys)) and np.array_equal(_i(xz), _i(yz)):
            parts.append(x.astype(fmt.storage_dtype))
        else:
            parts.append(quantize(dequantize(x, _f(xs), _i(xz)), _f(ys), _i(yz), fmt))
    return (np.concatenate(parts, axis=int(node.attrs["axis"]) % parts[0].ndim),)


def _softmax_table(x_scale: float, reduce_len: int, signed: bool) -> np.ndarray:
    """onnxruntime's QLinearSoftmax exponent table: 256 float32 entries of
    ``exp((i - 255 + shift) * sx)`` (double math, stored as float32), with the headroom shift
    ``max(0, ln(FLT_MAX / D) - 5) / sx``; int8 inputs index it by ``uint8(i - 128)``."""
    flt_max = float(np.finfo(np.float32).max)
    shift = max(0.0, np.log(flt_max / reduce_len) - 5.0) / float(np.float32(x_scale))
    i = np.arange(256, dtype=np.float64)
    vals = np.exp((i - 255.0 + shift) * float(np.float32(x_scale))).astype(np.float32)
    table = np.empty(256, np.float32)
    idx = ((np.arange(256) - 128) % 256) if signed else np.arange(256)
    table[idx] = vals
    return table


def _qlinear_softmax(node, ins, ctx):
    """com.microsoft QLinearSoftmax as onnxruntime's CPU kernel computes it: a float32
    exponent table indexed by the code's distance to the row maximum, a float32 sum in
    element order, ``rne(f32(e * floor(1/sy)) / sum) + zy``, saturated to the output type
    (measured on onnxruntime 1.31: an int8 probability of 1 at zero point -128 gives 127)."""
    x, xs, xz, ys, yz = ins
    signed = x.dtype == np.int8
    axis = int(node.attrs["axis"]) % x.ndim
    if int(node.attrs.get("opset", 13)) < 13:
        lead = int(np.prod(x.shape[:axis], dtype=np.int64))
        rows = x.reshape(lead, -1)
        back = None
    else:
        moved = np.moveaxis(x, axis, -1)
        rows = moved.reshape(-1, moved.shape[-1])
        back = moved.shape
    d = rows.shape[1]
    table = _softmax_table(float(_f(xs)), d, signed)
    r = rows.astype(np.int64)
    xmax = r.max(axis=1, keepdims=True)
    if signed:
        idx = (127 - xmax + r) % 256              # uint8(adjustment + x)
    else:
        idx = 255 - xmax + r
    e = table[idx]                                # float32
    vsum = np.zeros(rows.shape[0], np.float32)
    for j in range(d):                            # float32 accumulation in element order
        vsum = (vsum + e[:, j]).astype(np.float32)
    yscale = np.float32(np.floor(np.float32(1.0) / _f(ys)))
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.rint(((e * yscale).astype(np.float32) / vsum[:, None]).astype(np.float32))
    v = np.nan_to_num(v, nan=0.0, posinf=0.0).astype(np.int64) + int(_i(yz))
    out = np.minimum(v, 127 if signed else 255).astype(np.int8 if signed else np.uint8)
    if back is None:
        return (out.reshape(x.shape),)
    return (np.moveaxis(out.reshape(back), -1, axis),)


def _int_passthrough(op):
    def impl(node, ins, ctx):
        from hwsim.ops import FLOAT_OPS
        x = ins[0]
        if x.dtype.kind in "iu" and op == "MaxPool":
            # selection only: exact in float32 for <= 24-bit integers
            return (FLOAT_OPS[op](node, [x.astype(np.float32)] + list(ins[1:]), None)[0].astype(x.dtype),)
        return FLOAT_OPS[op](node, ins, None)
    return impl


def _build_int_ops():
    ops = {
        "QLinearConv": _qlinearconv, "QLinearMatMul": _qlinearmatmul, "QGemm": _qgemm,
        "QLinearAdd": _qlinear_binary("add"), "QLinearMul": _qlinear_binary("mul"),
        "QLinearGlobalAveragePool": _qlinear_gap, "QuantizeLinear": _quantize, "DequantizeLinear": _dequantize,
        "QLinearAveragePool": _via_float("AveragePool"), "QLinearSigmoid": _via_float("Sigmoid"),
        "QLinearLeakyRelu": _via_float("LeakyRelu"), "QLinearConcat": _qlinear_concat,
        "QLinearSoftmax": _qlinear_softmax,
    }
    for op in INT_PASSTHROUGH_OPS:
        ops[op] = _int_passthrough(op)
    return ops


#: op type -> implementation for canonical quantized graphs (float-island ops come from hwsim.ops).
INT_OPS = _build_int_ops()


def run_quantized(qm: QModel, feeds: Mapping[str, np.ndarray], *, keep: str | Iterable[str] = "outputs",
                  stats: dict | None = None) -> dict[str, np.ndarray]:
    """Execute ``qm`` with onnxruntime's integer arithmetic; float islands run in float32.

    Parameters
    ----------
    feeds : graph input name -> array (float32 for float inputs).
    keep : "outputs", "all" or tensor names to return (see :func:`hwsim.execute.run_graph`).
    stats : if given, filled with node name -> :class:`hwsim.kernels.KernelStats`.
    """
    from hwsim.ops import FLOAT_OPS

    names = set(qm.graph.input_names)
    unknown = [k for k in feeds if k not in names]
    if unknown:
        raise DataError(f"unknown input name(s) {unknown}; the model's inputs are {sorted(names)}")
    checked = {}
    for t in qm.graph.inputs:
        if t.name not in feeds:
            continue
        v = np.asarray(feeds[t.name])
        if v.dtype.kind == "f" and not np.all(np.isfinite(v)):
            raise DataError(f"input '{t.name}' contains NaN or Inf")
        if len(t.shape) != v.ndim or any(d is not None and d != s for d, s in zip(t.shape, v.shape)):
            raise DataError(f"input '{t.name}' has shape {list(v.shape)}; the model expects "
                            f"{['N' if d is None else d for d in t.shape]}")
        checked[t.name] = v.astype(t.dtype, copy=False)
    dispatch = dict(FLOAT_OPS)
    dispatch.update(INT_OPS)
    ctx = _Ctx()
    out = run_graph(qm.graph, checked, dispatch, ctx, keep=keep)
    if stats is not None:
        stats.update(ctx.stats)
    return out

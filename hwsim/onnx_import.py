"""ONNX -> :class:`hwsim.graph.Graph`.

What the importer does, in order:

1. reads the file (or takes a ``ModelProto``), inlines model-local functions;
2. runs ONNX shape inference twice, with every dynamic input dimension set to 1 and then
   to 2, to learn static shapes and which dimensions depend on the batch;
3. walks the nodes in topological order and
   - folds ``Constant`` and every node whose inputs are all constant (``Shape`` of a
     tensor counts as constant: its value is known for batch 1 and batch 2), including
     the torch ``Shape -> Gather -> Unsqueeze -> Concat -> Reshape`` chains. A folded value
     that depends on the batch may feed a ``Reshape`` target (the batch entry becomes ``0``
     = copy, or ``-1``), an ``Expand`` target (the entry becomes ``1``), or, when it is one
     repeated value (``zeros_like``/``ones_like``), a broadcasting element-wise op (its
     batch-1 value is kept); anything else is rejected, so the graph runs for any batch;
   - removes ``Identity``/``Dropout`` (and same-type ``Cast``);
   - normalises the attributes of every remaining node (:data:`hwsim.opset.NORMALISED_ATTRS`),
     so executors never look at opset versions;
   - rejects any op it cannot run with :class:`~hwsim.errors.UnsupportedOpError` (at import);
   - where ONNX shape inference gave no shape, runs the normalised node on dummy inputs of
     the batch-1 and batch-2 shapes to learn it;
4. folds ``BatchNormalization`` into the preceding Conv/Gemm when that Conv/Gemm output has
   no other consumer (executed as its own node otherwise), and a zero constant ``Pad`` of
   the spatial axes into the following Conv's pads (torch's asymmetric padding);
5. removes dead nodes and unused constants, fills ``Graph.shapes`` (batch 1) and
   ``Graph.dtypes`` for every tensor. ``Graph.metadata`` records the producer, the
   ``dynamic_dims`` (input -> {axis: name}) left dynamic and the ``fixed_dims`` applied.

Normalised layouts worth knowing: Conv weight ``(M, C/group, kH, kW)``, ``pads`` =
``(top, left, bottom, right)``, ``attrs['depthwise']`` set when group == C > 1 with one
input channel per group; Gemm with a constant weight has ``W`` of shape ``(N, K)``
(``Y = A @ W.T + bias``, per-output-channel axis 0, ``transB=1``, ``alpha=beta=1``).

Examples
--------
>>> import onnx
>>> from onnx import helper, TensorProto
>>> from hwsim.onnx_import import load_model
>>> x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
>>> y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
>>> m = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]))
>>> g = load_model(m)
>>> g.shapes["y"], g.inputs[0].shape
((1, 3), (None, 3))
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .errors import ModelError, UnsupportedOpError
from .graph import Graph, Node, TensorInfo
from .opset import OPS

__all__ = ["load_model", "SUPPORTED_OPS", "FOLD_ONLY_OPS", "REMOVED_OPS", "MIN_OPSET"]

MIN_OPSET = 7

FOLD_ONLY_OPS = frozenset({
    "Constant", "Shape", "Size", "ConstantOfShape", "Range", "Less", "Greater",
    "Floor", "Ceil", "Not", "And", "Or", "Abs", "Tile",
    "ReduceProd", "ReduceMin", "Log", "Reciprocal", "Mod",
})
"""Ops accepted only when all their inputs are constant (they are evaluated at import)."""

REMOVED_OPS = frozenset({"Identity", "Dropout", "CastLike", "Upsample", "Min", "Max"})
"""Ops removed at import: their output is their input, a constant or a ``Cast``; ``Upsample``
becomes ``Resize``; ``Max``/``Min`` with a scalar constant become ``Clip``."""

SUPPORTED_OPS = frozenset(OPS) | FOLD_ONLY_OPS | REMOVED_OPS
"""Every op type the importer accepts (runtime ops in :data:`hwsim.opset.OPS`)."""

_NO_FOLD = frozenset({"QuantizeLinear", "DequantizeLinear", "RandomNormal", "RandomUniform",
                      "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"})


# --------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------
def _read(model) -> tuple[onnx.ModelProto, str]:
    if isinstance(model, onnx.ModelProto):
        m = onnx.ModelProto()
        m.CopyFrom(model)
        return m, model.graph.name or "model"
    if isinstance(model, (bytes, bytearray)):
        try:
            m = onnx.load_from_string(bytes(model))
            return m, "model"
        except Exception as e:
            raise ModelError(f"bytes: not an ONNX model ({type(e).__name__})") from None
    path = Path(os.fspath(model))
    if not path.exists():
        raise ModelError(f"{path}: no such file")
    if not path.is_file():
        raise ModelError(f"{path}: not a file")
    try:
        m = onnx.load(str(path))
    except Exception as e:
        raise ModelError(f"{path}: not an ONNX model ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})") from None
    if len(m.graph.node) == 0 and len(m.graph.output) == 0:
        raise ModelError(f"{path}: not an ONNX model (no graph)")
    return m, path.stem


def _np_dtype(elem_type: int) -> str | None:
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).name
    except Exception:
        return None


def _vi_shape(vi) -> tuple | None:
    t = vi.type
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
        return None
    dims = []
    for d in t.tensor_type.shape.dim:
        dims.append(int(d.dim_value) if d.HasField("dim_value") else None)
    return tuple(dims)


def _infer(m: onnx.ModelProto, dyn_value: int) -> tuple[dict, dict]:
    """Shapes (static only) and dtypes after setting dynamic input dims to ``dyn_value``."""
    inits = {i.name for i in m.graph.initializer}
    saved = []
    for vi in m.graph.input:
        if vi.name in inits or not vi.type.HasField("tensor_type"):
            continue
        for d in vi.type.tensor_type.shape.dim:
            if not d.HasField("dim_value") or d.dim_value <= 0:
                saved.append((d, d.dim_param if d.HasField("dim_param") else None))
                d.dim_value = dyn_value
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                inferred = onnx.shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)
            except Exception:
                inferred = m
    finally:
        for d, param in saved:
            if param is not None:
                d.dim_param = param
            else:
                d.ClearField("dim_value")
    shapes, dtypes = {}, {}
    g = inferred.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        s = _vi_shape(vi)
        if s is not None and all(v is not None for v in s):
            shapes[vi.name] = s
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
            dt = _np_dtype(vi.type.tensor_type.elem_type)
            if dt:
                dtypes[vi.name] = dt
    return shapes, dtypes


def _fix_dims(m: onnx.ModelProto, fixed: dict, model_name: str) -> None:
    found = set()
    for vi in list(m.graph.input) + list(m.graph.output):
        if not vi.type.HasField("tensor_type"):
            continue
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_param") and d.dim_param in fixed:
                v = int(fixed[d.dim_param])
                if v <= 0:
                    raise ModelError(f"{model_name}: fixed dimension {d.dim_param}={v} must be positive")
                found.add(d.dim_param)
                d.dim_value = v
    unknown = sorted(set(fixed) - found)
    if unknown:
        names = sorted({d.dim_param for vi in m.graph.input if vi.type.HasField("tensor_type")
                        for d in vi.type.tensor_type.shape.dim if d.HasField("dim_param")})
        raise ModelError(f"{model_name}: no input dimension named {', '.join(unknown)}; "
                         f"the dynamic dimensions are: {', '.join(names) or 'none'}")


def _toposort(nodes, available: set[str]) -> list:
    """Stable topological order (ONNX requires it, but be forgiving)."""
    avail = set(available)
    pending = list(nodes)
    out = []
    while pending:
        progressed = False
        rest = []
        for n in pending:
            if all((t == "" or t in avail) for t in n.input):
                out.append(n)
                avail.update(t for t in n.output if t)
                progressed = True
            else:
                rest.append(n)
        if not progressed:
            n = rest[0]
            missing = [t for t in n.input if t and t not in avail]
            raise ModelError(f"node '{n.name or n.op_type}' ({n.op_type}) reads undefined tensor(s) {missing}")
        pending = rest
    return out


# --------------------------------------------------------------------------------------
# the import context
# --------------------------------------------------------------------------------------
class _Folded:
    """A value known at import: ``v1`` for batch 1, ``v2`` for batch 2 (same object when static)."""

    __slots__ = ("v1", "v2")

    def __init__(self, v1, v2=None):
        self.v1 = np.asarray(v1)
        self.v2 = self.v1 if v2 is None else np.asarray(v2)

    @property
    def static(self) -> bool:
        return self.v1 is self.v2 or (self.v1.shape == self.v2.shape and np.array_equal(self.v1, self.v2))


class _Ctx:
    def __init__(self, opset: int, shapes1: dict, shapes2: dict, dtypes: dict, name: str):
        self.opset = opset
        self.shapes1 = shapes1
        self.shapes2 = shapes2
        self.dtypes = dtypes
        self.model = name
        self.known: dict[str, _Folded] = {}
        self.nodes: list[Node] = []
        self.names: set[str] = set()
        self.tensor_names: set[str] = set()

    # names --------------------------------------------------------------------------
    def unique(self, base: str) -> str:
        name, i = base, 1
        while name in self.names:
            name = f"{base}_{i}"
            i += 1
        self.names.add(name)
        return name

    def new_tensor(self, base: str) -> str:
        name, i = base, 1
        while name in self.tensor_names:
            name = f"{base}_{i}"
            i += 1
        self.tensor_names.add(name)
        return name

    # values and shapes ---------------------------------------------------------------
    def is_const(self, t: str) -> bool:
        return t in self.known

    def const(self, t: str, node: str, what: str) -> np.ndarray:
        f = self.known.get(t)
        if f is None:
            raise ModelError(f"node '{node}': {what} ('{t}') must be a constant (it is computed at run time)")
        if not f.static:
            raise ModelError(f"node '{node}': {what} ('{t}') depends on the dynamic batch size; "
                             "only a Reshape target may do so")
        return f.v1

    def add_const(self, base: str, value: np.ndarray) -> str:
        name = self.new_tensor(base)
        self.known[name] = _Folded(np.asarray(value))
        return name

    def shape1(self, t: str) -> tuple | None:
        if t in self.known:
            return tuple(self.known[t].v1.shape)
        return self.shapes1.get(t)

    def shape2(self, t: str) -> tuple | None:
        if t in self.known:
            return tuple(self.known[t].v2.shape)
        return self.shapes2.get(t)

    def rank(self, t: str, node: str) -> int:
        s = self.shape1(t)
        if s is None:
            raise ModelError(f"node '{node}': the rank of tensor '{t}' is unknown (ONNX shape inference "
                             "could not determine it)")
        return len(s)

    def emit(self, name, op, inputs, outputs, attrs=None) -> Node:
        n = Node(name, op, tuple(inputs), tuple(outputs), dict(attrs or {}))
        self.nodes.append(n)
        if any(t and (t not in self.shapes1 or t not in self.shapes2 or t not in self.dtypes) for t in n.outputs):
            self._propagate(n)
        return n

    def _propagate(self, n: Node) -> None:
        """Shapes ONNX inference missed: run the normalised node on dummy inputs (batch 1 and 2)."""
        from .ops import FLOAT_OPS

        for shapes in (self.shapes1, self.shapes2):
            args = []
            for t in n.inputs:
                if t == "":
                    args.append(None)
                elif t in self.known:
                    f = self.known[t]
                    args.append(f.v1 if shapes is self.shapes1 else f.v2)
                elif t in shapes:
                    args.append(np.zeros(shapes[t], dtype=self.dtypes.get(t, "float32")))
                else:
                    return
            try:
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    outs = FLOAT_OPS[n.op](n, args, None)
            except Exception as e:
                raise ModelError(f"node '{n.name}' ({n.op}): cannot execute with input shapes "
                                 f"{[None if a is None else a.shape for a in args]} ({type(e).__name__}: "
                                 f"{str(e).splitlines()[0][:160] if str(e) else ''})") from None
            for t, v in zip(n.outputs, outs):
                if t:
                    shapes[t] = tuple(np.shape(v))
                    self.dtypes.setdefault(t, np.asarray(v).dtype.name)


def _attrs(node) -> dict[str, Any]:
    out = {}
    for a in node.attribute:
        if a.type == onnx.AttributeProto.GRAPH or a.type == onnx.AttributeProto.GRAPHS:
            raise UnsupportedOpError(node.name or node.op_type, node.op_type, SUPPORTED_OPS,
                                     "ops with sub-graphs (control flow) are not supported")
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, onnx.TensorProto):
            v = numpy_helper.to_array(v)
        elif isinstance(v, list):
            v = tuple(x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in v)
        out[a.name] = v
    return out


def _ints(v) -> tuple[int, ...]:
    return tuple(int(x) for x in np.asarray(v).reshape(-1))


# --------------------------------------------------------------------------------------
# normalisers: (ctx, name, inputs, outputs, attrs) -> None (they emit nodes)
# --------------------------------------------------------------------------------------
def _auto_pads(auto_pad: str, in_spatial, k, s, d) -> tuple[int, ...]:
    nd = len(k)
    if auto_pad == "VALID":
        return (0,) * (2 * nd)
    begins, ends = [], []
    for i in range(nd):
        out = -(-in_spatial[i] // s[i])
        total = max(0, (out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in_spatial[i])
        small, big = total // 2, total - total // 2
        if auto_pad == "SAME_UPPER":
            begins.append(small)
            ends.append(big)
        else:
            begins.append(big)
            ends.append(small)
    return tuple(begins + ends)


def _window_attrs(ctx, name, op, x, attrs, kernel) -> dict:
    nd = len(kernel)
    strides = _ints(attrs.get("strides", (1,) * nd))
    dilations = _ints(attrs.get("dilations", (1,) * nd))
    auto_pad = attrs.get("auto_pad", "NOTSET") or "NOTSET"
    if auto_pad in ("SAME_UPPER", "SAME_LOWER", "VALID"):
        s1 = ctx.shape1(x)
        if s1 is None:
            raise ModelError(f"node '{name}' ({op}): auto_pad={auto_pad} needs the static input shape")
        pads = _auto_pads(auto_pad, s1[2:], kernel, strides, dilations)
        s2 = ctx.shape2(x)
        if s2 is not None and _auto_pads(auto_pad, s2[2:], kernel, strides, dilations) != pads:
            raise UnsupportedOpError(name, op, SUPPORTED_OPS,
                                     f"auto_pad={auto_pad} on a dynamic spatial dimension (the padding depends "
                                     "on the size; fix it with load_model(fixed_dims=...) or --dim NAME=SIZE)")
    elif auto_pad == "NOTSET":
        pads = _ints(attrs.get("pads", (0,) * (2 * nd)))
    else:
        raise UnsupportedOpError(name, op, SUPPORTED_OPS, f"auto_pad={auto_pad!r}")
    if len(pads) != 2 * nd or len(strides) != nd or len(dilations) != nd:
        raise ModelError(f"node '{name}' ({op}): pads/strides/dilations do not match kernel_shape {kernel}")
    return {"kernel_shape": tuple(kernel), "strides": strides, "dilations": dilations, "pads": pads}


def _n_conv(ctx, name, inputs, outputs, attrs):
    x, w = inputs[0], inputs[1]
    # the weight is normally an initializer; a run-time weight (e.g. DequantizeLinear of a QDQ
    # model) needs a static shape
    wshape = ctx.shape1(w)
    if wshape is None:
        raise ModelError(f"node '{name}' (Conv): the shape of the weight '{w}' is unknown")
    if len(wshape) not in (3, 4):
        raise UnsupportedOpError(name, "Conv", SUPPORTED_OPS, f"{len(wshape) - 2}-D convolution (only 1-D and 2-D)")
    W = np.empty(wshape, dtype=np.float32)   # shape carrier only
    kernel = _ints(attrs.get("kernel_shape", W.shape[2:]))
    if kernel != tuple(W.shape[2:]):
        raise ModelError(f"node '{name}' (Conv): kernel_shape {kernel} does not match weight shape {W.shape}")
    a = _window_attrs(ctx, name, "Conv", x, attrs, kernel)
    group = int(attrs.get("group", 1))
    s1 = ctx.shape1(x)
    cin = s1[1] if s1 is not None else W.shape[1] * group
    if W.shape[1] * group != cin or W.shape[0] % group:
        raise ModelError(f"node '{name}' (Conv): weight {W.shape} with group={group} does not fit "
                         f"{cin} input channels")
    a["group"] = group
    a["depthwise"] = bool(group > 1 and group == cin and W.shape[1] == 1)
    ins = [x, w] + ([inputs[2]] if len(inputs) > 2 and inputs[2] else [])
    ctx.emit(name, "Conv", ins, outputs[:1], a)


def _n_gemm(ctx, name, inputs, outputs, attrs):
    a_in, b_in = inputs[0], inputs[1]
    c_in = inputs[2] if len(inputs) > 2 and inputs[2] else ""
    alpha = float(attrs.get("alpha", 1.0))
    beta = float(attrs.get("beta", 1.0))
    ta, tb = int(attrs.get("transA", 0)), int(attrs.get("transB", 0))
    if ta and not ctx.is_const(a_in):
        t = ctx.new_tensor(f"{a_in}_T")
        ctx.emit(ctx.unique(f"{name}_transA"), "Transpose", [a_in], [t], {"perm": (1, 0)})
        a_in, ta = t, 0
    if not (ctx.is_const(b_in) and not ta):
        ins = [a_in, b_in] + ([c_in] if c_in else [])
        ctx.emit(name, "Gemm", ins, outputs[:1], {"alpha": alpha, "beta": beta, "transA": ta, "transB": tb})
        return
    # canonical form: Y = A @ W.T + bias with W (N, K)
    B = ctx.const(b_in, name, "Gemm B")
    if tb and alpha == 1.0:
        w_name, W = b_in, B
    else:
        W = np.ascontiguousarray(B if tb else B.T)
        if alpha != 1.0:
            W = (W * alpha).astype(B.dtype)
        w_name = ctx.add_const(f"{b_in}_NK", W)
    attrs_out = {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 1}
    ins = [a_in, w_name]
    if c_in:
        if ctx.is_const(c_in):
            C0 = ctx.const(c_in, name, "Gemm C")
            C = (C0 * beta).astype(C0.dtype) if beta != 1.0 else C0
            n_out = W.shape[0]
            if C.size == 1:
                C = np.full((n_out,), C.reshape(()), dtype=C.dtype)
            elif C.size == n_out and C.shape[-1] == n_out:
                C = C.reshape(n_out)
            ins.append(c_in if C is C0 else ctx.add_const(f"{c_in}_bias", C))
        else:
            attrs_out["beta"] = beta
            ins.append(c_in)
    ctx.emit(name, "Gemm", ins, outputs[:1], attrs_out)


def _n_plain(op):
    def f(ctx, name, inputs, outputs, attrs):
        ctx.emit(name, op, inputs, outputs[:1], {})
    return f


def _n_clip(ctx, name, inputs, outputs, attrs):
    if ctx.opset < 11:
        lo, hi = attrs.get("min", -np.inf), attrs.get("max", np.inf)
    else:
        lo = float(ctx.const(inputs[1], name, "Clip min").reshape(())) if len(inputs) > 1 and inputs[1] else -np.inf
        hi = float(ctx.const(inputs[2], name, "Clip max").reshape(())) if len(inputs) > 2 and inputs[2] else np.inf
    ctx.emit(name, "Clip", inputs[:1], outputs[:1], {"min": float(lo), "max": float(hi)})


def _n_hard_sigmoid(ctx, name, inputs, outputs, attrs):
    ctx.emit(name, "HardSigmoid", inputs[:1], outputs[:1],
             {"alpha": float(attrs.get("alpha", 0.2)), "beta": float(attrs.get("beta", 0.5))})


def _n_pool(op):
    def f(ctx, name, inputs, outputs, attrs):
        if len(outputs) > 1 and outputs[1]:
            raise UnsupportedOpError(name, op, SUPPORTED_OPS, "the Indices output is not supported")
        kernel = _ints(attrs["kernel_shape"])
        if len(kernel) not in (1, 2):
            raise UnsupportedOpError(name, op, SUPPORTED_OPS, f"{len(kernel)}-D pooling (only 1-D and 2-D)")
        a = _window_attrs(ctx, name, op, inputs[0], attrs, kernel)
        a["ceil_mode"] = int(attrs.get("ceil_mode", 0))
        if op == "AveragePool":
            a["count_include_pad"] = int(attrs.get("count_include_pad", 0))
        ctx.emit(name, op, inputs[:1], outputs[:1], a)
    return f


def _axes_from(ctx, name, inputs, attrs, pos, what):
    """Axes from the attribute or (newer opsets) from input ``pos``; None when absent."""
    if "axes" in attrs:
        return _ints(attrs["axes"])
    if len(inputs) > pos and inputs[pos]:
        return _ints(ctx.const(inputs[pos], name, what))
    return None


def _n_reduce(op):
    def f(ctx, name, inputs, outputs, attrs):
        r = ctx.rank(inputs[0], name)
        axes = _axes_from(ctx, name, inputs, attrs, 1, f"{op} axes")
        keep = int(attrs.get("keepdims", 1))
        if not axes:
            if int(attrs.get("noop_with_empty_axes", 0)):
                ctx.alias(outputs[0], inputs[0])
                return
            axes = tuple(range(r))
        axes = tuple(sorted(a % r for a in axes))
        ctx.emit(name, op, inputs[:1], outputs[:1], {"axes": axes, "keepdims": keep})
    return f


def _n_cast(ctx, name, inputs, outputs, attrs):
    to = _np_dtype(int(attrs["to"]))
    if to is None:
        raise UnsupportedOpError(name, "Cast", SUPPORTED_OPS, f"target type {attrs['to']}")
    ctx.emit(name, "Cast", inputs[:1], outputs[:1], {"to": to})


def _n_gelu(ctx, name, inputs, outputs, attrs):
    approx = attrs.get("approximate", "none")
    if approx not in ("none", "tanh"):
        raise UnsupportedOpError(name, "Gelu", SUPPORTED_OPS, f"approximate={approx!r}")
    ctx.emit(name, "Gelu", inputs[:1], outputs[:1], {"approximate": approx})


def _n_min_max_as_clip(op):
    """``Max(x, c)`` / ``Min(x, c)`` with a scalar constant ``c`` (ReLU / ReLU6 written with
    Max and Min, as some TensorFlow exports do) becomes ``Clip``."""
    def f(ctx, name, inputs, outputs, attrs):
        real = [t for t in inputs if t]
        consts = [t for t in real if ctx.is_const(t)]
        runtime = [t for t in real if not ctx.is_const(t)]
        if len(real) == 2 and len(runtime) == 1 and ctx.known[consts[0]].v1.size == 1:
            c = float(ctx.const(consts[0], name, f"{op} bound").reshape(()))
            rs, cs = ctx.shape1(runtime[0]), ctx.known[consts[0]].v1.shape
            if rs is not None and len(cs) <= len(rs):
                lo, hi = (c, np.inf) if op == "Max" else (-np.inf, c)
                ctx.emit(name, "Clip", runtime, outputs[:1], {"min": float(lo), "max": float(hi)})
                return
        raise UnsupportedOpError(name, op, SUPPORTED_OPS, "only with one tensor and one scalar constant "
                                 "(imported as Clip) or with constant inputs (folded)")
    return f


def _n_leaky_relu(ctx, name, inputs, outputs, attrs):
    ctx.emit(name, "LeakyRelu", inputs[:1], outputs[:1], {"alpha": float(attrs.get("alpha", 0.01))})


def _n_expand(ctx, name, inputs, outputs, attrs):
    x = inputs[0]
    f = ctx.known.get(inputs[1])
    if f is None:
        raise UnsupportedOpError(name, "Expand", SUPPORTED_OPS, "the target shape is computed at run time")
    target = [int(v) for v in f.v1.reshape(-1)]
    if not f.static:
        v2 = [int(v) for v in f.v2.reshape(-1)]
        in1, in2 = ctx.shape1(x), ctx.shape2(x)
        off = len(target) - len(in1 or ())
        for i in range(len(target)):
            if target[i] == v2[i]:
                continue
            j = i - off
            if in1 is not None and in2 is not None and 0 <= j < len(in1) and in1[j] == target[i] and in2[j] == v2[i]:
                target[i] = 1          # broadcasting 1 keeps the input's (dynamic) dimension
            else:
                raise UnsupportedOpError(name, "Expand", SUPPORTED_OPS,
                                         f"target shape entry {i} depends on the dynamic input dimensions")
    ctx.emit(name, "Expand", [x], outputs[:1], {"shape": tuple(target)})


def _n_softmax(ctx, name, inputs, outputs, attrs):
    r = ctx.rank(inputs[0], name)
    if ctx.opset < 13:
        axis = int(attrs.get("axis", 1)) % r
        axes = tuple(range(axis, r))
    else:
        axes = (int(attrs.get("axis", -1)) % r,)
    ctx.emit(name, "Softmax", inputs[:1], outputs[:1], {"axes": axes})


def _n_concat(ctx, name, inputs, outputs, attrs):
    r = ctx.rank(inputs[0], name)
    ctx.emit(name, "Concat", [t for t in inputs if t], outputs[:1], {"axis": int(attrs["axis"]) % r})


def _resolve_target(t, in_shape, allowzero) -> list[int]:
    t = [in_shape[i] if (v == 0 and not allowzero) else v for i, v in enumerate(t)]
    if -1 in t:
        known = int(np.prod([v for v in t if v != -1], dtype=np.int64))
        total = int(np.prod(in_shape, dtype=np.int64))
        t[t.index(-1)] = total // known if known else 0
    return t


def _dynamic_reshape_target(name, v1, v2, in1, in2, allowzero) -> list[int]:
    """A Reshape target that differs between batch 1 and batch 2 -> one valid for any batch:
    entries that change become 0 (copy the input dim at the same position) or a single -1."""
    if in1 is None or in2 is None:
        raise UnsupportedOpError(name, "Reshape", SUPPORTED_OPS, "batch-dependent target and unknown input shape")
    t1, t2 = _resolve_target(v1, in1, allowzero), _resolve_target(v2, in2, allowzero)
    if allowzero and 0 not in t1 and 0 not in t2:
        allowzero = 0        # no literal zero: the two semantics agree, and 0 may now mean "copy"
    target = list(v1)
    rest = []
    for i in range(len(t1)):
        if t1[i] == t2[i]:
            continue
        if not allowzero and i < len(in1) and t1[i] == in1[i] and t2[i] == in2[i]:
            target[i] = 0
        else:
            rest.append(i)
    if len(rest) == 1:
        j = rest[0]
        if target[j] != -1:
            if -1 in target:                 # the original -1 is batch independent: make it explicit
                k = target.index(-1)
                target[k] = t1[k]
            target[j] = -1
    elif rest:
        raise UnsupportedOpError(name, "Reshape", SUPPORTED_OPS,
                                 f"target shape entries {rest} depend on the dynamic input dimensions in a way "
                                 "that is not a copied or inferred dimension; fix the non-batch ones "
                                 "(load_model(..., fixed_dims={name: size}), or --dim NAME=SIZE)")
    return target, allowzero


def _n_reshape(ctx, name, inputs, outputs, attrs):
    x = inputs[0]
    allowzero = int(attrs.get("allowzero", 0))
    if ctx.opset < 5 or (len(inputs) < 2 and "shape" in attrs):
        target = list(_ints(attrs["shape"]))
    else:
        f = ctx.known.get(inputs[1])
        if f is None:
            raise UnsupportedOpError(name, "Reshape", SUPPORTED_OPS,
                                     "the target shape is computed at run time from tensor values")
        v1 = [int(v) for v in f.v1.reshape(-1)]
        target = v1
        if not f.static:
            target, allowzero = _dynamic_reshape_target(name, v1, [int(v) for v in f.v2.reshape(-1)],
                                                        ctx.shape1(x), ctx.shape2(x), allowzero)
    ctx.emit(name, "Reshape", [x], outputs[:1], {"shape": tuple(target), "allowzero": allowzero})


def _n_flatten(ctx, name, inputs, outputs, attrs):
    r = ctx.rank(inputs[0], name)
    axis = int(attrs.get("axis", 1))
    ctx.emit(name, "Flatten", inputs[:1], outputs[:1], {"axis": axis + r if axis < 0 else axis})


def _n_transpose(ctx, name, inputs, outputs, attrs):
    r = ctx.rank(inputs[0], name)
    perm = _ints(attrs["perm"]) if "perm" in attrs else tuple(range(r - 1, -1, -1))
    ctx.emit(name, "Transpose", inputs[:1], outputs[:1], {"perm": perm})


def _n_squeeze(ctx, name, inputs, outputs, attrs):
    x = inputs[0]
    r = ctx.rank(x, name)
    axes = _axes_from(ctx, name, inputs, attrs, 1, "Squeeze axes")
    if axes is None:
        s1, s2 = ctx.shape1(x), ctx.shape2(x)
        if s2 is None:
            raise ModelError(f"node '{name}' (Squeeze): no axes and the input shape is unknown")
        axes = tuple(i for i in range(r) if s1[i] == 1 and s2[i] == 1)
    ctx.emit(name, "Squeeze", [x], outputs[:1], {"axes": tuple(sorted(a % r for a in axes))})


def _n_unsqueeze(ctx, name, inputs, outputs, attrs):
    r = ctx.rank(inputs[0], name)
    axes = _axes_from(ctx, name, inputs, attrs, 1, "Unsqueeze axes")
    if axes is None:
        raise ModelError(f"node '{name}' (Unsqueeze): no axes given")
    out_r = r + len(axes)
    ctx.emit(name, "Unsqueeze", inputs[:1], outputs[:1], {"axes": tuple(sorted(a % out_r for a in axes))})


def _n_batchnorm(ctx, name, inputs, outputs, attrs):
    if int(attrs.get("training_mode", 0)) or (len(outputs) > 1 and any(outputs[1:])):
        raise UnsupportedOpError(name, "BatchNormalization", SUPPORTED_OPS, "training mode")
    for t, what in zip(inputs[1:5], ("scale", "B", "mean", "var")):
        ctx.const(t, name, f"BatchNormalization {what}")
    ctx.emit(name, "BatchNormalization", inputs[:5], outputs[:1], {"epsilon": float(attrs.get("epsilon", 1e-5))})


def _n_layernorm(ctx, name, inputs, outputs, attrs):
    if len(outputs) > 1 and any(outputs[1:]):
        raise UnsupportedOpError(name, "LayerNormalization", SUPPORTED_OPS, "Mean/InvStdDev outputs")
    r = ctx.rank(inputs[0], name)
    axis = int(attrs.get("axis", -1)) % r
    ins = [t for t in inputs[:3] if t]
    ctx.emit(name, "LayerNormalization", ins, outputs[:1], {"axis": axis, "epsilon": float(attrs.get("epsilon", 1e-5))})


def _n_pad(ctx, name, inputs, outputs, attrs):
    x = inputs[0]
    r = ctx.rank(x, name)
    mode = attrs.get("mode", "constant")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise UnsupportedOpError(name, "Pad", SUPPORTED_OPS, f"mode={mode!r}")
    if ctx.opset < 11:
        pads = _ints(attrs.get("pads", attrs.get("paddings", ())))
        value = float(attrs.get("value", 0.0))
    else:
        pads = _ints(ctx.const(inputs[1], name, "Pad pads"))
        value = 0.0
        if len(inputs) > 2 and inputs[2]:
            value = ctx.const(inputs[2], name, "Pad constant_value").reshape(()).item()
        if len(inputs) > 3 and inputs[3]:
            axes = [a % r for a in _ints(ctx.const(inputs[3], name, "Pad axes"))]
            full = [0] * (2 * r)
            for i, a in enumerate(axes):
                full[a] = pads[i]
                full[a + r] = pads[i + len(axes)]
            pads = tuple(full)
    if len(pads) != 2 * r:
        raise ModelError(f"node '{name}' (Pad): {len(pads)} pads for a rank-{r} input")
    ctx.emit(name, "Pad", [x], outputs[:1], {"pads": pads, "mode": mode, "value": value})


def _n_slice(ctx, name, inputs, outputs, attrs):
    x = inputs[0]
    r = ctx.rank(x, name)
    if ctx.opset < 10:
        starts, ends = _ints(attrs["starts"]), _ints(attrs["ends"])
        axes = _ints(attrs["axes"]) if "axes" in attrs else tuple(range(len(starts)))
        steps = (1,) * len(starts)
    else:
        starts = _ints(ctx.const(inputs[1], name, "Slice starts"))
        ends = _ints(ctx.const(inputs[2], name, "Slice ends"))
        axes = _ints(ctx.const(inputs[3], name, "Slice axes")) if len(inputs) > 3 and inputs[3] else tuple(range(len(starts)))
        steps = _ints(ctx.const(inputs[4], name, "Slice steps")) if len(inputs) > 4 and inputs[4] else (1,) * len(starts)
    axes = tuple(a % r for a in axes)
    ctx.emit(name, "Slice", [x], outputs[:1], {"starts": starts, "ends": ends, "axes": axes, "steps": steps})


def _n_split(ctx, name, inputs, outputs, attrs):
    x = inputs[0]
    r = ctx.rank(x, name)
    axis = int(attrs.get("axis", 0)) % r
    s1, s2 = ctx.shape1(x), ctx.shape2(x)
    if s1 is None or s2 is None or s1[axis] != s2[axis]:
        raise UnsupportedOpError(name, "Split", SUPPORTED_OPS, "splitting a dynamic or unknown dimension")
    n_out = len(outputs)
    if "split" in attrs:
        sizes = _ints(attrs["split"])
    elif len(inputs) > 1 and inputs[1]:
        sizes = _ints(ctx.const(inputs[1], name, "Split split"))
    else:
        n = int(attrs.get("num_outputs", n_out))
        chunk = -(-s1[axis] // n)
        sizes = tuple(min(chunk, s1[axis] - i * chunk) for i in range(n))
    if sum(sizes) != s1[axis] or len(sizes) != n_out or min(sizes) < 0:
        raise ModelError(f"node '{name}' (Split): sizes {sizes} do not split dimension {axis} of size "
                         f"{s1[axis]} into {n_out} outputs")
    ctx.emit(name, "Split", [x], outputs, {"axis": axis, "split": sizes})


_COORD_MODES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn",
                "half_pixel_symmetric")


def _n_resize(ctx, name, inputs, outputs, attrs, upsample=False):
    op = "Upsample" if upsample else "Resize"
    x = inputs[0]
    r = ctx.rank(x, name)
    s1, s2 = ctx.shape1(x), ctx.shape2(x)
    if s1 is None or s2 is None:
        raise ModelError(f"node '{name}' ({op}): the input shape is unknown")
    mode = attrs.get("mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear"):
        raise UnsupportedOpError(name, op, SUPPORTED_OPS, f"mode={mode!r} (nearest and linear are supported)")
    mode = "linear" if mode == "bilinear" else mode
    old = upsample or ctx.opset < 11
    if int(attrs.get("antialias", 0)):
        raise UnsupportedOpError(name, op, SUPPORTED_OPS, "antialias=1")
    if attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise UnsupportedOpError(name, op, SUPPORTED_OPS, f"keep_aspect_ratio_policy={attrs['keep_aspect_ratio_policy']!r}")
    ctm = "asymmetric" if old else attrs.get("coordinate_transformation_mode", "half_pixel")
    if ctm not in _COORD_MODES:
        raise UnsupportedOpError(name, op, SUPPORTED_OPS, f"coordinate_transformation_mode={ctm!r}")
    axes = _ints(attrs["axes"]) if "axes" in attrs else tuple(range(r))
    axes = tuple(a % r for a in axes)
    scales_in = sizes_in = None
    if upsample and "scales" in attrs:
        scales_in = [float(v) for v in attrs["scales"]]
    elif old:
        scales_in = [float(v) for v in ctx.const(inputs[1], name, f"{op} scales").reshape(-1)]
    else:
        if len(inputs) > 2 and inputs[2] and ctx.const(inputs[2], name, "Resize scales").size:
            scales_in = [float(v) for v in ctx.const(inputs[2], name, "Resize scales").reshape(-1)]
        elif len(inputs) > 3 and inputs[3]:
            f = ctx.known.get(inputs[3])
            if f is None:
                raise UnsupportedOpError(name, op, SUPPORTED_OPS, "the output sizes are computed at run time")
            v1, v2 = _ints(f.v1), _ints(f.v2)
            sizes_in = []
            for i, a in enumerate(axes):
                if v1[i] != v2[i]:   # batch-dependent entry: must just keep the input's dimension
                    if not (v1[i] == s1[a] and v2[i] == s2[a]):
                        raise UnsupportedOpError(name, op, SUPPORTED_OPS, "output sizes that scale with the batch")
                    sizes_in.append(0)
                else:
                    sizes_in.append(v1[i])
        else:
            raise ModelError(f"node '{name}' (Resize): neither scales nor sizes given")
    scales, sizes = [1.0] * r, [0] * r
    for i, a in enumerate(axes):
        if scales_in is not None:
            sc = scales_in[i]
            out = int(np.floor(s1[a] * sc)) if sc != 1.0 else 0
        else:
            out = sizes_in[i]
            if out == 0 or out == s1[a]:
                continue
            sc = out / s1[a]
        if sc == 1.0 and not out:
            continue
        if s1[a] != s2[a]:
            raise UnsupportedOpError(name, op, SUPPORTED_OPS, f"resizing the dynamic axis {a}")
        if sc <= 0:
            raise ModelError(f"node '{name}' ({op}): scale {sc} on axis {a} must be positive")
        scales[a], sizes[a] = float(sc), int(out)
    if old:   # Upsample / Resize-10: truncate when enlarging, round up when shrinking (onnxruntime)
        resized = [sc for sc, n in zip(scales, sizes) if n]
        nearest_mode = "ceil" if resized and all(sc < 1 for sc in resized) else "floor"
    else:
        nearest_mode = attrs.get("nearest_mode", "round_prefer_floor")
        if nearest_mode not in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil"):
            raise UnsupportedOpError(name, op, SUPPORTED_OPS, f"nearest_mode={nearest_mode!r}")
    ctx.emit(name, "Resize", [x], outputs[:1], {"mode": mode, "coordinate_transformation_mode": ctm,
                                                "nearest_mode": nearest_mode, "scales": tuple(scales),
                                                "sizes": tuple(sizes)})


def _n_gather(ctx, name, inputs, outputs, attrs):
    r = ctx.rank(inputs[0], name)
    ctx.emit(name, "Gather", inputs[:2], outputs[:1], {"axis": int(attrs.get("axis", 0)) % r})


def _n_qdq(op):
    def f(ctx, name, inputs, outputs, attrs):
        if int(attrs.get("block_size", 0)):
            raise UnsupportedOpError(name, op, SUPPORTED_OPS, "blocked quantization")
        r = ctx.rank(inputs[0], name)
        a = {"axis": int(attrs.get("axis", 1)) % max(r, 1), "saturate": int(attrs.get("saturate", 1))}
        ins = list(inputs[:3])
        if op == "QuantizeLinear" and (len(ins) < 3 or not ins[2]):
            # no zero point: the output type is uint8 or (opset 21) ``output_dtype``; make it explicit
            dt = _np_dtype(int(attrs["output_dtype"])) if int(attrs.get("output_dtype", 0)) else "uint8"
            if dt is None or np.dtype(dt).kind not in "iu":
                raise UnsupportedOpError(name, op, SUPPORTED_OPS, f"output type {attrs.get('output_dtype')}")
            ins = ins[:2] + [ctx.add_const(f"{name}_zero_point", np.zeros((), dtype=dt))]
        ctx.emit(name, op, ins, outputs[:1], a)
    return f


_NORMALIZERS: dict[str, Callable] = {
    "Conv": _n_conv,
    "Gemm": _n_gemm,
    "Clip": _n_clip,
    "HardSigmoid": _n_hard_sigmoid,
    "MaxPool": _n_pool("MaxPool"),
    "AveragePool": _n_pool("AveragePool"),
    "ReduceMean": _n_reduce("ReduceMean"),
    "ReduceSum": _n_reduce("ReduceSum"),
    "ReduceMax": _n_reduce("ReduceMax"),
    "Cast": _n_cast,
    "LeakyRelu": _n_leaky_relu,
    "Expand": _n_expand,
    "Split": _n_split,
    "Resize": _n_resize,
    "Gelu": _n_gelu,
    "Softmax": _n_softmax,
    "Concat": _n_concat,
    "Reshape": _n_reshape,
    "Flatten": _n_flatten,
    "Transpose": _n_transpose,
    "Squeeze": _n_squeeze,
    "Unsqueeze": _n_unsqueeze,
    "BatchNormalization": _n_batchnorm,
    "LayerNormalization": _n_layernorm,
    "Pad": _n_pad,
    "Slice": _n_slice,
    "Gather": _n_gather,
    "QuantizeLinear": _n_qdq("QuantizeLinear"),
    "DequantizeLinear": _n_qdq("DequantizeLinear"),
}
for _op in ("MatMul", "Add", "Sub", "Mul", "Div", "Pow", "Relu", "HardSwish", "Sigmoid", "Tanh", "Erf",
            "Sqrt", "GlobalAveragePool", "GlobalMaxPool", "PRelu", "Neg", "Exp", "Equal", "Where"):
    _NORMALIZERS[_op] = _n_plain(_op)
assert set(_NORMALIZERS) == set(OPS) - {"Identity"}, set(OPS) ^ set(_NORMALIZERS)
_IMPORT_ONLY: dict[str, Callable] = {
    "Max": _n_min_max_as_clip("Max"),
    "Min": _n_min_max_as_clip("Min"),
    "Upsample": lambda ctx, name, inputs, outputs, attrs: _n_resize(ctx, name, inputs, outputs, attrs, upsample=True),
}
"""Deprecated op types imported as a runtime op of another type."""


# --------------------------------------------------------------------------------------
# folding
# --------------------------------------------------------------------------------------
def _fold(node, opset: int, values: list) -> list[np.ndarray]:
    from onnx.reference import ReferenceEvaluator

    feeds = {}
    n = onnx.NodeProto()
    n.CopyFrom(node)
    del n.input[:]
    for i, (t, v) in enumerate(zip(node.input, values)):
        if t == "":
            n.input.append("")
        else:
            key = f"in{i}"
            n.input.append(key)
            feeds[key] = v
    del n.output[:]
    n.output.extend(f"out{i}" if t else "" for i, t in enumerate(node.output))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        g = helper.make_graph([n], "fold", [helper.make_empty_tensor_value_info(k) for k in feeds],
                              [helper.make_empty_tensor_value_info(o) for o in n.output if o])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
        outs = ReferenceEvaluator(m).run(None, feeds)
    return [np.asarray(o) for o in outs]


def _fold_node(ctx: _Ctx, node, name: str, inputs: list[str]) -> bool:
    """Fold ``node`` if its value is known at import. Returns True when folded."""
    op = node.op_type
    if op == "Constant":
        a = _attrs(node)
        if "value" in a:
            v = a["value"]
        elif "value_float" in a:
            v = np.array(a["value_float"], np.float32)
        elif "value_floats" in a:
            v = np.array(a["value_floats"], np.float32)
        elif "value_int" in a:
            v = np.array(a["value_int"], np.int64)
        elif "value_ints" in a:
            v = np.array(a["value_ints"], np.int64)
        else:
            raise UnsupportedOpError(name, op, SUPPORTED_OPS, f"Constant with attribute(s) {sorted(a)}")
        ctx.known[node.output[0]] = _Folded(np.asarray(v))
        return True
    if op in ("Shape", "Size"):
        x = inputs[0]
        s1, s2 = ctx.shape1(x), ctx.shape2(x)
        if s1 is None or s2 is None:
            raise ModelError(f"node '{name}' ({op}): the shape of '{x}' is unknown, cannot fold it")
        if op == "Size":
            ctx.known[node.output[0]] = _Folded(np.array(np.prod(s1), np.int64), np.array(np.prod(s2), np.int64))
            return True
        a = _attrs(node)
        r = len(s1)
        start = int(a.get("start", 0))
        end = a.get("end")
        start = min(max(start + r if start < 0 else start, 0), r)
        end = r if end is None else min(max(int(end) + r if int(end) < 0 else int(end), 0), r)
        v1, v2 = np.array(s1[start:end], np.int64), np.array(s2[start:end], np.int64)
        ctx.known[node.output[0]] = _Folded(v1, None if np.array_equal(v1, v2) else v2)
        return True
    real = [t for t in inputs if t]
    if op in _NO_FOLD or not real or not all(ctx.is_const(t) for t in real):
        return False
    folded = [ctx.known.get(t) for t in inputs]
    try:
        outs1 = _fold(node, ctx.opset, [f.v1 if f is not None else None for f in folded])
        static = all(f is None or f.static for f in folded)
        outs2 = outs1 if static else _fold(node, ctx.opset, [f.v2 if f is not None else None for f in folded])
    except UnsupportedOpError:
        raise
    except Exception as e:
        raise ModelError(f"node '{name}' ({op}): constant folding failed ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:160] if str(e) else ''})") from None
    for t, a, b in zip(node.output, outs1, outs2):
        if t:
            ctx.known[t] = _Folded(a, None if static or (a.shape == b.shape and np.array_equal(a, b)) else b)
    return True


# --------------------------------------------------------------------------------------
# BN folding, cleanup, shapes
# --------------------------------------------------------------------------------------
_BROADCAST_OPS = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Equal", "Where"})


def _uniform_broadcastable(ctx: _Ctx, t: str, users) -> bool:
    """True when the batch-dependent constant ``t`` is one repeated value (e.g. ``zeros_like``)
    whose batch-1 version broadcasts to the same result in every consumer."""
    f = ctx.known[t]
    a, b = f.v1, f.v2
    if a.size == 0 or b.size == 0 or a.ndim != b.ndim:
        return False
    if not (np.all(a == a.reshape(-1)[0]) and np.all(b == a.reshape(-1)[0])):
        return False
    try:
        if np.broadcast_shapes(a.shape, b.shape) != b.shape:
            return False
        for n in users:
            if n.op not in _BROADCAST_OPS:
                return False
            others = [ctx.shape2(u) for u in n.inputs if u and u != t]
            if any(o is None for o in others):
                return False
            if np.broadcast_shapes(a.shape, *others) != np.broadcast_shapes(b.shape, *others):
                return False
    except ValueError:
        return False
    return True


def _fold_batchnorms(nodes: list[Node], consts: dict, outputs: set) -> list[Node]:
    producers = {t: n for n in nodes for t in n.outputs}
    n_consumers: dict[str, int] = {}
    for n in nodes:
        for t in n.inputs:
            n_consumers[t] = n_consumers.get(t, 0) + 1
    replace: dict[str, Node] = {}
    drop: set[str] = set()
    for bn in nodes:
        if bn.op != "BatchNormalization":
            continue
        x = bn.inputs[0]
        p = producers.get(x)
        if p is None or p.op not in ("Conv", "Gemm") or n_consumers.get(x, 0) != 1 or x in outputs:
            continue
        p = replace.get(p.name, p)
        if p.inputs[1] not in consts or (len(p.inputs) > 2 and p.inputs[2] not in consts):
            continue
        if p.op == "Gemm" and (p.attrs.get("transB") != 1 or p.attrs.get("alpha") != 1.0 or p.attrs.get("beta") != 1.0
                              or p.attrs.get("transA")):
            continue
        scale, b, mean, var = (consts[t].astype(np.float64) for t in bn.inputs[1:5])
        W = consts[p.inputs[1]]
        m = W.shape[0]
        if scale.size != m:
            continue
        if len(p.inputs) > 2:
            bias0 = consts[p.inputs[2]].astype(np.float64)
            if bias0.size != m:
                continue
            bias0 = bias0.reshape(m)
        else:
            bias0 = np.zeros(m)
        s = scale.reshape(m) / np.sqrt(var.reshape(m) + bn.attrs.get("epsilon", 1e-5))
        Wf = (W.astype(np.float64) * s.reshape((m,) + (1,) * (W.ndim - 1))).astype(W.dtype)
        bf = ((bias0 - mean.reshape(m)) * s + b.reshape(m)).astype(W.dtype)
        wn, bnm = f"{p.name}_w_bnfold", f"{p.name}_b_bnfold"
        while wn in consts:
            wn += "_"
        while bnm in consts:
            bnm += "_"
        consts[wn], consts[bnm] = Wf, bf
        replace[p.name] = p.replace(inputs=(p.inputs[0], wn, bnm), outputs=bn.outputs,
                                    attrs={**p.attrs, "folded_bn": bn.name})
        drop.add(bn.name)
    return [replace.get(n.name, n) for n in nodes if n.name not in drop]


def _fuse_pad_into_conv(nodes: list[Node], consts: dict, outputs: set) -> list[Node]:
    """``Pad`` (constant 0, spatial axes only, non-negative) whose only consumer is a Conv:
    add its pads to the Conv's explicit pads (how torch exports asymmetric padding)."""
    n_consumers: dict[str, list[Node]] = {}
    for n in nodes:
        for t in n.inputs:
            n_consumers.setdefault(t, []).append(n)
    replace: dict[str, Node] = {}
    drop: set[str] = set()
    for pad in nodes:
        if pad.op != "Pad" or pad.attrs.get("mode") != "constant" or float(pad.attrs.get("value", 0.0)) != 0.0:
            continue
        users = n_consumers.get(pad.outputs[0], [])
        if len(users) != 1 or users[0].op != "Conv" or users[0].inputs[0] != pad.outputs[0] or pad.outputs[0] in outputs:
            continue
        conv = replace.get(users[0].name, users[0])
        pads = pad.attrs["pads"]
        r = len(pads) // 2
        nd = r - 2
        if any(p < 0 for p in pads) or pads[0] or pads[1] or pads[r] or pads[r + 1] or nd != len(conv.attrs["kernel_shape"]):
            continue
        cp = conv.attrs["pads"]
        new = tuple(cp[i] + pads[2 + i] for i in range(nd)) + tuple(cp[nd + i] + pads[r + 2 + i] for i in range(nd))
        replace[conv.name] = conv.replace(inputs=(pad.inputs[0],) + conv.inputs[1:],
                                          attrs={**conv.attrs, "pads": new, "fused_pad": pad.name})
        drop.add(pad.name)
    return [replace.get(n.name, n) for n in nodes if n.name not in drop]


def _dce(nodes: list[Node], outputs) -> list[Node]:
    needed = set(outputs)
    keep = []
    for n in reversed(nodes):
        if any(t in needed for t in n.outputs if t):
            keep.append(n)
            needed.update(t for t in n.inputs if t)
    return keep[::-1]


# --------------------------------------------------------------------------------------
# the entry point
# --------------------------------------------------------------------------------------
def load_model(model, *, name: str | None = None, fixed_dims: dict[str, int] | None = None) -> Graph:
    """Import an ONNX model (path, bytes or ``onnx.ModelProto``) into a :class:`Graph`.

    Parameters
    ----------
    name : graph name (default: the ONNX graph name or the file stem).
    fixed_dims : symbolic input dimension name -> static size, like onnxruntime's free
        dimension overrides. Use it for dynamic dimensions other than the batch (e.g.
        ``{"seq": 128}``) when the model's shape computations cannot be expressed for any
        size; every other dynamic dimension stays dynamic.

    Raises
    ------
    ModelError
        missing file, not an ONNX model, inconsistent graph (one line).
    UnsupportedOpError
        a node whose op type (or attribute combination) hwsim cannot run; names the node,
        its op type and the supported ops.
    """
    proto, default_name = _read(model)
    opset = None
    for imp in proto.opset_import:
        if imp.domain in ("", "ai.onnx"):
            opset = int(imp.version)
    if opset is None:
        raise ModelError(f"{default_name}: the model does not import the default ONNX opset")
    if opset < MIN_OPSET:
        raise ModelError(f"{default_name}: opset {opset} is too old (hwsim supports opset {MIN_OPSET} and newer)")
    if fixed_dims:
        _fix_dims(proto, fixed_dims, default_name)
    if len(proto.functions):
        try:
            from onnx import inliner
            proto = inliner.inline_local_functions(proto)
        except Exception as e:
            raise ModelError(f"{default_name}: cannot inline model-local functions ({type(e).__name__})") from None
    g = proto.graph
    # stale value_info (left by graph-editing tools) would override inference: recompute all
    del g.value_info[:]
    shapes1, dtypes = _infer(proto, 1)
    dynamic = any(not d.HasField("dim_value") or d.dim_value <= 0
                  for vi in g.input if vi.type.HasField("tensor_type") for d in vi.type.tensor_type.shape.dim)
    shapes2 = _infer(proto, 2)[0] if dynamic else dict(shapes1)
    ctx = _Ctx(opset, shapes1, shapes2, dtypes, name or (g.name if default_name == "model" else default_name) or "model")

    init_names = set()
    for init in g.initializer:
        try:
            arr = numpy_helper.to_array(init)
        except Exception as e:
            raise ModelError(f"initializer '{init.name}': cannot read ({type(e).__name__})") from None
        ctx.known[init.name] = _Folded(arr)
        init_names.add(init.name)
        dtypes.setdefault(init.name, arr.dtype.name)
    inputs = []
    for vi in g.input:
        if vi.name in init_names:
            continue
        s = _vi_shape(vi)
        tt = vi.type.tensor_type
        dt = _np_dtype(tt.elem_type) if vi.type.HasField("tensor_type") else None
        if dt is None:
            raise ModelError(f"graph input '{vi.name}': only tensor inputs are supported")
        shape = tuple(None if (d is None or d <= 0) else d for d in s) if s is not None else None
        if shape is None:
            raise ModelError(f"graph input '{vi.name}': its shape (rank) is not declared")
        inputs.append(TensorInfo(vi.name, shape, dt))
        shapes1.setdefault(vi.name, tuple(1 if d is None else d for d in shape))
        shapes2.setdefault(vi.name, tuple(2 if d is None else d for d in shape))
        ctx.tensor_names.add(vi.name)
    ctx.tensor_names.update(init_names)
    for n in g.node:
        ctx.tensor_names.update(t for t in n.output if t)

    alias: dict[str, str] = {}

    def resolve(t: str) -> str:
        while t in alias:
            t = alias[t]
        return t

    ctx.alias = lambda out, inp: alias.__setitem__(out, inp)
    ordered = _toposort(g.node, {i.name for i in inputs} | init_names)
    for node in ordered:
        op = node.op_type
        base = node.name or (f"{op}_{node.output[0]}" if node.output else op)
        name = ctx.unique(base)
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedOpError(name, f"{node.domain}.{op}", SUPPORTED_OPS, "custom domain")
        if op not in SUPPORTED_OPS:
            raise UnsupportedOpError(name, op, SUPPORTED_OPS)
        ins = [resolve(t) if t else "" for t in node.input]
        outs = list(node.output)
        if op in ("Identity", "Dropout"):
            if op == "Dropout" and len(outs) > 1 and outs[1]:
                raise UnsupportedOpError(name, op, SUPPORTED_OPS, "the mask output is used")
            alias[outs[0]] = ins[0]
            continue
        if op == "Cast" and not ctx.is_const(ins[0]):
            to = _np_dtype(int(_attrs(node)["to"]))
            if to is not None and to == dtypes.get(ins[0]):
                alias[outs[0]] = ins[0]
                continue
        if op == "CastLike":
            to = dtypes.get(ins[1]) or (ctx.known[ins[1]].v1.dtype.name if ins[1] in ctx.known else None)
            if to is None:
                raise ModelError(f"node '{name}' (CastLike): the dtype of '{ins[1]}' is unknown")
            if ctx.is_const(ins[0]):
                f = ctx.known[ins[0]]
                ctx.known[outs[0]] = _Folded(f.v1.astype(to), None if f.static else f.v2.astype(to))
            elif to == dtypes.get(ins[0]):
                alias[outs[0]] = ins[0]
            else:
                ctx.emit(name, "Cast", ins[:1], outs[:1], {"to": to})
            continue
        # Shape/Constant/all-constant nodes fold; other ops are normalised
        proxy = node
        if ins != list(node.input):
            proxy = onnx.NodeProto()
            proxy.CopyFrom(node)
            del proxy.input[:]
            proxy.input.extend(ins)
        if _fold_node(ctx, proxy, name, ins):
            continue
        if op in FOLD_ONLY_OPS:
            raise UnsupportedOpError(name, op, SUPPORTED_OPS,
                                     "supported only when its inputs are constants (folded at import)")
        (_NORMALIZERS.get(op) or _IMPORT_ONLY[op])(ctx, name, ins, outs, _attrs(node))

    # graph outputs keep their names
    nodes = ctx.nodes
    graph_outputs = [o.name for o in g.output]
    input_names = {i.name for i in inputs}
    rename: dict[str, str] = {}
    producers = {t: n for n in nodes for t in n.outputs}
    extra: list[Node] = []
    for o in graph_outputs:
        src = resolve(o)
        if src == o and o in producers:
            continue
        if src == o and o in input_names:
            # an input that is also an output: copy it through Identity under a new name is impossible
            # without renaming; keep as is (run_graph returns feeds as values)
            continue
        if (src in producers and src not in graph_outputs and src not in rename
                and src not in input_names):
            rename[src] = o
            continue
        if src in ctx.known and not ctx.known[src].static:
            raise ModelError(f"graph output '{o}' is a shape that depends on the dynamic input dimensions")
        if src in ctx.known and src == o:
            cname = ctx.new_tensor(f"{o}_value")
            ctx.known[cname] = ctx.known[src]
            src = cname
        extra.append(Node(ctx.unique(f"{o}_identity"), "Identity", (src,), (o,), {}))
    if rename:
        nodes = [n.replace(inputs=tuple(rename.get(t, t) for t in n.inputs),
                           outputs=tuple(rename.get(t, t) for t in n.outputs)) for n in nodes]
        extra = [n.replace(inputs=tuple(rename.get(t, t) for t in n.inputs)) for n in extra]
        for old, new in rename.items():
            for d in (shapes1, dtypes):
                if old in d and new not in d:
                    d[new] = d[old]
    nodes = nodes + extra

    used = {t for n in nodes for t in n.inputs if t}
    for t in sorted(used):
        f = ctx.known.get(t)
        if f is not None and not f.static:
            users = [n for n in nodes if t in n.inputs]
            if not _uniform_broadcastable(ctx, t, users):
                raise UnsupportedOpError(users[0].name, users[0].op, SUPPORTED_OPS,
                                         f"input '{t}' is a value computed from the dynamic input dimensions")
            ctx.known[t] = _Folded(f.v1)     # a uniform fill: its batch-1 value broadcasts
    consts = {t: ctx.known[t].v1 for t in used if t in ctx.known}
    nodes = _fold_batchnorms(nodes, consts, set(graph_outputs))
    nodes = _fuse_pad_into_conv(nodes, consts, set(graph_outputs))
    nodes = _dce(nodes, graph_outputs)
    used = {t for n in nodes for t in n.inputs if t}
    consts = {t: v for t, v in consts.items() if t in used}

    graph = Graph(name=ctx.model, inputs=tuple(inputs), outputs=tuple(graph_outputs), nodes=tuple(nodes),
                  constants=consts, shapes={}, dtypes={}, opset=opset,
                  metadata={"producer": proto.producer_name, "producer_version": proto.producer_version,
                            "ir_version": int(proto.ir_version),
                            # input name -> {axis: symbolic name} of the dimensions left dynamic
                            "dynamic_dims": {vi.name: {i: (d.dim_param or "?")
                                                       for i, d in enumerate(vi.type.tensor_type.shape.dim)
                                                       if not d.HasField("dim_value") or d.dim_value <= 0}
                                             for vi in g.input if vi.name in {t.name for t in inputs}},
                            "fixed_dims": dict(fixed_dims or {})})
    return _with_shapes(graph, shapes1, dtypes)


def _with_shapes(graph: Graph, shapes1: dict, dtypes: dict) -> Graph:
    """Fill shapes/dtypes of every tensor (batch 1); run the graph once at batch 1 if any is unknown."""
    shapes: dict[str, tuple] = {}
    dts: dict[str, str] = {}
    names = list(graph.tensors()) + list(graph.constants)
    for t in names:
        if t in graph.constants:
            shapes[t] = tuple(graph.constants[t].shape)
            dts[t] = graph.constants[t].dtype.name
            continue
        if t in shapes1:
            shapes[t] = tuple(int(d) for d in shapes1[t])
        if t in dtypes:
            dts[t] = dtypes[t]
    for i in graph.inputs:
        shapes[i.name] = tuple(1 if d is None else int(d) for d in i.shape)
        dts[i.name] = i.dtype
    missing = [t for t in names if t not in shapes or t not in dts]
    if missing:
        from .float_exec import run_float

        feeds = {i.name: np.ones(shapes[i.name], dtype=i.dtype) for i in graph.inputs}
        try:
            with np.errstate(all="ignore"):
                vals = run_float(graph.replace(shapes=shapes, dtypes=dts), feeds, keep="all")
        except Exception as e:
            raise ModelError(f"graph '{graph.name}': cannot determine tensor shapes ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:160] if str(e) else ''})") from None
        for t in missing:
            if t in vals:
                shapes[t] = tuple(vals[t].shape)
                dts[t] = vals[t].dtype.name
    return graph.replace(shapes=shapes, dtypes=dts)

"""ONNX model builders shared by the tests (no torch needed).

Every builder returns an ``onnx.ModelProto`` with deterministic random weights (a NumPy
``default_rng(seed)``), a dynamic batch dimension named ``"N"`` unless ``batch`` is given,
and float32 tensors. Other test files import these, e.g.::

    from tests.onnx_models import build_mobilenet_like, run_ort
    model = build_mobilenet_like()
    ref = run_ort(model, {"input": x})

Builders
--------
make_model : wrap nodes/initialisers into a model at a given opset.
single_op_model : one node with float inputs (constants given as arrays).
build_mobilenet_like : MobileNetV3/EfficientNet-style CNN (depthwise separable blocks,
    residual adds, ReLU6 / HardSwish, squeeze-excite, global pooling, torch-style
    Shape->Gather->Unsqueeze->Concat->Reshape flatten, Gemm classifier, unfolded BN).
build_efficientnet_like : EfficientNet-style CNN (MBConv with Swish = x * Sigmoid(x),
    squeeze-excite with Sigmoid, 5x5 depthwise, residual adds, unfolded BN).
build_resnet_like : ResNet-style CNN (Conv+BN+Relu, MaxPool, basic blocks with downsample).
build_tf2onnx_style : NHWC input + Transpose, SAME padding, BatchNormalization,
    Identity nodes, ReduceMean, MatMul+Add classifier, Softmax.
build_paddle_style : paddle2onnx-style: Conv+BN, Identity/Dropout, Reshape [0, -1],
    MatMul + Add, Softmax at the old opset 11 semantics.
build_mlp : a small Gemm/Relu classifier.
build_transformer_block : BERT-style encoder layer (MatMul+Add linears, LayerNormalization,
    Softmax attention with an additive mask, GELU spelled out with Erf).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["make_model", "single_op_model", "run_ort", "build_mobilenet_like", "build_efficientnet_like",
           "build_resnet_like",
           "build_tf2onnx_style", "build_paddle_style", "build_mlp", "build_transformer_block", "IR_VERSION"]

IR_VERSION = 8  # onnxruntime accepts ir 8 for every opset we test (13..21 needs ir >= 10 for 21)


def _ir_for(opset: int) -> int:
    if opset >= 21:
        return 10
    if opset >= 19:
        return 9
    return 8


def make_model(nodes, inputs, outputs, initializers=(), opset: int = 13, name: str = "g") -> onnx.ModelProto:
    """Build and check a model. ``inputs``/``outputs``: lists of ValueInfoProto or (name, shape) pairs."""
    def vi(x, out=False):
        if isinstance(x, onnx.ValueInfoProto):
            return x
        n, shape = x[0], x[1]
        et = x[2] if len(x) > 2 else TensorProto.FLOAT
        return helper.make_tensor_value_info(n, et, shape)

    inits = [i if isinstance(i, onnx.TensorProto) else numpy_helper.from_array(np.asarray(i[1]), i[0])
             for i in initializers]
    g = helper.make_graph(list(nodes), name, [vi(i) for i in inputs], [vi(o, True) for o in outputs], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="hwsim-tests")
    m.ir_version = _ir_for(opset)
    if any(not o.type.tensor_type.HasField("shape") for o in m.graph.output):
        inferred = onnx.shape_inference.infer_shapes(m, data_prop=True).graph
        known = {v.name: v for v in list(inferred.value_info) + list(inferred.output)}
        for o in m.graph.output:
            if not o.type.tensor_type.HasField("shape") and o.name in known:
                o.CopyFrom(known[o.name])
            if not o.type.tensor_type.HasField("shape"):   # rank unknown: declare a rank-less shape
                o.type.tensor_type.shape.SetInParent()
    onnx.checker.check_model(m)
    return m


def single_op_model(op: str, input_shapes, consts=None, attrs=None, opset: int = 13, n_outputs: int = 1,
                    input_dtypes=None) -> onnx.ModelProto:
    """One ``op`` node. ``input_shapes`` lists runtime inputs x0, x1, ...; ``consts`` maps an
    input position to an array (an initializer) or ``None`` (omitted input)."""
    consts = consts or {}
    n_in = len(input_shapes) + len(consts)
    names, inputs, inits = [], [], []
    r = 0
    for pos in range(n_in):
        if pos in consts:
            if consts[pos] is None:
                names.append("")
            else:
                names.append(f"c{pos}")
                inits.append((f"c{pos}", np.asarray(consts[pos])))
        else:
            nm = f"x{r}"
            dt = (input_dtypes or {}).get(r, TensorProto.FLOAT)
            inputs.append((nm, list(input_shapes[r]), dt))
            names.append(nm)
            r += 1
    while names and names[-1] == "":
        names.pop()
    outs = [f"y{i}" for i in range(n_outputs)]
    node = helper.make_node(op, names, outs, name=f"{op.lower()}_0", **(attrs or {}))
    return make_model([node], inputs, [(o, None) for o in outs], inits, opset=opset)


def run_ort(model: onnx.ModelProto, feeds: dict) -> dict:
    """Run ``model`` with onnxruntime (CPU, all graph optimisations off) -> {output name: array}."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


# --------------------------------------------------------------------------------------
class _B:
    """Tiny graph builder with deterministic weights."""

    def __init__(self, seed: int, opset: int):
        self.rng = np.random.default_rng(seed)
        self.opset = opset
        self.nodes, self.inits = [], []
        self.n = 0

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, base, arr):
        nm = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), nm))
        return nm

    def node(self, op, inputs, n_out=1, name=None, **attrs):
        nm = name or self.name(op.lower())
        outs = [f"{nm}_out{i}" if i else f"{nm}_out" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=nm, **attrs))
        return outs[0] if n_out == 1 else outs

    def conv(self, x, cin, cout, k=3, stride=1, group=1, pads=None, bias=False, dilation=1, **kw):
        w = (self.rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(2.0 / (cin // group * k * k)))
        ins = [x, self.const("w", w.astype(np.float32))]
        if bias:
            ins.append(self.const("b", (self.rng.standard_normal(cout) * 0.1).astype(np.float32)))
        if pads is None and "auto_pad" not in kw:
            p = dilation * (k // 2)
            pads = [p, p, p, p]
        attrs = dict(kernel_shape=[k, k], strides=[stride, stride], group=group, **kw)
        if pads is not None:
            attrs["pads"] = pads
        if dilation != 1:
            attrs["dilations"] = [dilation, dilation]
        return self.node("Conv", ins, **attrs)

    def bn(self, x, c):
        r = self.rng
        return self.node("BatchNormalization", [
            x, self.const("gamma", (1.0 + 0.1 * r.standard_normal(c)).astype(np.float32)),
            self.const("beta", (0.1 * r.standard_normal(c)).astype(np.float32)),
            self.const("mean", (0.1 * r.standard_normal(c)).astype(np.float32)),
            self.const("var", (1.0 + 0.2 * r.random(c)).astype(np.float32))], epsilon=1e-5)

    def relu6(self, x):
        if self.opset >= 11:
            return self.node("Clip", [x, self.const("min", np.array(0.0, np.float32)),
                                      self.const("max", np.array(6.0, np.float32))])
        return self.node("Clip", [x], min=0.0, max=6.0)

    def hswish(self, x):
        """HardSwish (opset >= 14) or x * HardSigmoid(x) as exporters write it for older opsets."""
        if self.opset >= 14:
            return self.node("HardSwish", [x])
        return self.node("Mul", [x, self.node("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)])

    def torch_flatten(self, x):
        """``x.view(x.size(0), -1)`` as the TorchScript exporter writes it."""
        s = self.node("Shape", [x])
        g = self.node("Gather", [s, self.const("idx0", np.array(0, np.int64))], axis=0)
        u = self.node("Unsqueeze", [g, self.const("ax0", np.array([0], np.int64))]) if self.opset >= 13 \
            else self.node("Unsqueeze", [g], axes=[0])
        c = self.node("Concat", [u, self.const("minus1", np.array([-1], np.int64))], axis=0)
        return self.node("Reshape", [x, c])

    def linear(self, x, k, n, gemm=True):
        w = (self.rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
        b = (0.1 * self.rng.standard_normal(n)).astype(np.float32)
        if gemm:
            return self.node("Gemm", [x, self.const("fc_w", w), self.const("fc_b", b)], transB=1)
        y = self.node("MatMul", [x, self.const("fc_w", np.ascontiguousarray(w.T))])
        return self.node("Add", [y, self.const("fc_b", b)])

    def model(self, inp, out, opset, name, out_shape=None):
        return make_model(self.nodes, [inp], [(out, out_shape)], self.inits, opset=opset, name=name)


def _batch(batch):
    return "N" if batch is None else batch


def build_mobilenet_like(opset: int = 13, batch=None, input_size: int = 32, width: int = 8,
                         num_classes: int = 10, seed: int = 0) -> onnx.ModelProto:
    """MobileNetV3/EfficientNet-style CNN with input ``input`` (N, 3, S, S) and output ``logits``.

    Stem conv 3x3/2 + BN + HardSwish; inverted-residual blocks (1x1 expand + BN + ReLU6,
    depthwise 3x3 + BN + ReLU6 or HardSwish, squeeze-excite GlobalAveragePool -> Conv ->
    Relu -> Conv -> HardSigmoid -> Mul, 1x1 project + BN, residual Add when shapes match);
    head 1x1 conv + HardSwish, GlobalAveragePool, torch-style flatten, Gemm.
    """
    b = _B(seed, opset)
    x = "input"
    c = width
    h = b.hswish(b.bn(b.conv(x, 3, c, 3, stride=2), c))
    # (expand ratio, out channels, stride, se, activation)
    cfg = [(1, width, 1, False, "relu6"), (3, 2 * width, 2, True, "relu6"), (3, 2 * width, 1, True, "hswish"),
           (4, 3 * width, 2, True, "hswish"), (3, 3 * width, 1, False, "relu6")]
    for t, cout, s, se, act in cfg:
        inp = h
        mid = c * t
        y = h
        if t != 1:
            y = b.relu6(b.bn(b.conv(y, c, mid, 1, pads=[0, 0, 0, 0]), mid))
        y = b.bn(b.conv(y, mid, mid, 3, stride=s, group=mid), mid)
        y = b.relu6(y) if act == "relu6" else b.hswish(y)
        if se:
            sq = max(2, mid // 4)
            p = b.node("GlobalAveragePool", [y])
            p = b.node("Relu", [b.conv(p, mid, sq, 1, pads=[0, 0, 0, 0], bias=True)])
            p = b.node("HardSigmoid", [b.conv(p, sq, mid, 1, pads=[0, 0, 0, 0], bias=True)],
                       alpha=1.0 / 6.0, beta=0.5)
            y = b.node("Mul", [y, p])
        y = b.bn(b.conv(y, mid, cout, 1, pads=[0, 0, 0, 0]), cout)
        if s == 1 and cout == c:
            y = b.node("Add", [inp, y])
        h, c = y, cout
    last = 4 * width
    h = b.hswish(b.conv(h, c, last, 1, pads=[0, 0, 0, 0], bias=True))
    h = b.node("GlobalAveragePool", [h])
    h = b.torch_flatten(h)
    b.linear(h, last, num_classes)
    b.nodes[-1].output[0] = "logits"
    return b.model(("input", [_batch(batch), 3, input_size, input_size]), "logits", opset, "mobilenet_like",
                   [_batch(batch), num_classes])


def build_efficientnet_like(opset: int = 13, batch=None, input_size: int = 32, width: int = 8,
                            num_classes: int = 10, seed: int = 6) -> onnx.ModelProto:
    """EfficientNet-B0-style CNN with input ``input`` (N, 3, S, S) and output ``logits``:
    stem conv 3x3/2 + BN + Swish, MBConv blocks (1x1 expand + BN + Swish, depthwise 3x3 or
    5x5 + BN + Swish, SE GlobalAveragePool -> Conv -> Swish -> Conv -> Sigmoid -> Mul,
    1x1 project + BN, residual Add), head 1x1 conv + BN + Swish, GAP, Flatten, Gemm."""
    b = _B(seed, opset)

    def swish(t):
        return b.node("Mul", [t, b.node("Sigmoid", [t])])

    c = width
    h = swish(b.bn(b.conv("input", 3, c, 3, stride=2), c))
    for t, cout, k, s in ((1, width, 3, 1), (4, 2 * width, 5, 2), (4, 2 * width, 3, 1), (4, 3 * width, 5, 2)):
        inp, mid, y = h, c * t, h
        if t != 1:
            y = swish(b.bn(b.conv(y, c, mid, 1, pads=[0, 0, 0, 0]), mid))
        y = swish(b.bn(b.conv(y, mid, mid, k, stride=s, group=mid), mid))
        sq = max(2, c // 4)
        p = b.node("GlobalAveragePool", [y])
        p = swish(b.conv(p, mid, sq, 1, pads=[0, 0, 0, 0], bias=True))
        p = b.node("Sigmoid", [b.conv(p, sq, mid, 1, pads=[0, 0, 0, 0], bias=True)])
        y = b.node("Mul", [y, p])
        y = b.bn(b.conv(y, mid, cout, 1, pads=[0, 0, 0, 0]), cout)
        if s == 1 and cout == c:
            y = b.node("Add", [y, inp])
        h, c = y, cout
    last = 4 * width
    h = swish(b.bn(b.conv(h, c, last, 1, pads=[0, 0, 0, 0]), last))
    h = b.node("Flatten", [b.node("GlobalAveragePool", [h])], axis=1)
    b.linear(h, last, num_classes)
    b.nodes[-1].output[0] = "logits"
    return b.model(("input", [_batch(batch), 3, input_size, input_size]), "logits", opset, "efficientnet_like",
                   [_batch(batch), num_classes])


def build_resnet_like(opset: int = 13, batch=None, input_size: int = 32, width: int = 8,
                      num_classes: int = 10, seed: int = 1) -> onnx.ModelProto:
    """ResNet-style CNN: conv 3x3 + BN + Relu, MaxPool 3x3/2, two basic blocks per stage
    (the second stage downsamples with a 1x1/2 conv + BN shortcut), GAP, Flatten, Gemm."""
    b = _B(seed, opset)
    c = width
    h = b.node("Relu", [b.bn(b.conv("input", 3, c, 3), c)])
    h = b.node("MaxPool", [h], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    for cout, s in ((width, 1), (2 * width, 2)):
        for blk in range(2):
            st = s if blk == 0 else 1
            y = b.node("Relu", [b.bn(b.conv(h, c, cout, 3, stride=st), cout)])
            y = b.bn(b.conv(y, cout, cout, 3), cout)
            sc = h if (st == 1 and c == cout) else b.bn(b.conv(h, c, cout, 1, stride=st, pads=[0, 0, 0, 0]), cout)
            h = b.node("Relu", [b.node("Add", [y, sc])])
            c = cout
    h = b.node("Flatten", [b.node("GlobalAveragePool", [h])], axis=1)
    b.linear(h, c, num_classes)
    b.nodes[-1].output[0] = "logits"
    return b.model(("input", [_batch(batch), 3, input_size, input_size]), "logits", opset, "resnet_like",
                   [_batch(batch), num_classes])


def build_tf2onnx_style(opset: int = 13, batch=None, input_size: int = 16, seed: int = 2) -> onnx.ModelProto:
    """tf2onnx-style: NHWC input, Transpose to NCHW, SAME_UPPER convs, unfolded
    BatchNormalization after a Relu (not foldable) and after a conv, Identity nodes, a conv
    kernel transposed from HWIO by a Transpose node, ReduceMean over H,W, MatMul + Add, Softmax."""
    b = _B(seed, opset)
    x = b.node("Transpose", ["input"], perm=[0, 3, 1, 2])
    x = b.node("Identity", [x])
    y = b.conv(x, 3, 8, 3, stride=2, auto_pad="SAME_UPPER", bias=True)
    y = b.node("Relu", [b.bn(y, 8)])
    y = b.bn(y, 8)                       # BN after Relu: executed, not folded
    y = b.node("Identity", [y])
    y = b.conv(y, 8, 8, 3, group=8, auto_pad="SAME_UPPER", bias=True)
    y = b.node("Relu", [y])
    # a kernel kept in TensorFlow's HWIO layout, transposed to OIHW by a Transpose node
    hwio = (b.rng.standard_normal((1, 1, 8, 8)) / np.sqrt(8)).astype(np.float32)
    y = b.node("Conv", [y, b.node("Transpose", [b.const("hwio", hwio)], perm=[3, 2, 0, 1])], kernel_shape=[1, 1])
    y = b.node("Transpose", [y], perm=[0, 2, 3, 1])
    if opset >= 18:
        y = b.node("ReduceMean", [y, b.const("axes", np.array([1, 2], np.int64))], keepdims=0)
    else:
        y = b.node("ReduceMean", [y], axes=[1, 2], keepdims=0)
    y = b.linear(y, 8, 5, gemm=False)
    y = b.node("Identity", [y])
    b.node("Softmax", [y], axis=-1)
    b.nodes[-1].output[0] = "probs"
    return b.model(("input", [_batch(batch), input_size, input_size, 3]), "probs", opset, "tf2onnx_style",
                   [_batch(batch), 5])


def build_paddle_style(opset: int = 11, batch=None, input_size: int = 16, seed: int = 3) -> onnx.ModelProto:
    """paddle2onnx-style: Conv + BatchNormalization + Relu, Identity, MaxPool, AveragePool
    with ceil_mode, Dropout, Reshape with target [0, -1], MatMul + Add, Softmax (axis=1)."""
    b = _B(seed, opset)
    y = b.node("Relu", [b.bn(b.conv("input", 3, 8, 3, bias=True), 8)])
    y = b.node("Identity", [y])
    y = b.node("MaxPool", [y], kernel_shape=[2, 2], strides=[2, 2])
    y = b.node("Relu", [b.bn(b.conv(y, 8, 16, 3, bias=True), 16)])
    y = b.node("AveragePool", [y], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    if opset >= 12:
        y = b.node("Dropout", [y])
    y = b.node("Reshape", [y, b.const("shape", np.array([0, -1], np.int64))])
    y = b.linear(y, _paddle_feat(input_size), 4, gemm=False)
    b.node("Softmax", [y], axis=1)
    b.nodes[-1].output[0] = "probs"
    return b.model(("input", [_batch(batch), 3, input_size, input_size]), "probs", opset, "paddle_style",
                   [_batch(batch), 4])


def _paddle_feat(s: int) -> int:
    h = s // 2
    o = -(-(h - 3) // 2) + 1
    if (o - 1) * 2 >= h:
        o -= 1
    return 16 * o * o


def build_mlp(opset: int = 13, batch=None, sizes=(16, 32, 10), seed: int = 4) -> onnx.ModelProto:
    """Gemm -> Relu -> Gemm classifier, input ``input`` (N, sizes[0]), output ``logits``."""
    b = _B(seed, opset)
    h = "input"
    for i in range(len(sizes) - 1):
        h = b.linear(h, sizes[i], sizes[i + 1])
        if i < len(sizes) - 2:
            h = b.node("Relu", [h])
    b.nodes[-1].output[0] = "logits"
    return b.model(("input", [_batch(batch), sizes[0]]), "logits", opset, "mlp", [_batch(batch), sizes[-1]])


def build_transformer_block(opset: int = 17, batch=None, seq: int = 8, hidden: int = 16, heads: int = 2,
                            seed: int = 5) -> onnx.ModelProto:
    """One BERT-style encoder layer: inputs ``x`` (N, seq, hidden) and ``mask`` (N, 1, 1, seq)
    additive; output ``y``. Uses LayerNormalization (opset >= 17; spelled out with
    ReduceMean/Sub/Pow/Sqrt/Div below), MatMul with two activations, Softmax, and GELU
    written with Erf."""
    b = _B(seed, opset)
    d = hidden // heads

    def lin(x, k, n):
        return b.linear(x, k, n, gemm=False)

    def heads_view(t):
        r = b.node("Reshape", [t, b.const("shp", np.array([0, 0, heads, d], np.int64))])
        return b.node("Transpose", [r], perm=[0, 2, 1, 3])

    q, k, v = (heads_view(lin("x", hidden, hidden)) for _ in range(3))
    kt = b.node("Transpose", [k], perm=[0, 1, 3, 2])
    s = b.node("MatMul", [q, kt])
    s = b.node("Div", [s, b.const("sqrtd", np.array(np.sqrt(d), np.float32))])
    s = b.node("Add", [s, "mask"])
    p = b.node("Softmax", [s], axis=-1)
    ctx = b.node("MatMul", [p, v])
    ctx = b.node("Transpose", [ctx], perm=[0, 2, 1, 3])
    ctx = b.node("Reshape", [ctx, b.const("shp", np.array([0, 0, hidden], np.int64))])
    a = b.node("Add", [lin(ctx, hidden, hidden), "x"])

    def ln(t):
        gamma = b.const("ln_g", (1 + 0.1 * b.rng.standard_normal(hidden)).astype(np.float32))
        beta = b.const("ln_b", (0.1 * b.rng.standard_normal(hidden)).astype(np.float32))
        if opset >= 17:
            return b.node("LayerNormalization", [t, gamma, beta], axis=-1, epsilon=1e-5)
        # opset < 17: spelled out as the exporters do (ReduceMean, Sub, Pow, Sqrt, Div)
        mean = b.node("ReduceMean", [t], axes=[-1])
        d = b.node("Sub", [t, mean])
        var = b.node("ReduceMean", [b.node("Pow", [d, b.const("two", np.array(2.0, np.float32))])], axes=[-1])
        std = b.node("Sqrt", [b.node("Add", [var, b.const("eps", np.array(1e-5, np.float32))])])
        return b.node("Add", [b.node("Mul", [b.node("Div", [d, std]), gamma]), beta])

    a = ln(a)
    f = lin(a, hidden, 4 * hidden)
    g = b.node("Erf", [b.node("Div", [f, b.const("sqrt2", np.array(np.sqrt(2.0), np.float32))])])
    g = b.node("Mul", [b.node("Mul", [f, b.node("Add", [g, b.const("one", np.array(1.0, np.float32))])]),
                       b.const("half", np.array(0.5, np.float32))])
    o = b.node("Add", [lin(g, 4 * hidden, hidden), a])
    ln(o)
    b.nodes[-1].output[0] = "y"
    return make_model(b.nodes, [("x", [_batch(batch), seq, hidden]), ("mask", [_batch(batch), 1, 1, seq])],
                      [("y", [_batch(batch), seq, hidden])], b.inits, opset=opset, name="transformer_block")

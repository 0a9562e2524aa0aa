"""Every op and attribute combination: hwsim float execution == onnxruntime (<= 1e-4 relative)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from hwsim.float_exec import run_float
from hwsim.onnx_import import load_model
from hwsim.ops import FLOAT_OPS
from hwsim.opset import NORMALISED_ATTRS, OPS, OPTIONAL_ATTRS
from tests.onnx_models import make_model, run_ort, single_op_model

RTOL = 1e-4


def rand(*shape, seed=0, lo=-3.0, hi=3.0):
    return np.random.default_rng(seed).uniform(lo, hi, size=shape).astype(np.float32)


def check(model, feeds, rtol=RTOL):
    g = load_model(model)
    for n in g.nodes:   # executors see only the documented, normalised attributes
        required = set(NORMALISED_ATTRS[n.op])
        assert required <= set(n.attrs) <= required | set(OPTIONAL_ATTRS.get(n.op, ())), (n.op, n.attrs)
    got = run_float(g, feeds)
    ref = run_ort(model, feeds)
    assert set(got) == set(ref)
    for k, r in ref.items():
        assert got[k].shape == r.shape, (k, got[k].shape, r.shape)
        assert got[k].dtype == r.dtype, (k, got[k].dtype, r.dtype)
        scale = max(float(np.abs(r).max()), 1e-30) if r.size else 1.0
        err = float(np.abs(got[k].astype(np.float64) - r).max()) if r.size else 0.0
        assert err <= rtol * scale, f"{k}: max|diff| {err:.3g} > {rtol} * {scale:.3g}"
    return g


def test_registry_matches_opset():
    assert set(FLOAT_OPS) == set(OPS)


# ---- Conv ----------------------------------------------------------------------------
CONV_CASES = [
    # (x shape, w shape, attrs, bias)
    ((2, 3, 9, 9), (4, 3, 3, 3), {}, True),
    ((1, 3, 9, 9), (4, 3, 3, 3), {"pads": [1, 1, 1, 1]}, False),
    ((1, 3, 10, 11), (5, 3, 3, 3), {"pads": [0, 1, 1, 2], "strides": [2, 2]}, True),   # asymmetric (torch)
    ((1, 4, 9, 9), (6, 2, 3, 3), {"group": 2, "pads": [1, 1, 1, 1]}, True),
    ((2, 6, 9, 9), (6, 1, 3, 3), {"group": 6, "pads": [1, 1, 1, 1]}, True),            # depthwise
    ((1, 4, 9, 9), (8, 1, 3, 3), {"group": 4, "pads": [1, 1, 1, 1], "strides": [2, 2]}, False),  # dw multiplier 2
    ((1, 3, 12, 12), (4, 3, 3, 3), {"dilations": [2, 2], "pads": [2, 2, 2, 2]}, True),
    ((1, 6, 12, 12), (6, 1, 3, 3), {"group": 6, "dilations": [2, 3], "strides": [1, 2]}, True),
    ((1, 3, 10, 9), (4, 3, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, True),
    ((1, 3, 10, 9), (4, 3, 4, 4), {"auto_pad": "SAME_LOWER", "strides": [2, 2]}, True),
    ((1, 3, 10, 9), (4, 3, 3, 2), {"auto_pad": "VALID", "strides": [1, 2]}, False),
    ((1, 3, 8, 8), (4, 3, 1, 1), {}, True),
    ((2, 3, 17), (4, 3, 3), {"pads": [1, 2], "strides": [2]}, True),                    # 1-D
    ((1, 4, 16), (4, 1, 5), {"group": 4, "pads": [2, 2], "dilations": [2]}, True),     # 1-D depthwise
]


@pytest.mark.parametrize("xs,ws,attrs,bias", CONV_CASES)
@pytest.mark.parametrize("opset", [13, 19])
def test_conv(xs, ws, attrs, bias, opset):
    consts = {1: rand(*ws, seed=1)}
    if bias:
        consts[2] = rand(ws[0], seed=2)
    check(single_op_model("Conv", [xs], consts, attrs, opset=opset), {"x0": rand(*xs)})


def test_conv_depthwise_flag():
    g = load_model(single_op_model("Conv", [(1, 6, 8, 8)], {1: rand(6, 1, 3, 3)}, {"group": 6}))
    assert g.nodes[0].attrs["depthwise"] is True
    assert g.nodes[0].attrs["pads"] == (0, 0, 0, 0)
    g = load_model(single_op_model("Conv", [(1, 4, 8, 8)], {1: rand(6, 2, 3, 3)}, {"group": 2}))
    assert g.nodes[0].attrs["depthwise"] is False
    g = load_model(single_op_model("Conv", [(1, 3, 10, 9)], {1: rand(4, 3, 3, 3)},
                                   {"auto_pad": "SAME_UPPER", "strides": [2, 2]}))
    assert g.nodes[0].attrs["pads"] == (0, 1, 1, 1)   # extra padding at the end (bottom)
    g = load_model(single_op_model("Conv", [(1, 3, 10, 10)], {1: rand(4, 3, 4, 4)}, {"auto_pad": "SAME_LOWER"}))
    assert g.nodes[0].attrs["pads"] == (2, 2, 1, 1)   # (top, left, bottom, right), extra at the start


# ---- Gemm / MatMul --------------------------------------------------------------------
GEMM_CASES = [
    ({}, (3, 4), (4, 5), (5,)),
    ({"transB": 1}, (3, 4), (5, 4), (5,)),
    ({"transA": 1}, (4, 3), (4, 5), (1, 5)),
    ({"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0}, (4, 3), (5, 4), (3, 5)),
    ({"alpha": 1.5, "beta": 0.25}, (3, 4), (4, 5), ()),
    ({"transB": 1}, (3, 4), (5, 4), None),
]


@pytest.mark.parametrize("attrs,a,b,c", GEMM_CASES)
def test_gemm_const_weight(attrs, a, b, c):
    consts = {1: rand(*b, seed=1)}
    if c is not None:
        consts[2] = rand(*c, seed=2)
    g = check(single_op_model("Gemm", [a], consts, attrs), {"x0": rand(*a)})
    gemm = [n for n in g.nodes if n.op == "Gemm"][0]
    assert gemm.attrs == {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 1}
    assert g.constants[gemm.inputs[1]].shape == (5, 4)      # canonical (N, K)


@pytest.mark.parametrize("attrs", [{}, {"transA": 1, "transB": 1, "alpha": 2.0, "beta": 0.5}])
def test_gemm_two_activations(attrs):
    a, b = ((4, 3), (5, 4)) if attrs else ((3, 4), (4, 5))
    check(single_op_model("Gemm", [a, b, (1, 5)], {}, attrs), {"x0": rand(*a), "x1": rand(*b, seed=1),
                                                                "x2": rand(1, 5, seed=2)})


@pytest.mark.parametrize("a,b", [((3, 4), (4, 5)), ((2, 3, 4), (4, 6)), ((2, 2, 3, 4), (2, 1, 4, 5)), ((4,), (4, 3))])
def test_matmul(a, b):
    check(single_op_model("MatMul", [a, b]), {"x0": rand(*a), "x1": rand(*b, seed=1)})
    check(single_op_model("MatMul", [a], {1: rand(*b, seed=1)}), {"x0": rand(*a)})


# ---- element-wise ---------------------------------------------------------------------
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("sa,sb", [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (4,)), ((2, 1, 4), (3, 1)), ((1, 3, 1, 1), (2, 3, 4, 5))])
def test_binary_broadcast(op, sa, sb):
    b = rand(*sb, seed=1)
    if op == "Div":
        b = np.where(np.abs(b) < 0.5, 0.5, b).astype(np.float32)
    check(single_op_model(op, [sa, sb]), {"x0": rand(*sa), "x1": b})
    check(single_op_model(op, [sa], {1: b}), {"x0": rand(*sa)})


def test_binary_constant_first():
    m = make_model([helper.make_node("Sub", ["c", "x"], ["y"])], [("x", ["N", 3])], [("y", None)],
                   [("c", rand(3, seed=4))])
    check(m, {"x": rand(2, 3)})


@pytest.mark.parametrize("op,attrs,opset", [
    ("Relu", {}, 13), ("Sigmoid", {}, 13), ("Tanh", {}, 13), ("Erf", {}, 13), ("HardSwish", {}, 14),
    ("HardSigmoid", {}, 13), ("HardSigmoid", {"alpha": 1 / 6, "beta": 0.5}, 13), ("Relu", {}, 21),
])
def test_unary(op, attrs, opset):
    check(single_op_model(op, [(2, 3, 5, 7)], attrs=attrs, opset=opset), {"x0": rand(2, 3, 5, 7, lo=-8, hi=8)})


def test_sqrt_pow():
    check(single_op_model("Sqrt", [(3, 5)]), {"x0": rand(3, 5, lo=0.0, hi=9.0)})
    check(single_op_model("Pow", [(3, 5)], {1: np.array(2.0, np.float32)}), {"x0": rand(3, 5)})
    check(single_op_model("Pow", [(3, 5), (5,)]), {"x0": rand(3, 5, lo=0.1, hi=2.0), "x1": rand(5, seed=3)})


@pytest.mark.parametrize("lo,hi", [(0.0, 6.0), (-1.0, None), (None, 2.0), (None, None)])
@pytest.mark.parametrize("opset", [11, 13, 21])
def test_clip_inputs(lo, hi, opset):
    consts = {1: None if lo is None else np.array(lo, np.float32), 2: None if hi is None else np.array(hi, np.float32)}
    check(single_op_model("Clip", [(2, 8)], consts, opset=opset), {"x0": rand(2, 8, lo=-9, hi=9)})


@pytest.mark.parametrize("opset", [7, 10])
def test_clip_attrs_old_opset(opset):
    g = check(single_op_model("Clip", [(2, 8)], attrs={"min": 0.0, "max": 6.0}, opset=opset),
              {"x0": rand(2, 8, lo=-9, hi=9)})
    assert g.nodes[0].attrs == {"min": 0.0, "max": 6.0}


# ---- pooling -----------------------------------------------------------------------------
POOL_CASES = [
    {"kernel_shape": [2, 2], "strides": [2, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 1, 0], "ceil_mode": 1},
    {"kernel_shape": [3, 2], "strides": [1, 2], "pads": [0, 1, 2, 0]},
    {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER", "strides": [2, 2]},
    {"kernel_shape": [2, 2], "auto_pad": "SAME_LOWER", "strides": [1, 1]},
    {"kernel_shape": [3, 3], "auto_pad": "VALID", "strides": [2, 2]},
]


@pytest.mark.parametrize("attrs", POOL_CASES)
@pytest.mark.parametrize("opset", [13, 19])
def test_maxpool(attrs, opset):
    check(single_op_model("MaxPool", [(2, 3, 9, 10)], attrs=attrs, opset=opset), {"x0": rand(2, 3, 9, 10)})


def test_maxpool_dilation_and_1d():
    check(single_op_model("MaxPool", [(1, 2, 11, 11)], attrs={"kernel_shape": [2, 2], "dilations": [2, 2]}),
          {"x0": rand(1, 2, 11, 11)})
    check(single_op_model("MaxPool", [(1, 2, 11)], attrs={"kernel_shape": [3], "strides": [2], "pads": [1, 1]}),
          {"x0": rand(1, 2, 11)})


@pytest.mark.parametrize("attrs", POOL_CASES)
@pytest.mark.parametrize("include", [0, 1])
def test_averagepool(attrs, include):
    a = dict(attrs, count_include_pad=include)
    check(single_op_model("AveragePool", [(2, 3, 9, 10)], attrs=a, opset=19), {"x0": rand(2, 3, 9, 10)})


def test_global_average_pool():
    check(single_op_model("GlobalAveragePool", [(2, 3, 5, 7)]), {"x0": rand(2, 3, 5, 7)})


# ---- reductions / normalisation --------------------------------------------------------
@pytest.mark.parametrize("axes,keepdims", [([1], 1), ([2, 3], 0), ([-1], 1), (None, 0), (None, 1)])
@pytest.mark.parametrize("opset", [13, 18])
def test_reduce_mean(axes, keepdims, opset):
    if opset >= 18:
        consts = {} if axes is None else {1: np.array(axes, np.int64)}
        m = single_op_model("ReduceMean", [(2, 3, 4, 5)], consts, {"keepdims": keepdims}, opset=opset)
    else:
        attrs = {"keepdims": keepdims} | ({} if axes is None else {"axes": axes})
        m = single_op_model("ReduceMean", [(2, 3, 4, 5)], {}, attrs, opset=opset)
    check(m, {"x0": rand(2, 3, 4, 5)})


@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1])
@pytest.mark.parametrize("opset", [11, 13])
def test_softmax_axis_semantics(axis, opset):
    attrs = {} if axis is None else {"axis": axis}
    check(single_op_model("Softmax", [(2, 3, 4)], attrs=attrs, opset=opset), {"x0": rand(2, 3, 4)})


def test_softmax_old_opset_is_joint_over_trailing_axes():
    g = load_model(single_op_model("Softmax", [(2, 3, 4)], attrs={"axis": 1}, opset=11))
    assert g.nodes[0].attrs["axes"] == (1, 2)
    g = load_model(single_op_model("Softmax", [(2, 3, 4)], attrs={"axis": 1}, opset=13))
    assert g.nodes[0].attrs["axes"] == (1,)


def test_batchnorm_executed():
    c = 3
    consts = {1: rand(c, seed=1), 2: rand(c, seed=2), 3: rand(c, seed=3), 4: rand(c, seed=4, lo=0.5, hi=2)}
    g = check(single_op_model("BatchNormalization", [(2, c, 4, 5)], consts, {"epsilon": 1e-3}), {"x0": rand(2, c, 4, 5)})
    assert [n.op for n in g.nodes] == ["BatchNormalization"]
    check(single_op_model("BatchNormalization", [(2, c)], consts, opset=15), {"x0": rand(2, c)})


@pytest.mark.parametrize("axis", [-1, 1, 2])
def test_layernorm(axis):
    shape = (2, 3, 4)
    norm = shape[axis:] if axis >= 0 else shape[axis:]
    consts = {1: rand(*norm, seed=1), 2: rand(*norm, seed=2)}
    check(single_op_model("LayerNormalization", [shape], consts, {"axis": axis, "epsilon": 1e-5}, opset=17),
          {"x0": rand(*shape)})


# ---- data movement -----------------------------------------------------------------------
@pytest.mark.parametrize("shape,allowzero", [((0, -1), 0), ((2, 0, -1), 0), ((-1,), 0), ((3, 2, 4, 5), 1), ((4, 0, 15), 0)])
def test_reshape(shape, allowzero):
    opset = 14 if allowzero else 13
    attrs = {"allowzero": allowzero} if allowzero else {}
    xs = (2, 3, 4, 5) if shape != (4, 0, 15) else (2, 2, 15)
    if shape == (4, 0, 15):
        shape, xs = (1, 0, 15, 4), (2, 2, 15, 2)
    check(single_op_model("Reshape", [xs], {1: np.array(shape, np.int64)}, attrs, opset=opset), {"x0": rand(*xs)})


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_flatten(axis):
    check(single_op_model("Flatten", [(2, 3, 4, 5)], attrs={"axis": axis}), {"x0": rand(2, 3, 4, 5)})


@pytest.mark.parametrize("perm", [None, [0, 2, 3, 1], [0, 3, 1, 2], [3, 2, 0, 1]])
def test_transpose(perm):
    attrs = {} if perm is None else {"perm": perm}
    check(single_op_model("Transpose", [(2, 3, 4, 5)], attrs=attrs), {"x0": rand(2, 3, 4, 5)})


@pytest.mark.parametrize("opset", [11, 13, 21])
def test_squeeze_unsqueeze(opset):
    if opset >= 13:
        sq = single_op_model("Squeeze", [(2, 1, 4, 1)], {1: np.array([1, -1], np.int64)}, opset=opset)
        un = single_op_model("Unsqueeze", [(2, 4)], {1: np.array([0, -1], np.int64)}, opset=opset)
    else:
        sq = single_op_model("Squeeze", [(2, 1, 4, 1)], attrs={"axes": [1, -1]}, opset=opset)
        un = single_op_model("Unsqueeze", [(2, 4)], attrs={"axes": [0, -1]}, opset=opset)
    check(sq, {"x0": rand(2, 1, 4, 1)})
    check(un, {"x0": rand(2, 4)})
    check(single_op_model("Squeeze", [(1, 3, 1, 4)], opset=opset), {"x0": rand(1, 3, 1, 4)})


def test_squeeze_without_axes_keeps_dynamic_batch():
    m = make_model([helper.make_node("Squeeze", ["x"], ["y"])], [("x", ["N", 3, 1, 1])], [("y", None)])
    g = load_model(m)
    assert g.nodes[0].attrs["axes"] == (2, 3)
    assert run_float(g, {"x": rand(4, 3, 1, 1)})["y"].shape == (4, 3)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat(axis):
    shapes = [(2, 3, 4), (2, 3, 4), (2, 3, 4)]
    check(single_op_model("Concat", shapes, attrs={"axis": axis}), {f"x{i}": rand(*s, seed=i) for i, s in enumerate(shapes)})
    check(single_op_model("Concat", shapes[:2], {2: rand(2, 3, 4, seed=9)}, attrs={"axis": axis}),
          {"x0": rand(2, 3, 4), "x1": rand(2, 3, 4, seed=1)})


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("opset", [11, 13, 18, 19])
def test_pad(mode, opset):
    pads = np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)
    consts = {1: pads}
    if mode == "constant":
        consts[2] = np.array(1.5, np.float32)
    check(single_op_model("Pad", [(2, 3, 4, 5)], consts, {"mode": mode}, opset=opset), {"x0": rand(2, 3, 4, 5)})


def test_pad_axes_and_negative_and_old_opset():
    check(single_op_model("Pad", [(2, 3, 4, 5)], {1: np.array([1, -1, 2, 1], np.int64), 2: None,
                                                    3: np.array([2, 3], np.int64)}, opset=18), {"x0": rand(2, 3, 4, 5)})
    check(single_op_model("Pad", [(2, 3, 4, 5)], attrs={"pads": [0, 0, 1, 1, 0, 0, 1, 1], "value": 2.0}, opset=9),
          {"x0": rand(2, 3, 4, 5)})
    check(single_op_model("Pad", [(2, 3, 4, 5)], {1: np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)},
                          {"mode": "wrap"}, opset=19), {"x0": rand(2, 3, 4, 5)})


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([1], [3], [1], None), ([0, 1], [-1, 1000], [2, 3], None), ([3], [0], [1], [-1]), ([-1], [-1000], [3], [-2]),
    ([0, 0], [2, 4], None, [1, 2]),
])
def test_slice(starts, ends, axes, steps):
    consts = {1: np.array(starts, np.int64), 2: np.array(ends, np.int64)}
    if axes is not None:
        consts[3] = np.array(axes, np.int64)
    if steps is not None:
        if axes is None:
            consts[3] = np.arange(len(starts), dtype=np.int64)
        consts[4] = np.array(steps, np.int64)
    check(single_op_model("Slice", [(2, 4, 5, 6)], consts), {"x0": rand(2, 4, 5, 6)})


def test_gather_constant_table_and_runtime_indices():
    table = rand(10, 4)
    m = make_model([helper.make_node("Gather", ["table", "ids"], ["y"], axis=0)],
                   [("ids", ["N", 3], TensorProto.INT64)], [("y", None)], [("table", table)])
    check(m, {"ids": np.array([[1, 2, -1], [0, 9, 3]], np.int64)})
    check(single_op_model("Gather", [(2, 5, 3)], {1: np.array([4, 0, -2], np.int64)}, {"axis": 1}),
          {"x0": rand(2, 5, 3)})


def test_quantize_dequantize_linear():
    m = make_model([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
                    helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])],
                   [("x", ["N", 6])], [("q", None, TensorProto.INT8), ("y", None)],
                   [("s", np.array(0.05, np.float32)), ("z", np.array(3, np.int8))])
    check(m, {"x": rand(4, 6, lo=-8, hi=8)})
    m = make_model([helper.make_node("DequantizeLinear", ["w", "s", "z"], ["wf"], axis=0),
                    helper.make_node("MatMul", ["x", "wf"], ["y"])],
                   [("x", ["N", 4])], [("y", None)],
                   [("w", np.arange(-6, 6, dtype=np.int8).reshape(4, 3)), ("s", np.array([0.1, 0.2, 0.3, 0.4], np.float32)),
                    ("z", np.zeros(4, np.int8))])
    g = check(m, {"x": rand(2, 4)})
    assert [n.op for n in g.nodes] == ["DequantizeLinear", "MatMul"]   # Q/DQ never folded


# ---- further ops (CNN activations, masks, reductions) ---------------------------------------
def test_leaky_relu_prelu_neg_exp():
    check(single_op_model("LeakyRelu", [(2, 3, 4)], attrs={"alpha": 0.2}), {"x0": rand(2, 3, 4)})
    check(single_op_model("LeakyRelu", [(2, 3, 4)]), {"x0": rand(2, 3, 4)})
    check(single_op_model("PRelu", [(2, 3, 4, 4)], {1: rand(3, 1, 1, seed=1)}), {"x0": rand(2, 3, 4, 4)})
    check(single_op_model("PRelu", [(2, 3, 4, 4), (4,)]), {"x0": rand(2, 3, 4, 4), "x1": rand(4, seed=1)})
    check(single_op_model("Neg", [(2, 5)]), {"x0": rand(2, 5)})
    check(single_op_model("Exp", [(2, 5)]), {"x0": rand(2, 5)})


def test_global_max_pool():
    check(single_op_model("GlobalMaxPool", [(2, 3, 5, 7)]), {"x0": rand(2, 3, 5, 7)})


@pytest.mark.parametrize("op,opset", [("ReduceSum", 11), ("ReduceSum", 13), ("ReduceMax", 13), ("ReduceMax", 18)])
@pytest.mark.parametrize("axes,keepdims", [([1], 1), ([-1, 2], 0), (None, 1)])
def test_reduce_sum_max(op, opset, axes, keepdims):
    axes_as_input = (op == "ReduceSum" and opset >= 13) or opset >= 18
    if axes_as_input:
        consts = {} if axes is None else {1: np.array(axes, np.int64)}
        m = single_op_model(op, [(2, 3, 4, 5)], consts, {"keepdims": keepdims}, opset=opset)
    else:
        m = single_op_model(op, [(2, 3, 4, 5)], {}, {"keepdims": keepdims} | ({} if axes is None else {"axes": axes}),
                            opset=opset)
    check(m, {"x0": rand(2, 3, 4, 5)})


def test_mask_ops_cast_equal_where_expand():
    nodes = [helper.make_node("Cast", ["mask"], ["mf"], to=TensorProto.FLOAT),
             helper.make_node("Sub", ["one", "mf"], ["inv"]),
             helper.make_node("Mul", ["inv", "big"], ["add"]),
             helper.make_node("Equal", ["mask", "zero"], ["is_pad"]),
             helper.make_node("Where", ["is_pad", "ninf", "x"], ["w"]),
             helper.make_node("Add", ["w", "add"], ["s"]),
             helper.make_node("Expand", ["bias", "shp"], ["e"]),
             helper.make_node("Add", ["s", "e"], ["y"])]
    inits = [("one", np.array(1.0, np.float32)), ("big", np.array(-1e4, np.float32)), ("zero", np.array(0, np.int64)),
             ("ninf", np.array(-5.0, np.float32)), ("bias", rand(1, 6, seed=3)), ("shp", np.array([3, 1], np.int64))]
    m = make_model(nodes, [("x", [3, 6]), ("mask", [3, 6], TensorProto.INT64)], [("y", [3, 6])], inits)
    mask = np.ones((3, 6), np.int64)
    mask[2, 4:] = 0
    check(m, {"x": rand(3, 6), "mask": mask})


@pytest.mark.parametrize("to", [TensorProto.INT32, TensorProto.INT64, TensorProto.BOOL, TensorProto.DOUBLE])
def test_cast(to):
    m = make_model([helper.make_node("Cast", ["x"], ["y"], to=to)], [("x", ["N", 7])], [("y", ["N", 7], to)])
    check(m, {"x": rand(2, 7, lo=-4, hi=4)})


@pytest.mark.parametrize("opset,how", [(11, "attr"), (13, "input"), (13, "equal"), (18, "num_outputs")])
def test_split(opset, how):
    if how == "attr":
        node = helper.make_node("Split", ["x"], ["a", "b", "c"], axis=1, split=[1, 2, 3])
        inits = []
    elif how == "input":
        node = helper.make_node("Split", ["x", "s"], ["a", "b", "c"], axis=-1)
        inits = [("s", np.array([2, 2, 1], np.int64))]
    elif how == "equal":
        node = helper.make_node("Split", ["x"], ["a", "b", "c"], axis=1)
        inits = []
    else:
        node = helper.make_node("Split", ["x"], ["a", "b", "c"], axis=1, num_outputs=3)
        inits = []
    c = 7 if how == "num_outputs" else 6                  # opset 18: the last chunk may be smaller
    m = make_model([node], [("x", ["N", c, 5])], [("a", None), ("b", None), ("c", None)], inits, opset=opset)
    g = check(m, {"x": rand(2, c, 5)})
    assert g.nodes[0].op == "Split" and sum(g.nodes[0].attrs["split"]) == g.shapes["x"][g.nodes[0].attrs["axis"]]


# ---- Resize / Upsample ----------------------------------------------------------------------
RESIZE_CTM = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn"]


RESIZE_MODES = [(ctm, mode, nm) for ctm in RESIZE_CTM
                for mode, nm in [("nearest", "round_prefer_floor"), ("nearest", "round_prefer_ceil"),
                                 ("nearest", "floor"), ("nearest", "ceil"), ("linear", None)]
                if not (ctm == "tf_half_pixel_for_nn" and mode == "linear")]   # a nearest-neighbour mode


@pytest.mark.parametrize("ctm,mode,nearest_mode", RESIZE_MODES)
@pytest.mark.parametrize("scales", [(1, 1, 2.0, 2.0), (1, 1, 0.5, 0.75), (1, 1, 1.5, 3.0)])
def test_resize_scales(ctm, mode, nearest_mode, scales):
    attrs = {"mode": mode, "coordinate_transformation_mode": ctm}
    if nearest_mode:
        attrs["nearest_mode"] = nearest_mode
    m = single_op_model("Resize", [(2, 3, 6, 8)], {1: np.array([], np.float32), 2: np.array(scales, np.float32)},
                        attrs, opset=13)
    check(m, {"x0": rand(2, 3, 6, 8)})


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("sizes,opset", [((2, 3, 12, 5), 13), ((2, 3, 3, 16), 11), ((2, 3, 7, 9), 19)])
def test_resize_sizes(mode, sizes, opset):
    empty = np.array([], np.float32)    # opset 11/12: roi and scales must be given (empty)
    m = single_op_model("Resize", [(2, 3, 6, 8)], {1: empty, 2: empty, 3: np.array(sizes, np.int64)},
                        {"mode": mode, "coordinate_transformation_mode": "half_pixel"}, opset=opset)
    check(m, {"x0": rand(2, 3, 6, 8)})


def test_resize_axes_and_half_pixel_symmetric():
    m = single_op_model("Resize", [(2, 3, 6, 8)], {1: None, 2: np.array([1.5, 2.0], np.float32)},
                        {"mode": "linear", "axes": [2, 3], "coordinate_transformation_mode": "half_pixel_symmetric"},
                        opset=19)
    check(m, {"x0": rand(2, 3, 6, 8)})


def test_resize_sizes_from_dynamic_batch_shape_chain():
    """F.interpolate(x, size=(12, 16)) as TorchScript writes it: sizes = Concat(Shape(x)[:2], [12, 16])."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Slice", ["s", "z", "two"], ["nc"]),
             helper.make_node("Concat", ["nc", "hw"], ["sizes"], axis=0),
             helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest",
                              coordinate_transformation_mode="asymmetric", nearest_mode="floor")]
    inits = [("z", np.array([0], np.int64)), ("two", np.array([2], np.int64)), ("hw", np.array([12, 16], np.int64))]
    m = make_model(nodes, [("x", ["N", 3, 6, 8])], [("y", None)], inits)
    g = load_model(m)
    assert [n.op for n in g.nodes] == ["Resize"] and g.nodes[0].attrs["sizes"] == (0, 0, 12, 16)
    for b in (1, 3):
        x = {"x": rand(b, 3, 6, 8)}
        ref = run_ort(m, x)["y"]
        assert np.array_equal(run_float(g, x)["y"], ref)


@pytest.mark.parametrize("opset,mode,scales", [(7, "nearest", [1.0, 1.0, 2.0, 2.0]), (7, "linear", [1, 1, 2, 1.5]),
                                               (9, "nearest", [1, 1, 3, 2]), (9, "linear", [1, 1, 2, 2]),
                                               (10, "nearest", [1, 1, 2, 3]), (10, "linear", [1, 1, 0.5, 0.5])])
def test_upsample_and_resize10(opset, mode, scales):
    if opset == 7:
        m = single_op_model("Upsample", [(1, 2, 4, 6)], attrs={"mode": mode, "scales": scales}, opset=7)
    elif opset == 9:
        m = single_op_model("Upsample", [(1, 2, 4, 6)], {1: np.array(scales, np.float32)}, {"mode": mode}, opset=9)
    else:
        m = single_op_model("Resize", [(1, 2, 4, 6)], {1: np.array(scales, np.float32)}, {"mode": mode}, opset=10)
    g = check(m, {"x0": rand(1, 2, 4, 6)})
    assert g.nodes[0].op == "Resize"


def test_resize_unsupported_modes_fail_at_import():
    from hwsim.errors import UnsupportedOpError
    m = single_op_model("Resize", [(1, 2, 4, 6)], {1: None, 2: np.array([1, 1, 2, 2], np.float32)}, {"mode": "cubic"})
    with pytest.raises(UnsupportedOpError, match="mode='cubic'"):
        load_model(m)


@pytest.mark.parametrize("approximate", [None, "none", "tanh"])
def test_gelu(approximate):
    attrs = {} if approximate is None else {"approximate": approximate}
    check(single_op_model("Gelu", [(3, 17)], attrs=attrs, opset=20), {"x0": rand(3, 17, lo=-6, hi=6)})


def test_relu6_written_with_max_min_becomes_clip():
    nodes = [helper.make_node("Max", ["x", "zero"], ["a"]), helper.make_node("Min", ["six", "a"], ["y"])]
    m = make_model(nodes, [("x", ["N", 5])], [("y", None)],
                   [("zero", np.array(0.0, np.float32)), ("six", np.array([6.0], np.float32))])
    g = check(m, {"x": rand(2, 5, lo=-9, hi=9)})
    assert [(n.op, n.attrs["min"], n.attrs["max"]) for n in g.nodes] == [("Clip", 0.0, np.inf), ("Clip", -np.inf, 6.0)]
    from hwsim.errors import UnsupportedOpError
    m = make_model([helper.make_node("Max", ["x", "x2"], ["y"], name="mx")], [("x", ["N", 5]), ("x2", ["N", 5])],
                   [("y", None)])
    with pytest.raises(UnsupportedOpError, match="node 'mx'"):
        load_model(m)


def test_quantize_linear_output_dtype_opset21():
    m = make_model([helper.make_node("QuantizeLinear", ["x", "s"], ["q"], output_dtype=TensorProto.INT8)],
                   [("x", ["N", 6])], [("q", None, TensorProto.INT8)], [("s", np.array(0.05, np.float32))], opset=21)
    g = check(m, {"x": rand(3, 6, lo=-9, hi=9)})
    assert g.constants[g.nodes[0].inputs[2]].dtype == np.int8
    m = single_op_model("QuantizeLinear", [(2, 6)], {1: np.array(0.1, np.float32)}, opset=13)
    m.graph.output[0].type.tensor_type.elem_type = TensorProto.UINT8
    check(m, {"x0": rand(2, 6)})

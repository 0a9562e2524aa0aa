"""Property tests: random Conv / pooling attribute combinations, hwsim float == onnxruntime."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from hwsim.float_exec import run_float
from hwsim.onnx_import import load_model
from tests.onnx_models import run_ort, single_op_model

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _close(model, x):
    g = load_model(model)
    got = run_float(g, {"x0": x})["y0"]
    ref = run_ort(model, {"x0": x})["y0"]
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-4 * max(np.abs(ref).max(), 1e-6)
    return g


@st.composite
def conv_case(draw):
    kind = draw(st.sampled_from(["dense", "grouped", "depthwise"]))
    cin = draw(st.integers(1, 4)) * (1 if kind == "dense" else 2)
    group = {"dense": 1, "grouped": 2, "depthwise": cin}[kind]
    mult = draw(st.integers(1, 2))
    cout = group * mult if kind != "dense" else draw(st.integers(1, 5))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    h = draw(st.integers((kh - 1) * dh + 1, 12))
    w = draw(st.integers((kw - 1) * dw + 1, 12))
    attrs = {"strides": [sh, sw], "dilations": [dh, dw], "group": group}
    auto = draw(st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    if auto == "NOTSET":
        attrs["pads"] = [draw(st.integers(0, k - 1)) for k in (kh, kw, kh, kw)]
    else:
        attrs["auto_pad"] = auto
        if auto.startswith("SAME"):          # onnxruntime rejects dilation with SAME padding
            attrs["dilations"] = [1, 1]
    bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return (1 + seed % 2, cin, h, w), (cout, cin // group, kh, kw), attrs, bias, seed


@SETTINGS
@given(conv_case())
def test_conv_random_attributes(case):
    xs, ws, attrs, bias, seed = case
    rng = np.random.default_rng(seed)
    consts = {1: rng.standard_normal(ws).astype(np.float32)}
    if bias:
        consts[2] = rng.standard_normal(ws[0]).astype(np.float32)
    g = _close(single_op_model("Conv", [xs], consts, attrs, opset=17), rng.standard_normal(xs).astype(np.float32))
    n = g.nodes[0]
    assert n.attrs["depthwise"] == (attrs["group"] == xs[1] > 1 and ws[1] == 1)


@st.composite
def pool_case(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(kh, 11)), draw(st.integers(kw, 11))
    attrs = {"kernel_shape": [kh, kw], "strides": [sh, sw], "ceil_mode": int(draw(st.booleans()))}
    auto = draw(st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER", "VALID"]))
    if auto == "NOTSET":
        attrs["pads"] = [draw(st.integers(0, k - 1)) for k in (kh, kw, kh, kw)]
    else:
        attrs["auto_pad"] = auto
        attrs["ceil_mode"] = 0
        if auto == "SAME_UPPER":   # onnxruntime rejects a negative SAME padding (kernel < stride)
            for size, k, s in ((h, kh, sh), (w, kw, sw)):
                assume((-(-size // s) - 1) * s + k - size >= 0)
    return (1, 2, h, w), attrs, draw(st.integers(0, 2**16))


@SETTINGS
@given(pool_case(), st.sampled_from(["MaxPool", "AveragePool0", "AveragePool1"]))
def test_pool_random_attributes(case, op):
    xs, attrs, seed = case
    if op.startswith("AveragePool"):
        attrs = dict(attrs, count_include_pad=int(op[-1]))
        op = "AveragePool"
    x = np.random.default_rng(seed).standard_normal(xs).astype(np.float32)
    _close(single_op_model(op, [xs], attrs=attrs, opset=19), x)

"""The ``onnx_reference`` scheme against onnx's own reference evaluator (onnx.reference):
QLinearMatMul and QLinearConv, 0 mismatches, random and power-of-two scales, extreme inputs.

What the evaluator (onnx 1.23) computes, found by these tests: the multiplier is the float32
chain ``f32(f32(sx*sw)/sy)`` of its float32 scale tensors (not a float64 ratio), the product
``double(acc) * m`` is float64, and the zero point is added *before* round-half-to-even
(an odd zero point moves the ties of power-of-two scales).
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as oh
from onnx.reference import ReferenceEvaluator

from hwsim.bits import IntFormat
from hwsim.kernels import ConvParams, GemmParams, RequantParams, qconv2d, qgemm

_TP = {np.dtype(np.uint8): TP.UINT8, np.dtype(np.int8): TP.INT8}


def _scale(rng, pow2, lo=-9, hi=-3):
    return np.float32(2.0 ** rng.integers(lo, hi + 1)) if pow2 else np.float32(np.exp2(rng.uniform(lo, hi)))


def _acts(rng, shape, dt, extreme):
    info = np.iinfo(dt)
    if extreme:
        return rng.choice(np.array([info.min, info.max], dt), size=shape)
    return rng.integers(info.min, int(info.max) + 1, size=shape).astype(dt)


def _evaluator(op, x, w, attrs=None):
    names = ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy"]
    node = oh.make_node(op, names, ["y"], **(attrs or {}))
    g = oh.make_graph([node], "g", [oh.make_tensor_value_info(n, TP.UNDEFINED, None) for n in names],
                      [oh.make_tensor_value_info("y", _TP[x.dtype], None)])
    return ReferenceEvaluator(oh.make_model(g, opset_imports=[oh.make_opsetid("", 21)]))


def _out_scale(rng, sx, sw, k, pow2):
    sy = np.float32(sx * sw * 64.0 * np.sqrt(k) / rng.uniform(8, 40))
    return np.float32(2.0 ** np.floor(np.log2(sy))) if pow2 else sy


@pytest.mark.parametrize("xdt", [np.uint8, np.int8])
def test_qlinearmatmul_matches_onnx_reference(xdt):
    rng = np.random.default_rng(7)
    compared = mismatches = 0
    for case in range(40):
        pow2, extreme = case % 2 == 0, case % 5 == 0
        m, k, n = int(rng.integers(64, 320)), int(rng.integers(8, 160)), int(rng.integers(32, 160))
        x = _acts(rng, (m, k), xdt, extreme)
        w = _acts(rng, (k, n), np.int8, extreme)
        sx, sw = _scale(rng, pow2), _scale(rng, pow2, -8, -4)
        zx = xdt(0) if xdt is np.int8 else xdt(rng.integers(0, 256))
        zw = np.int8(0)
        sy = _out_scale(rng, sx, sw, k, pow2)
        zy = xdt(rng.integers(np.iinfo(xdt).min, np.iinfo(xdt).max + 1))
        want = _evaluator("QLinearMatMul", x, w).run(None, {"x": x, "sx": sx, "zx": zx, "w": w, "sw": sw, "zw": zw,
                                                            "sy": sy, "zy": zy})[0]
        fmt = IntFormat(8, signed=xdt is np.int8)
        rp = RequantParams.create("onnx_reference", float(sx), [float(sw)], float(sy), fmt, int(zy))
        got, _ = qgemm(x, w, None, GemmParams(x_zero_point=int(zx), w_zero_point=0, requant=rp))
        compared += want.size
        mismatches += int(np.count_nonzero(got != want))
    print(f"onnx.reference QLinearMatMul {np.dtype(xdt).name}: {compared} outputs, {mismatches} mismatches")
    assert compared > 500_000 and mismatches == 0     # > 10^6 for the scheme over both dtypes


def test_qlinearconv_matches_onnx_reference():
    rng = np.random.default_rng(11)
    compared = mismatches = 0
    for case in range(12):
        pow2, extreme = case % 2 == 0, case % 4 == 1
        c, cout, hw, kk = int(rng.integers(2, 9)), int(rng.integers(2, 9)), int(rng.integers(6, 15)), 3
        group = c if case % 3 == 0 else 1
        cout = c if group > 1 else cout
        x = _acts(rng, (1, c, hw, hw), np.uint8, extreme)
        w = _acts(rng, (cout, c // group, kk, kk), np.int8, extreme)
        sx = _scale(rng, pow2)
        sw = np.array([_scale(rng, pow2, -8, -4) for _ in range(cout)], np.float32)
        zx, zw = np.uint8(rng.integers(0, 256)), np.zeros(cout, np.int8)
        sy = _out_scale(rng, sx, float(np.median(sw)), c // group * 9, pow2)
        zy = np.uint8(rng.integers(0, 256))
        attrs = {"pads": [1, 0, 1, 2], "strides": [1, 2], "group": group}
        want = _evaluator("QLinearConv", x, w, attrs).run(None, {"x": x, "sx": sx, "zx": zx, "w": w, "sw": sw,
                                                                 "zw": zw, "sy": sy, "zy": zy})[0]
        rp = RequantParams.create("onnx_reference", float(sx), sw, float(sy), IntFormat(8, signed=False), int(zy))
        p = ConvParams(strides=(1, 2), pads=(1, 0, 1, 2), groups=group, x_zero_point=int(zx), w_zero_point=0,
                       requant=rp)
        got, _ = qconv2d(x, w, None, p)
        compared += want.size
        mismatches += int(np.count_nonzero(got != want))
    print(f"onnx.reference QLinearConv: {compared} outputs, {mismatches} mismatches")
    assert compared > 2_000 and mismatches == 0

"""ONNX Runtime com.microsoft QLinearAdd / QLinearMul vs hwsim.kernels.elementwise: 0 mismatches.

ORT on x86-64 runs QLinearAdd through MLAS's AVX2 kernel (float32 FMAs on the raw inputs with
a precomputed fixed part) and QLinearMul through MLAS's SSE2 kernel (exact int32 product, one
float32 multiply and add); both round half to even and saturate. The broadcast patterns
cover ORT's three span kernels: vector+vector, scalar B, scalar A (which ORT swaps into B).
"""
from __future__ import annotations

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

from hwsim.kernels.elementwise import add_ort, mul_ort, ort_add_params, ort_mul_params, qadd, qmul  # noqa: E402

SHAPES = [((2, 16, 32, 33), (2, 16, 32, 33)),   # vector + vector (odd tail length)
          ((2, 16, 32, 33), (33,)),              # B broadcast along rows: vector spans
          ((2, 16, 32, 33), (2, 16, 32, 1)),     # B scalar per span
          ((2, 16, 32, 1), (2, 16, 32, 33)),     # A scalar per span (ORT swaps it into B)
          ((1,), (2, 16, 32, 33)),               # A scalar
          ((2, 16, 32, 33), (1, 1, 1, 1))]       # B scalar


def _session(op, dtype, sa, za, sb, zb, sc, zc, sha, shb):
    tt = {"int8": TensorProto.INT8, "uint8": TensorProto.UINT8}[dtype]
    inits = [helper.make_tensor(n, TensorProto.FLOAT, [], [v]) for n, v in (("sa", sa), ("sb", sb), ("sc", sc))]
    inits += [helper.make_tensor(n, tt, [], [v]) for n, v in (("za", za), ("zb", zb), ("zc", zc))]
    node = helper.make_node(op, ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"], ["y"], domain="com.microsoft")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("a", tt, sha),
                                        helper.make_tensor_value_info("b", tt, shb)],
                          [helper.make_tensor_value_info("y", tt, np.broadcast_shapes(sha, shb))], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 8
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _scale(rng, pot, lo, hi):
    e = int(rng.integers(lo, hi + 1))
    return float(2.0 ** e) if pot else float(np.float32(rng.uniform(1.0, 2.0) * 2.0 ** e))


@pytest.mark.parametrize("op", ["QLinearAdd", "QLinearMul"])
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_ort_qlinear_binary_bitexact(op, dtype):
    rng = np.random.default_rng(21 if op == "QLinearAdd" else 22)
    info = np.iinfo(dtype)
    total = bad = 0
    for t in range(12):
        pot = t % 2 == 0
        sa, sb = _scale(rng, pot, -7, -4), _scale(rng, pot, -7, -4)
        sc = _scale(rng, pot, -7, -4) if op == "QLinearAdd" else _scale(rng, pot, -12, -8)
        za, zb, zc = (int(v) for v in rng.integers(info.min, info.max + 1, 3))
        if t == 1:
            za, zb, zc = info.min, info.max, info.min
        sha, shb = SHAPES[t % len(SHAPES)]
        a = rng.integers(info.min, info.max + 1, sha).astype(dtype)
        b = rng.integers(info.min, info.max + 1, shb).astype(dtype)
        a.flat[0], b.flat[-1] = info.min, info.max
        got = _session(op, dtype, sa, za, sb, zb, sc, zc, sha, shb).run(None, {"a": a, "b": b})[0]
        if op == "QLinearAdd":
            want = add_ort(a, b, ort_add_params(sa, za, sb, zb, sc, zc, dtype))
            assert np.array_equal(want, qadd(a, b, (sa, za), (sb, zb), (sc, zc), dtype, scheme="onnxruntime"))
        else:
            want = mul_ort(a, b, ort_mul_params(sa, za, sb, zb, sc, zc, dtype))
            assert np.array_equal(want, qmul(a, b, (sa, za), (sb, zb), (sc, zc), dtype, scheme="onnxruntime"))
        assert got.shape == want.shape
        n_bad = int(np.count_nonzero(got != want))
        assert n_bad == 0, (op, dtype, t, sha, shb, sa, sb, sc, za, zb, zc)
        total += got.size
        bad += n_bad
    print(f"{op} {dtype}: outputs={total} mismatches={bad}")
    assert total >= 300_000


def _pool_session(op, dtype, sx, zx, sy, zy, shape, attrs):
    tt = {"int8": TensorProto.INT8, "uint8": TensorProto.UINT8}[dtype]
    inits = [helper.make_tensor("sx", TensorProto.FLOAT, [], [sx]), helper.make_tensor("sy", TensorProto.FLOAT, [], [sy]),
             helper.make_tensor("zx", tt, [], [zx]), helper.make_tensor("zy", tt, [], [zy])]
    node = helper.make_node(op, ["x", "sx", "zx", "sy", "zy"], ["y"], domain="com.microsoft", **attrs)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", tt, shape)],
                          [helper.make_tensor_value_info("y", tt, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 8
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_ort_qlinear_pools_bitexact(dtype):
    """com.microsoft QLinearAveragePool (float32 path) and QLinearGlobalAveragePool (MLAS)."""
    from hwsim.kernels.pool import avg_pool_ort, global_avg_pool_ort

    rng = np.random.default_rng(23)
    info = np.iinfo(dtype)
    n_avg = n_gap = 0
    for t in range(8):
        pot = t % 2 == 0
        sx, sy = _scale(rng, pot, -6, -2), _scale(rng, pot, -6, -2)
        zx, zy = (int(v) for v in rng.integers(info.min, info.max + 1, 2))
        shape = (2, 8, 41, 37)
        x = rng.integers(info.min, info.max + 1, shape).astype(dtype)
        k, s, pads = [((3, 3), (1, 1), (1, 1, 1, 1)), ((2, 2), (2, 2), (0, 0, 0, 0)),
                      ((5, 3), (2, 1), (2, 1, 2, 1))][t % 3]
        inc = t % 4 == 1
        got = _pool_session("QLinearAveragePool", dtype, sx, zx, sy, zy, shape,
                            dict(kernel_shape=list(k), strides=list(s), pads=list(pads),
                                 count_include_pad=int(inc))).run(None, {"x": x})[0]
        want = avg_pool_ort(x, k, s, pads, sx, zx, sy, zy, count_include_pad=inc)
        assert np.array_equal(got, want), (t, int((got != want).sum()))
        n_avg += got.size
        gshape = (4, 256, 3 + t, 5 + 2 * t)
        xg = rng.integers(info.min, info.max + 1, gshape).astype(dtype)
        got = _pool_session("QLinearGlobalAveragePool", dtype, sx, zx, sy, zy, gshape,
                            dict(channels_last=0)).run(None, {"x": xg})[0]
        want = global_avg_pool_ort(xg, sx, zx, sy, zy)
        assert np.array_equal(got, want), (t, int((got != want).sum()))
        n_gap += got.size
    print(f"QLinearAveragePool {dtype}: outputs={n_avg} mismatches=0; "
          f"QLinearGlobalAveragePool {dtype}: outputs={n_gap} mismatches=0")

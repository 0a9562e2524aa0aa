"""Hand-computed checks that pin the kernels' documented semantics (independent of the reference)."""
from __future__ import annotations

import numpy as np
import pytest

from hwsim.bits import IntFormat
from hwsim.errors import KernelError
from hwsim.kernels import (AccumParams, ConvParams, GemmParams, KernelStats, RequantParams, conv2d_acc, gemm_acc,
                           pack_int4, qconv2d, qgemm, quantize, requantize)
from hwsim.kernels import fixedpoint as fp


@pytest.fixture(autouse=True)
def _portable_kernels(monkeypatch):
    """These tests define and check the portable kernels: keep dispatch's fast paths out
    (tests/test_vnni*.py compare the fast paths with the portable ones)."""
    monkeypatch.setenv("HWSIM_KERNEL_PATH", "portable")


K24 = 600                      # 600 * 255 * 127 = 19,431,000 > 2^23


def _ones_problem():
    return np.full((1, K24), 255, np.uint8), np.full((K24, 1), 127, np.int8)


def test_24bit_accumulator_saturates_after_each_mac_and_counts():
    x, w = _ones_problem()
    acc, st = gemm_acc(x, w, None, GemmParams(accum=AccumParams(24, "saturate")))
    assert acc.tolist() == [[2 ** 23 - 1]]
    # partial sums exceed 2^23 - 1 from the 260th product on: 600 - 259 saturating steps
    assert st.acc_overflows == K24 - 259
    assert st.macs == K24


def test_24bit_accumulator_wraps_modulo_and_counts_each_wrap():
    x, w = _ones_problem()
    acc, st = gemm_acc(x, w, None, GemmParams(accum=AccumParams(24, "wrap")))
    assert acc.tolist() == [[19_431_000 - 2 ** 24]]
    assert st.acc_overflows == 1


def test_saturation_order_bias_first_then_products():
    # bias -100, products +60, +60: saturating 7-bit... use 8-bit accumulator [-128, 127]
    x = np.array([[1, 1, 1]], np.int8)
    w = np.array([[100], [100], [-100]], np.int8)
    acc, st = gemm_acc(x, w, np.array([-100]), GemmParams(accum=AccumParams(8, "saturate")))
    # -100 -> 0 -> 100 -> 0 : no overflow in this order
    assert acc.tolist() == [[0]] and st.acc_overflows == 0
    acc, st = gemm_acc(x, w, np.array([100]), GemmParams(accum=AccumParams(8, "saturate")))
    # 100 -> 127 (sat) -> 127 (sat) -> 27
    assert acc.tolist() == [[27]] and st.acc_overflows == 2


def test_wide_accumulator_is_exact_and_no_events():
    x, w = _ones_problem()
    for bits in (32, 64):
        acc, st = gemm_acc(x, w, None, GemmParams(accum=AccumParams(bits)))
        assert acc.tolist() == [[19_431_000]] and st.acc_overflows == 0
    assert gemm_acc(x, w, None, GemmParams(accum=AccumParams(64)))[0].dtype == np.int64
    assert gemm_acc(x, w, None, GemmParams())[0].dtype == np.int32


def test_pairwise_int16_saturation_of_u8s8_pairs():
    x = np.array([[255, 255, 255]], np.uint8)
    w = np.array([[127], [127], [-128]], np.int8)
    exact, st0 = gemm_acc(x, w, None, GemmParams())
    assert exact.tolist() == [[64770 - 32640]] and st0.pair_saturations == 0
    acc, st = gemm_acc(x, w, None, GemmParams(accum=AccumParams(32, pairwise_int16=True)))
    # pair (0,1): 2*255*127 = 64770 -> 32767; tail pair (2, -): -32640
    assert acc.tolist() == [[32767 - 32640]] and st.pair_saturations == 1
    # zero points are corrected exactly after the raw pair sums
    acc, _ = gemm_acc(x, w, None, GemmParams(x_zero_point=5, w_zero_point=3, accum=AccumParams(32, pairwise_int16=True)))
    raw = 32767 - 32640
    assert acc.tolist() == [[raw - 3 * (3 * 255) - 5 * (127 + 127 - 128) + 3 * 5 * 3]]
    # signed activations are not affected by the flag (vpmaddubsw is u8 x s8 only)
    xs = np.array([[127, 127]], np.int8)
    ws = np.array([[127], [127]], np.int8)
    a1, s1 = gemm_acc(xs, ws, None, GemmParams(accum=AccumParams(32, pairwise_int16=True)))
    assert a1.tolist() == [[2 * 127 * 127]] and s1.pair_saturations == 0


def test_conv_padding_contributes_zero_point_and_matches_float_math():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (2, 6, 7, 5)).astype(np.uint8)
    w = rng.integers(-128, 128, (6, 2, 3, 2)).astype(np.int8)          # groups = 3
    zx, zw = 37, 4
    p = ConvParams(strides=(2, 1), pads=(1, 0, 2, 1), dilations=(1, 2), groups=3, x_zero_point=zx, w_zero_point=zw)
    acc, st = conv2d_acc(x, w, np.arange(6), p)
    # float64 direct computation with explicit zero-point padding
    xp = np.pad(x.astype(np.float64) - zx, ((0, 0), (0, 0), (1, 2), (0, 1)))
    wc = w.astype(np.float64) - zw
    OH = (7 + 3 - 2 - 1) // 2 + 1
    OW = (5 + 1 - 2 - 1) // 1 + 1
    out = np.zeros((2, 6, OH, OW))
    for co in range(6):
        g = co // 2
        for c in range(2):
            for kh in range(3):
                for kw in range(2):
                    out[:, co] += wc[co, c, kh, kw] * xp[:, g * 2 + c, kh: kh + 2 * OH: 2, kw * 2: kw * 2 + OW]
    out += np.arange(6)[None, :, None, None]
    assert acc.shape == (2, 6, OH, OW)
    assert np.array_equal(acc, out.astype(np.int64))
    assert st.macs == 2 * OH * OW * 6 * 2 * 3 * 2


def test_depthwise_conv_equals_per_channel_conv():
    rng = np.random.default_rng(4)
    x = rng.integers(-128, 128, (1, 4, 9, 9)).astype(np.int8)
    w = rng.integers(-127, 128, (8, 1, 3, 3)).astype(np.int8)          # channel multiplier 2
    rp = RequantParams.create("tflite_reference", 0.05, rng.uniform(0.001, 0.01, 8), 0.1, IntFormat(8), -3,
                              activation="relu6")
    p = ConvParams(strides=(2, 2), pads=(1, 1, 1, 1), groups=4, x_zero_point=-7, requant=rp)
    y, _ = qconv2d(x, w, None, p)
    for c in range(4):
        for j in range(2):
            co = 2 * c + j
            rpc = RequantParams(rp.scheme, rp.out_fmt, rp.out_zero_point, rp.act_min, rp.act_max,
                                rp.multiplier[co], rp.m0[co], rp.shift[co], rp.bias_term[co])
            yc, _ = qconv2d(x[:, c:c + 1], w[co:co + 1], None, p.replace(groups=1, requant=rpc))
            assert np.array_equal(y[:, co:co + 1], yc)
    assert y.min() >= -3 and y.max() <= -3 + round(6 / 0.1)


@pytest.mark.parametrize("scheme,acc,expected", [
    # multiplier 0.5 on a tie: -5 * 0.5 = -2.5, 5 * 0.5 = 2.5, 7 * 0.5 = 3.5
    ("onnxruntime", [-5, 5, 7], [-2, 2, 4]),            # rne
    ("onnx_reference", [-5, 5, 7], [-2, 2, 4]),         # rne (float64)
    ("tflite_reference_fc", [-5, 5, 7], [-3, 3, 4]),    # away
    ("tflite_single_rounding", [-5, 5, 7], [-2, 3, 4]),  # up
    ("tflite_optimized", [-5, 5, 7], [-2, 3, 4]),       # up (first rounding; no right shift)
    ("tflite_reference", [-5, 5, 7], [-2, 3, 4]),       # SRDHM ties toward +inf when no right shift follows
])
def test_tie_rules_per_scheme(scheme, acc, expected):
    rp = RequantParams.create(scheme, 1.0, [1.0], 2.0, IntFormat(8), 0)
    y, _ = requantize(np.array(acc), rp)
    assert y.tolist() == expected


def test_tflite_reference_right_shift_rounds_away():
    # multiplier 0.25 = 2^30 * 2^(-1-31): SRDHM(x, 2^30) = x/2 (exact for even x), then RDBPOT(., 1) away
    rp = RequantParams.create("tflite_reference", 1.0, [1.0], 4.0, IntFormat(8), 0)
    assert (int(rp.m0[0]), int(rp.shift[0])) == (1 << 30, -1)
    y, _ = requantize(np.array([-10, -6, 6, 10]), rp)
    assert y.tolist() == [-3, -2, 2, 3]           # -2.5 -> -3, -1.5 -> -2, 1.5 -> 2, 2.5 -> 3
    rp = RequantParams.create("tflite_optimized", 1.0, [1.0], 4.0, IntFormat(8), 0)
    y, _ = requantize(np.array([-10, -6, 6, 10]), rp)
    assert y.tolist() == [-2, -1, 2, 3]           # ties up


def test_tflite_16x8_reduced_multiplier_differs_from_q31():
    rp = RequantParams.create("tflite_16x8", 0.001, [0.0123], 0.0007, IntFormat(16), 0)
    full = RequantParams.create("tflite_single_rounding", 0.001, [0.0123], 0.0007, IntFormat(16), 0)
    acc = np.arange(-2 ** 20, 2 ** 20, 997, dtype=np.int64)
    y16, _ = requantize(acc, rp)
    yq31, _ = requantize(acc, full)
    assert int(rp.m0[0]) < 2 ** 15
    assert 0 < np.count_nonzero(y16 != yq31) < acc.size // 5
    assert np.abs(y16.astype(int) - yq31).max() == 1


def test_fbgemm_float_bias_and_power_of_two_shift():
    rp = RequantParams.create("fbgemm", 0.5, [0.25], 1.0, IntFormat(8), 0, bias_float=[1.0])
    # bias term = 1.0 / (0.5*0.25) = 8; (acc + 8) * 0.125
    y, _ = requantize(np.array([0, 4, 12]), rp)
    assert y.tolist() == [1, 2, 2]                # 1.0, 1.5 -> 2 (rne), 2.5 -> 2 (rne)
    rp = RequantParams.create("power_of_two", 2.0 ** -3, [2.0 ** -4], 2.0 ** -5, IntFormat(8), 0, rounding="floor")
    assert int(rp.shift[0]) == 2
    assert requantize(np.array([-5, 5, 6]), rp)[0].tolist() == [-2, 1, 1]
    with pytest.raises(KernelError, match="power_of_two"):
        RequantParams.create("power_of_two", 0.3, [0.25], 1.0, IntFormat(8), 0)


def test_relu6_clamp_in_output_domain_and_clamp_count():
    rp = RequantParams.create("onnxruntime", 1.0, [1.0], 0.05, IntFormat(8, signed=False), 10, activation="relu6")
    assert (rp.act_min, rp.act_max) == (10, 130)
    y, st = requantize(np.array([-1, 0, 1, 5, 6, 7]), rp)
    assert y.tolist() == [10, 10, 30, 110, 130, 130] and st.out_clamped == 2


def test_int4_weights_packed_equal_unpacked_conv():
    rng = np.random.default_rng(9)
    x = rng.integers(0, 256, (1, 3, 6, 6)).astype(np.uint8)
    w = rng.integers(-8, 8, (5, 3, 3, 3)).astype(np.int8)
    rp = RequantParams.create("onnxruntime", 0.02, rng.uniform(0.01, 0.1, 5), 0.1, IntFormat(8, signed=False), 128)
    p = ConvParams(pads=(1, 1, 1, 1), x_zero_point=128, requant=rp)
    a, sa = qconv2d(x, w, None, p)
    b, sb = qconv2d(x, pack_int4(w), None, p)
    assert np.array_equal(a, b) and sa == sb


def test_bad_inputs_raise_kernel_error():
    x = np.zeros((2, 3), np.uint8)
    with pytest.raises(KernelError, match="K="):
        gemm_acc(x, np.zeros((4, 2), np.int8))
    with pytest.raises(KernelError, match="int8/uint8"):
        gemm_acc(x.astype(np.float32), np.zeros((3, 2), np.int8))
    with pytest.raises(KernelError, match="requant"):
        qgemm(x, np.zeros((3, 2), np.int8), None, GemmParams())
    with pytest.raises(KernelError, match="groups"):
        conv2d_acc(np.zeros((1, 3, 4, 4), np.uint8), np.zeros((4, 2, 1, 1), np.int8), None, ConvParams(groups=2))
    with pytest.raises(KernelError, match="accumulator bits"):
        AccumParams(80)
    with pytest.raises(KernelError, match="unknown requantization scheme"):
        RequantParams.create("nope", 1, [1], 1, IntFormat(8))
    with pytest.raises(KernelError, match="x_zero_point"):
        gemm_acc(x, np.zeros((3, 2), np.int8), None, GemmParams(x_zero_point=-1))


def test_stats_add_and_dict():
    s = KernelStats(1, 2, 3, 4) + KernelStats(10, 20, 30, 40)
    assert s.to_dict() == {"macs": 11, "acc_overflows": 22, "pair_saturations": 33, "out_clamped": 44}


def test_scalar_fixedpoint_documented_values():
    assert fp.saturating_rounding_doubling_high_mul(-(2 ** 31), -(2 ** 31)) == 2 ** 31 - 1
    assert fp.saturating_rounding_doubling_high_mul(2 ** 30, 3) == 2       # 1.5 -> 2
    assert fp.saturating_rounding_doubling_high_mul(-(2 ** 30), 3) == -1   # -1.5 -> -1 (ties up)
    assert fp.rounding_divide_by_pot(-3, 1) == -2 and fp.rounding_divide_by_pot(3, 1) == 2
    assert fp.shift_round(-3, 1, 0) == -2 and fp.shift_round(-5, 1, 0) == -2   # half even
    assert fp.shift_round(-3, 1, 2) == -1 and fp.shift_round(-3, 1, 3) == -2   # half up, floor
    assert fp.shift_round(3, -2, 0) == 12


def test_public_kernels_use_dispatch_plan_when_offered(monkeypatch):
    from hwsim.kernels import dispatch
    seen = []

    def fake(kind, x, w, bias, params):
        seen.append((kind, [type(a).__name__ for a in (x, w, bias, params)]))
        return lambda x, w, b, p: ("fast", kind, p.requant is None)

    monkeypatch.setattr(dispatch, "plan_for", fake)
    x = np.zeros((1, 4, 3, 3), np.uint8)
    rp = RequantParams.create("onnxruntime", 1.0, [1.0], 1.0, IntFormat(8, signed=False), 0)
    assert qconv2d(x, np.zeros((4, 1, 3, 3), np.int8), None, ConvParams(groups=4, requant=rp)) == ("fast", "depthwise", False)
    assert conv2d_acc(x, np.zeros((2, 4, 1, 1), np.int8)) == ("fast", "conv", True)
    assert qgemm(np.zeros((2, 3), np.uint8), np.zeros((3, 1), np.int8), None, GemmParams(requant=rp)) == ("fast", "gemm", False)
    assert seen[0] == ("depthwise", ["ndarray", "ndarray", "NoneType", "ConvParams"])


def test_portable_path_when_no_fast_path(monkeypatch):
    from hwsim.kernels import dispatch
    monkeypatch.setattr(dispatch, "plan_for", lambda kind, x, w, bias, params: None)
    x = np.arange(6, dtype=np.uint8).reshape(2, 3)
    w = np.ones((3, 2), np.int8)
    acc, _ = gemm_acc(x, w)
    assert acc.tolist() == [[3, 3], [12, 12]]


def test_requantize_axis_and_per_tensor():
    rp = RequantParams.create("onnx_reference", 1.0, [1.0, 2.0], 4.0, IntFormat(8), 0)
    acc = np.array([[4, 8, 12], [4, 8, 12]])                 # channels on axis 0
    y, _ = requantize(acc, rp, axis=0)
    assert y.tolist() == [[1, 2, 3], [2, 4, 6]]
    with pytest.raises(KernelError, match="per-channel"):
        requantize(acc, rp, axis=1)


def test_compiled_int64_and_careful_loops_agree_with_float_engine():
    """The compiled FAST64/CAREFUL loops (used only beyond float64's exact range) give the same
    accumulators and events as the engine's default path on a problem both can run."""
    from hwsim.kernels import gemm as g
    rng = np.random.default_rng(11)
    A = rng.integers(-32768, 32768, (2, 5, 40)).astype(np.int32)
    B = rng.integers(-32768, 32768, (2, 3, 40)).astype(np.int32)
    bias = rng.integers(-1000, 1000, 6).astype(np.int64)
    zw = np.zeros(6, np.int64)
    for accum in (AccumParams(64), AccumParams(32), AccumParams(40, "saturate")):
        want, ov, _ = g.run_core(A, B, bias, 0, zw, accum, False, 32768, 32768)
        for mode in ((g.FAST64, g.CAREFUL) if accum.bits == 64 else (g.CAREFUL,)):
            out = np.empty((5, 6), np.int64)
            ov2, _ = g._gemm_core(A, B, bias, np.int64(0), zw, mode, accum.bits, accum.overflow.value == "saturate", out)
            assert np.array_equal(out, want) and ov2 == ov


@pytest.mark.parametrize("modname", ["__init__", "params", "fixedpoint", "quantize", "requant", "gemm", "conv",
                                     "reference"])
def test_docstring_examples_run(modname):
    import doctest
    import importlib
    mod = importlib.import_module("hwsim.kernels" if modname == "__init__" else f"hwsim.kernels.{modname}")
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert res.failed == 0 and res.attempted > 0


def test_64bit_accumulator_step_detects_int64_overflow():
    from hwsim.kernels.gemm import acc_add
    top, bottom = 2 ** 63 - 1, -(2 ** 63)
    assert acc_add(np.int64(top), np.int64(1), 64, True) == (top, 1)
    assert acc_add(np.int64(top), np.int64(5), 64, False) == (bottom + 4, 1)
    assert acc_add(np.int64(bottom), np.int64(-1), 64, True) == (bottom, 1)
    assert acc_add(np.int64(top - 1), np.int64(1), 64, True) == (top, 0)
    assert acc_add(np.int64(2 ** 23 - 1), np.int64(1), 24, False) == (-(2 ** 23), 1)


def test_quantize_reciprocal_matches_litert_optimized_quantize():
    """``reciprocal=True`` is LiteRT's optimized QUANTIZE (x * f32(1/s), ties to even)."""
    pytest.importorskip("ai_edge_litert")
    from tests.litert_models import quantize_model, run_model
    rng = np.random.default_rng(3)
    s, z, fmt = np.float32(0.019813076), 17, IntFormat(8)
    k = rng.integers(-131, 131, 1 << 14).astype(np.float32)
    x = ((k + np.float32(0.5)) * s).astype(np.float32).reshape(1, -1)
    got = run_model(quantize_model(x.shape, "int8", (s, z)), [x], "optimized")
    assert np.array_equal(quantize(x, s, z, fmt, reciprocal=True), got)
    assert np.count_nonzero(quantize(x, s, z, fmt) != got) > 0          # division differs

"""Compiled elementwise / pooling / LUT kernels == their slow reference twins, exactly.

Hypothesis draws shapes (with broadcasting), zero points (including the type's extremes),
power-of-two and random scales, and inputs with qmin/qmax planted in them.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.bits import IntFormat
from hwsim.errors import KernelError
from hwsim.kernels import elementwise as E
from hwsim.kernels import lut as L
from hwsim.kernels import pool as P
from hwsim.kernels import reference_elementwise as R

SETTINGS = dict(max_examples=40, deadline=None, derandomize=True)
RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}


@st.composite
def scale(draw, lo=-12, hi=2):
    e = draw(st.integers(lo, hi))
    if draw(st.booleans()):
        return float(2.0 ** e)                     # power of two: ties are common
    return float(np.float32(draw(st.floats(1.0, 2.0, exclude_max=True)) * 2.0 ** e))


@st.composite
def int_array(draw, shape, dtype):
    lo, hi = RANGES[dtype]
    n = int(np.prod(shape))
    seed = draw(st.integers(0, 2 ** 31))
    a = np.random.default_rng(seed).integers(lo, hi + 1, n)
    for _ in range(draw(st.integers(0, 3))):
        a[draw(st.integers(0, max(n - 1, 0)))] = draw(st.sampled_from([lo, hi]))
    return a.astype(dtype).reshape(shape)


@st.composite
def broadcast_pair(draw, dtype):
    nd = draw(st.integers(1, 4))
    shape = tuple(draw(st.integers(1, 6)) for _ in range(nd))
    a_shape = tuple(d if draw(st.booleans()) else 1 for d in shape)
    b_shape = tuple(d if draw(st.booleans()) else 1 for d in shape)
    b_shape = b_shape[draw(st.integers(0, nd - 1)):]          # rank broadcasting too
    return draw(int_array(a_shape, dtype)), draw(int_array(b_shape, dtype))


@st.composite
def zp(draw, dtype):
    lo, hi = RANGES[dtype]
    if dtype == "int16":
        return 0
    return draw(st.one_of(st.sampled_from([lo, hi, 0]), st.integers(lo, hi)))


# ----------------------------------------------------------------------------- Add / Mul

@settings(**SETTINGS)
@given(st.data(), st.sampled_from(["int8", "uint8", "int16"]), st.booleans())
def test_add_tflite_matches_reference(data, dtype, optimized):
    a, b = data.draw(broadcast_pair(dtype))
    sa, sb, sy = data.draw(scale()), data.draw(scale()), data.draw(scale())
    za, zb, zy = data.draw(zp(dtype)), data.draw(zp(dtype)), data.draw(zp(dtype))
    try:
        p = E.tflite_add_params(sa, za, sb, zb, sy, zy, dtype)
    except KernelError:
        return                      # output multiplier >= 1: TFLite rejects such a model too
    np.testing.assert_array_equal(E.add_tflite(a, b, p, optimized=optimized),
                                  R.add_tflite(a, b, p, optimized=optimized))


@settings(**SETTINGS)
@given(st.data(), st.sampled_from(["int8", "uint8", "int16"]), st.booleans())
def test_mul_tflite_matches_reference(data, dtype, optimized):
    a, b = data.draw(broadcast_pair(dtype))
    sa, sb, sy = data.draw(scale()), data.draw(scale()), data.draw(scale(-16, 0))
    za, zb, zy = data.draw(zp(dtype)), data.draw(zp(dtype)), data.draw(zp(dtype))
    p = E.tflite_mul_params(sa, za, sb, zb, sy, zy, dtype)
    np.testing.assert_array_equal(E.mul_tflite(a, b, p, optimized=optimized),
                                  R.mul_tflite(a, b, p, optimized=optimized))


@settings(**SETTINGS)
@given(st.data(), st.sampled_from(["int8", "uint8"]))
def test_add_ort_matches_reference(data, dtype):
    a, b = data.draw(broadcast_pair(dtype))
    sa, sb, sy = data.draw(scale(-8, 0)), data.draw(scale(-8, 0)), data.draw(scale(-8, 0))
    za, zb, zy = data.draw(zp(dtype)), data.draw(zp(dtype)), data.draw(zp(dtype))
    p = E.ort_add_params(sa, za, sb, zb, sy, zy, dtype)
    np.testing.assert_array_equal(E.add_ort(a, b, p), R.add_ort(a, b, p))


@settings(**SETTINGS)
@given(st.data(), st.sampled_from(["int8", "uint8"]))
def test_mul_ort_matches_reference(data, dtype):
    a, b = data.draw(broadcast_pair(dtype))
    sa, sb, sy = data.draw(scale(-8, 0)), data.draw(scale(-8, 0)), data.draw(scale(-12, 0))
    za, zb, zy = data.draw(zp(dtype)), data.draw(zp(dtype)), data.draw(zp(dtype))
    p = E.ort_mul_params(sa, za, sb, zb, sy, zy, dtype)
    np.testing.assert_array_equal(E.mul_ort(a, b, p), R.mul_ort(a, b, p))


@settings(**SETTINGS)
@given(st.data(), st.sampled_from(["int8", "uint8", "int16"]),
       st.sampled_from(["half_even", "half_away", "half_up", "floor"]))
def test_pot_add_mul_match_reference(data, dtype, rounding):
    a, b = data.draw(broadcast_pair(dtype))
    ka, kb, ky = (data.draw(st.integers(-12, 2)) for _ in range(3))
    za, zb, zy = data.draw(zp(dtype)), data.draw(zp(dtype)), data.draw(zp(dtype))
    pa = E.pot_add_params(2.0 ** ka, za, 2.0 ** kb, zb, 2.0 ** ky, zy, dtype, rounding)
    np.testing.assert_array_equal(E.add_pot(a, b, pa), R.add_pot(a, b, pa))
    pm = E.pot_mul_params(2.0 ** ka, za, 2.0 ** kb, zb, 2.0 ** ky, zy, dtype, rounding)
    np.testing.assert_array_equal(E.mul_pot(a, b, pm), R.mul_pot(a, b, pm))


def test_pot_add_known_values():
    a, b = np.array([3, -3], np.int8), np.array([0, 0], np.int8)
    # 3 * 2^-2 + 0 at output scale 2^-1: 1.5 -> tie
    y = {r: E.qadd(a, b, (0.25, 0), (1.0, 0), (0.5, 0), "int8", scheme="power_of_two",
                   rounding=r).tolist() for r in ("half_even", "half_away", "half_up", "floor")}
    assert y == {"half_even": [2, -2], "half_away": [2, -2], "half_up": [2, -1], "floor": [1, -2]}
    with pytest.raises(KernelError):
        E.pot_add_params(0.3, 0, 0.25, 0, 0.5, 0, "int8")


def test_fma_f32_single_rounding():
    """The float32 FMA rounds once: a product whose float64 sum lands on a float32 tie."""
    # x*y = 1 + 2^-24 + 2^-48 (exact in float64? no: 2^-48 is lost in the float64 sum with z)
    x = float(np.float32(1 + 2 ** -12))
    y = float(np.float32(1 + 2 ** -12))
    z = -float(np.float32(2 ** -11))
    # exact x*y + z = 1 + 2^-24: a float32 tie between 1 and 1+2^-23 -> even (1.0)
    assert float(E._fma_f32(x, y, z)) == 1.0
    # exact x*y + z' = 1 + 2^-24 + 2^-30 (above the tie) -> 1 + 2^-23
    z2 = z + 2 ** -30
    assert float(E._fma_f32(x, y, z2)) == float(np.float32(1 + 2 ** -23))
    # float64 rounding first then float32 would give the wrong answer for this one
    z3 = float(np.float32(-(2 ** -11))) + 2 ** -60
    assert float(E._fma_f32(x, y, z3)) == float(np.float32(1 + 2 ** -23))


def test_tflite_add_known_values_and_extremes():
    # 0.5*(2-1) + 0.25*(5+3) = 2.5 -> ties away -> 3 ; ORT's rne -> 2
    p = E.tflite_add_params(0.5, 1, 0.25, -3, 1.0, 0, "int8")
    a, b = np.array([2, -128, 127], np.int8), np.array([5, -128, 127], np.int8)
    assert E.add_tflite(a, b, p).tolist()[0] == 3
    assert E.qadd(a, b, (0.5, 1), (0.25, -3), (1.0, 0), "int8", scheme="onnxruntime").tolist()[0] == 2
    # equal input scales give M0 = 2^30 exactly, shift 0
    q = E.tflite_add_params(0.1, 0, 0.1, 0, 0.2, 0, "int8")
    assert (q.a_mult, q.a_shift, q.b_mult, q.b_shift) == (2 ** 30, 0, 2 ** 30, 0)
    # a vanishing input multiplier (shift < -31) flushes to 0: b contributes nothing
    r = E.tflite_add_params(1.0, 0, 2.0 ** -40, 0, 1.0, 0, "int8")
    assert r.b_mult == 0
    assert E.add_tflite(np.array([5], np.int8), np.array([127], np.int8), r).tolist() == [5]
    with pytest.raises(KernelError):
        E.tflite_add_params(1.0, 0, 1.0, 0, 2.0 ** -25, 0, "int8")     # multiplier >= 1
    with pytest.raises(KernelError):
        E.qadd(a, b, (1, 0), (1, 0), (1, 0), "int8", scheme="fbgemm")
    with pytest.raises(KernelError):
        E.add_tflite(np.zeros(3, np.int8), np.zeros(4, np.int8), p)


# ----------------------------------------------------------------------------- pooling

@st.composite
def pool_case(draw):
    dtype = draw(st.sampled_from(["int8", "uint8", "int16"]))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pads = tuple(draw(st.integers(0, k - 1)) for k in (kh, kw, kh, kw))
    h = draw(st.integers(max(kh - pads[0] - pads[2], 1), 9))
    w = draw(st.integers(max(kw - pads[1] - pads[3], 1), 9))
    x = draw(int_array((draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w), dtype))
    return x, (kh, kw), (sh, sw), (pads[0], pads[1], pads[2], pads[3])


@settings(**SETTINGS)
@given(pool_case(), st.sampled_from(["half_even", "half_away", "half_up", "floor"]),
       st.booleans(), st.integers(-128, 127))
def test_avg_pool_matches_reference(case, rounding, include_pad, zero_point):
    x, k, s, pads = case
    lo, hi = RANGES[x.dtype.name]
    zero_point = min(max(zero_point, lo), hi)
    kw = dict(count_include_pad=include_pad, zero_point=zero_point, rounding=rounding)
    np.testing.assert_array_equal(P.avg_pool(x, k, s, pads, **kw), R.avg_pool(x, k, s, pads, **kw))


@settings(**SETTINGS)
@given(pool_case(), st.booleans())
def test_max_pool_and_global_avg_match_reference(case, relu):
    x, k, s, pads = case
    act = dict(act_min=0) if relu else {}
    np.testing.assert_array_equal(P.max_pool(x, k, s, pads, **act), R.max_pool(x, k, s, pads, **act))
    np.testing.assert_array_equal(P.global_avg_pool(x, **act), R.global_avg_pool(x, **act))


@settings(**{**SETTINGS, "max_examples": 20})
@given(pool_case(), st.booleans(), scale(-8, 0), scale(-8, 0), st.data())
def test_ort_pools_match_reference(case, include_pad, sx, sy, data):
    x, k, s, pads = case
    if x.dtype.name == "int16":
        x = (x // 256).astype(np.int8)
    zx, zy = data.draw(zp(x.dtype.name)), data.draw(zp(x.dtype.name))
    np.testing.assert_array_equal(
        P.avg_pool_ort(x, k, s, pads, sx, zx, sy, zy, count_include_pad=include_pad),
        R.avg_pool_ort(x, k, s, pads, sx, zx, sy, zy, count_include_pad=include_pad))
    np.testing.assert_array_equal(P.global_avg_pool_ort(x, sx, zx, sy, zy),
                                  R.global_avg_pool_ort(x, sx, zx, sy, zy))


def test_avg_pool_rounding_ties():
    x = np.array([[[[1, 2], [-3, -2]]]], np.int8)     # sums 3 and -5 over pairs
    k, s = (1, 2), (1, 2)
    assert P.avg_pool(x, k, s).ravel().tolist() == [2, -3]               # away: 1.5->2, -2.5->-3
    assert P.avg_pool(x, k, s, rounding="half_even").ravel().tolist() == [2, -2]
    assert P.avg_pool(x, k, s, rounding="half_up").ravel().tolist() == [2, -2]
    assert P.avg_pool(x, k, s, rounding="floor").ravel().tolist() == [1, -3]
    # padding counts the zero point only with count_include_pad
    y = np.full((1, 1, 1, 1), 10, np.int8)
    assert P.avg_pool(y, (1, 2), (1, 1), (0, 0, 0, 1)).item() == 10
    assert P.avg_pool(y, (1, 2), (1, 1), (0, 0, 0, 1), count_include_pad=True, zero_point=-2).item() == 4
    assert P.same_pads((5, 6), (3, 2), (2, 2)) == (1, 0, 1, 0)
    with pytest.raises(KernelError):
        P.max_pool(np.zeros((1, 1, 2, 2), np.int8), (3, 3), (1, 1))


# ----------------------------------------------------------------------------- LUT

@settings(**SETTINGS)
@given(st.sampled_from(["int8", "uint8"]), scale(-8, 0), st.data(),
       st.sampled_from(["sigmoid", "tanh", "hard_swish"]))
def test_lut_matches_reference(dtype, s_in, data, kind):
    z = data.draw(zp(dtype))
    fn = {"sigmoid": L.f32_sigmoid, "tanh": L.f32_tanh, "hard_swish": L.f32_hard_swish}[kind]
    out_s, out_z = (L.SIGMOID_OUT if kind == "sigmoid" else L.TANH_OUT)[dtype]
    if kind == "hard_swish":
        out_s, out_z = data.draw(scale(-8, 0)), data.draw(zp(dtype))
    lut = L.build_lut(fn, s_in, z, out_s, out_z, dtype)
    ref = R.build_lut(fn, s_in, z, out_s, out_z, dtype)
    np.testing.assert_array_equal(lut.table, ref.table)
    x = data.draw(int_array((3, 50), dtype))
    np.testing.assert_array_equal(L.apply_lut(x, lut), R.apply_lut(x, lut))


def test_lut_fixed_output_scales_and_formats():
    s = L.sigmoid_lut(0.1, 0, IntFormat(8))
    assert (s.out_scale, s.out_zp) == (1 / 256, -128)
    t = L.tanh_lut(0.05, 3, "int8")
    assert (t.out_scale, t.out_zp) == (1 / 128, 0)
    x = np.array([-128, 0, 127], np.int8)
    assert L.apply_lut(x, s).tolist() == [-128, 0, 127]
    assert L.apply_lut(np.array([3], np.int8), t).tolist() == [0]       # tanh(0) = 0
    u = L.tanh_lut(0.05, 128, "uint8")
    assert L.apply_lut(np.array([128], np.uint8), u).tolist() == [128]
    hs = L.hard_swish_lut(0.1, 0, 0.05, -100, "int8")
    assert L.apply_lut(np.array([-100, 0, 100], np.int8), hs).tolist() == [-100, -100, 100]
    ths = L.tflite_hard_swish_lut(0.05, 0, 0.05, 0, "int8")      # same scale: hswish(x) on the grid
    assert L.apply_lut(np.array([-128, 0, 60, 127], np.int8), ths).tolist() == [0, 0, 60, 127]
    with pytest.raises(KernelError):
        L.tflite_hard_swish_lut(1.0, 0, 1e-6, 0, "int8")             # output multiplier exponent > 0
    with pytest.raises(KernelError):
        L.apply_lut(np.array([300], np.int16), s)
    with pytest.raises(KernelError):
        L.build_lut(L.f32_tanh, 0.1, 0, 1 / 128, 0, "float32")

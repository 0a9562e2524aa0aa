"""The vector TFLite 16x8 epilogues (kernels/vnni.py) equal the scalar one bit for bit.

Reference: ``vnni._epilogue_16x8_rows`` (the scalar loop over
``fixedpoint.multiply_by_quantized_multiplier_16x8``, ``wrap_int32``, clamp and count) on int64
accumulators. Checked against it, over every output byte (untouched bytes included) and the
clamp count:

* ``_epilogue_16x8_lohi``: the AMX W8A16 pair's lo / hi int32 tile sums, read in place
  (the reference gets them combined as ``hi * 256 + lo``, as the AMX driver does);
* ``_epilogue`` (the VNNI / AMX dispatcher) with the 16x8 scheme on contiguous rows, on int64
  accumulators (``blocked``) and on the int32 tile.

Accumulators include the int32 extremes of the lo / hi sums, values near +-2^47 and anything
int64 (the scalar product wraps in int64; so must the vectors); multipliers come from
``quantize_multiplier`` + ``reduce_multiplier_15bit`` of random and power-of-two scales (ties),
besides raw ones over the whole valid range (``m0 < 2^15``, ``shift`` in [-31, 14]).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwsim.kernels import cpu, fixedpoint as fp, vnni

pytestmark = pytest.mark.skipif(not cpu.has_vnni(), reason="CPU without AVX-512")

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NR = vnni.NR
I32 = (-(2 ** 31), 2 ** 31 - 1)
I64 = (-(2 ** 63), 2 ** 63 - 1)
ODT = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}


def _mix(rng, n, lo, hi, extremes):
    """n int64 in [lo, hi]: uniform, small, and the given extreme values +- a little."""
    v = rng.integers(lo, hi, n, dtype=np.int64, endpoint=True)
    kind = rng.integers(0, 4, n)
    small = rng.integers(-300, 301, n)
    v = np.where(kind == 1, small, v)
    ex = np.asarray(extremes, dtype=object)[rng.integers(0, len(extremes), n)]
    near = [min(hi, max(lo, int(e) + int(d))) for e, d in zip(ex, rng.integers(-3, 4, n))]
    return np.where(kind >= 2, np.asarray(near, np.int64), v)


def _multipliers(rng, n, how):
    """(m0s, shift) of n channels, int64, in the 16x8 scheme's ranges."""
    if how == "raw":
        m = rng.integers(0, 2 ** 15, n)
        m[rng.random(n) < 0.2] = 0x7FFF
        m[rng.random(n) < 0.05] = 0
        return m.astype(np.int64), rng.integers(-31, 15, n).astype(np.int64)
    if how == "pow2":
        real = 2.0 ** rng.integers(-40, 10, n).astype(np.float64)
    else:
        real = rng.uniform(0.5, 1.0, n) * 2.0 ** rng.integers(-40, 10, n).astype(np.float64)
    m0, sh = fp.quantize_multiplier(real)
    m = fp.reduce_multiplier_15bit(m0)
    ok = (sh >= -31) & (sh <= 14)
    return np.where(ok, m, 1 << 14).astype(np.int64), np.where(ok, sh, -20).astype(np.int64)


def _bounds(rng, how, osize):
    if how == "dtype":
        info = np.iinfo(ODT[osize])
        return int(info.min), int(info.max)
    if how == "narrow":
        a = int(rng.integers(-200, 200))
        return a, a + int(rng.integers(0, 5))
    if how == "wide":       # beyond int32: never clamps (the vector path cuts them to int32)
        return -(2 ** 40), 2 ** 40
    if how == "inverted":   # amin > amax: the scalar function's order decides (scalar fallback)
        a = int(rng.integers(-100, 100))
        return a, a - int(rng.integers(1, 50))
    return 2 ** 31 + 5, 2 ** 31 + 9     # above int32: everything clamps to amin (scalar fallback)


BOUNDS = st.sampled_from(["dtype", "dtype", "narrow", "narrow", "wide", "inverted", "above"])
MULTS = st.sampled_from(["raw", "pow2", "scale"])


def _case(rng, m0, m1, n0, n1, osize, mult_how, bounds_how, zy_how):
    N = n1 + int(rng.integers(0, 3))          # channel arrays end at n1 or a little after
    corr = _mix(rng, N, -(2 ** 47), 2 ** 47, [-(2 ** 47), 2 ** 47, 0])
    m0s, shift = _multipliers(rng, N, mult_how)
    zy = int(rng.integers(-300, 300)) if zy_how == "small" else int(_mix(rng, 1, *I32, list(I32))[0])
    amin, amax = _bounds(rng, bounds_how, osize)
    stride = (n1 - n0) + int(rng.integers(0, 5))
    orow = np.full(m1 + 2, -1, np.int64)
    keep = rng.random(m1 - m0) < 0.85
    orow[m0:m1] = np.where(keep, 3 + np.arange(m1 - m0) * stride, -1)
    nout = 3 + (m1 - m0) * stride + n1 + 8
    return corr, m0s, shift, zy, amin, amax, orow, nout


def _out(nout, osize):
    # a sentinel pattern: bytes the epilogue must not write are compared too
    return (np.arange(nout * osize) * 37 % 251).astype(np.uint8)


def _run_ref(T64, m0, m1, n0, n1, corr, orow, nout, osize, m0s, shift, zy, amin, amax):
    out = _out(nout, osize)
    k = vnni._epilogue_16x8_rows(T64, m0, m1, n0, n1, corr, orow, out, osize, m0s, shift, zy, amin, amax)
    return k, out


def _same(ref, got):
    assert got[0] == ref[0]
    np.testing.assert_array_equal(got[1], ref[1])


@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1), m0=st.integers(0, 3), rows=st.integers(1, 40),
       n0=st.integers(0, 40), nch=st.one_of(st.sampled_from([16, 32]), st.integers(1, 32)),
       osize=st.sampled_from([1, 2, 4, 8]),
       mult_how=MULTS, bounds_how=BOUNDS, zy_how=st.sampled_from(["small", "wide"]),
       acc_how=st.sampled_from(["int32", "small"]))
def test_lohi_equals_scalar(seed, m0, rows, n0, nch, osize, mult_how, bounds_how, zy_how, acc_how):
    rng = np.random.default_rng(seed)
    m1, n1 = m0 + rows, n0 + nch
    corr, m0s, shift, zy, amin, amax, orow, nout = _case(rng, m0, m1, n0, n1, osize, mult_how, bounds_how, zy_how)
    if acc_how == "int32":
        T = _mix(rng, rows * NR, *I32, list(I32) + [0]).astype(np.int32)
    else:       # small sums: with power-of-two multipliers the rounding ties are frequent
        T = rng.integers(-1000, 1000, rows * NR).astype(np.int32)
    # the AMX driver's combine: channel n0 + 16 j + c <- hi (column 32 j + 16 + c) * 256 + lo (32 j + c)
    T64 = np.zeros(rows * NR, np.int64)
    for j in range((nch + 15) // 16):
        for c in range(16):
            T64[16 * j + c::NR] = T[32 * j + 16 + c::NR].astype(np.int64) * 256 + T[32 * j + c::NR]
    ref = _run_ref(T64, m0, m1, n0, n1, corr, orow, nout, osize, m0s, shift, zy, amin, amax)
    out = _out(nout, osize)
    got = vnni._epilogue_16x8_lohi(T, m0, m1, n0, n1, corr, orow, out, osize, m0s, shift, zy, amin, amax), out
    _same(ref, got)
    out = _out(nout, osize)
    got = (vnni._epilogue_16x8_lohi_scalar(T, m0, m1, n0, n1, corr, orow, out, osize, m0s, shift, zy, amin, amax),
           out)
    _same(ref, got)


def _dispatch(T, T64, blocked, m0, m1, n0, n1, corr, orow, nout, osize, m0s, shift, zy, amin, amax):
    """vnni._epilogue as the VNNI / AMX drivers call it: scheme code 5, mode 1, contiguous rows."""
    out = _out(nout, osize)
    N = corr.shape[0]
    mf = np.zeros(N, np.float32)
    k = vnni._epilogue(T, T64, blocked, m0, m1, n0, n1, corr, orow, 1, out, osize, 1, 5, mf, np.zeros(N), m0s,
                       shift, mf, zy, amin, amax, 0)
    return k, out


@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1), m0=st.integers(0, 3), rows=st.integers(1, 40),
       n0=st.integers(0, 70), nch=st.integers(1, 64), osize=st.sampled_from([1, 2, 4, 8]),
       mult_how=MULTS, bounds_how=BOUNDS, zy_how=st.sampled_from(["small", "wide"]),
       acc_how=st.sampled_from(["int64", "2^47", "small"]))
def test_int64_tile_equals_scalar(seed, m0, rows, n0, nch, osize, mult_how, bounds_how, zy_how, acc_how):
    rng = np.random.default_rng(seed)
    m1, n1 = m0 + rows, n0 + nch
    corr, m0s, shift, zy, amin, amax, orow, nout = _case(rng, m0, m1, n0, n1, osize, mult_how, bounds_how, zy_how)
    if acc_how == "int64":
        T64 = _mix(rng, rows * NR, *I64, list(I64) + [0, 2 ** 47, -(2 ** 47)])
    elif acc_how == "2^47":
        T64 = _mix(rng, rows * NR, -(2 ** 48), 2 ** 48, [2 ** 47, -(2 ** 47), 2 ** 39, -(2 ** 39)])
    else:
        T64 = rng.integers(-1000, 1000, rows * NR).astype(np.int64)
    T = np.zeros(1, np.int32)
    ref = _run_ref(T64, m0, m1, n0, n1, corr, orow, nout, osize, m0s, shift, zy, amin, amax)
    _same(ref, _dispatch(T, T64, True, m0, m1, n0, n1, corr, orow, nout, osize, m0s, shift, zy, amin, amax))


@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1), m0=st.integers(0, 3), rows=st.integers(1, 40),
       n0=st.integers(0, 70), nch=st.integers(1, 64), osize=st.sampled_from([1, 2, 4, 8]),
       mult_how=MULTS, bounds_how=BOUNDS, zy_how=st.sampled_from(["small", "wide"]),
       acc_how=st.sampled_from(["int32", "small"]))
def test_int32_tile_equals_scalar(seed, m0, rows, n0, nch, osize, mult_how, bounds_how, zy_how, acc_how):
    rng = np.random.default_rng(seed)
    m1, n1 = m0 + rows, n0 + nch
    corr, m0s, shift, zy, amin, amax, orow, nout = _case(rng, m0, m1, n0, n1, osize, mult_how, bounds_how, zy_how)
    if acc_how == "int32":
        T = _mix(rng, rows * NR, *I32, list(I32) + [0]).astype(np.int32)
    else:
        T = rng.integers(-1000, 1000, rows * NR).astype(np.int32)
    ref = _run_ref(T.astype(np.int64), m0, m1, n0, n1, corr, orow, nout, osize, m0s, shift, zy, amin, amax)
    _same(ref, _dispatch(T, np.zeros(1, np.int64), False, m0, m1, n0, n1, corr, orow, nout, osize, m0s, shift, zy,
                         amin, amax))


def test_scalar_reference_is_fixedpoint():
    """The reference loop itself: element by element the fixedpoint functions, clamp and count."""
    rng = np.random.default_rng(5)
    rows, n1 = 3, 20
    T64 = _mix(rng, rows * NR, *I64, [2 ** 47, -(2 ** 47)])
    corr = _mix(rng, n1, -(2 ** 47), 2 ** 47, [0])
    m0s, shift = _multipliers(rng, n1, "raw")
    orow = np.arange(rows, dtype=np.int64) * n1
    k, out = _run_ref(T64, 0, rows, 0, n1, corr, orow, rows * n1, 2, m0s, shift, 7, -1000, 1000)
    want, kk = [], 0
    for m in range(rows):
        acc = T64[m * NR:m * NR + n1] + corr          # wraps in int64, as the kernel's sum
        for n in range(n1):
            r = fp.wrap_int32(fp.multiply_by_quantized_multiplier_16x8(acc[n], m0s[n], shift[n]) + 7)
            kk += r < -1000 or r > 1000
            want.append(min(max(r, -1000), 1000))
    assert k == kk
    np.testing.assert_array_equal(out.view(np.int16), np.asarray(want, np.int16))

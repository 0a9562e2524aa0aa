"""The channel-major (NCHW, ``sn`` > 1) vector epilogues of kernels/vnni.py equal their
references bit for bit: every output byte (bytes that must stay untouched included, through a
sentinel pattern) and the clamp count.

* ``_epilogue_f32_cols`` (ONNX Runtime float scheme, 16 x 16 transposing stores) against its
  column-gather twin ``_epilogue_f32_cols_vcol`` (always) and against the portable per-element
  path, ``_epilogue`` with scheme code 0 (``fixedpoint.scale_f32_rne``; when the bounds are
  ordered and ``tile + corr`` fits int32, which is when the drivers use the float path); it is
  also called through the drivers' entry ``_epilogue_f32``.
* ``_epilogue_16x8_lohi_cols`` (TFLite 16x8 from the AMX W8A16 pair's lo / hi int32 sums)
  against its scalar twin ``_epilogue_16x8_lohi_cols_scalar`` and against the route it
  replaces: the AMX driver's combine ``hi * 256 + lo`` into int64 and ``_epilogue`` (scheme
  code 5, ``requantize_value`` per element).

Row layouts (``orow``): fully consecutive, runs of random length with gaps, skipped rows
(``orow < 0``) inside and between runs, and neighbouring rows swapped (blocks that are not
consecutive go the row-wise way); output positions are distinct, so the order in which an
implementation writes them cannot matter. Row counts include non-multiples of 16, channel
counts tails, multipliers powers of two (rounding ties), accumulators the int32 extremes, the
clamp bounds narrow ranges. The shuffle networks of the transposing store are also checked by
simulating them in NumPy.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwsim.kernels import cpu, fixedpoint as fp, vnni

pytestmark = pytest.mark.skipif(not cpu.has_vnni(), reason="CPU without AVX-512")

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NR = vnni.NR
I32 = (-(2 ** 31), 2 ** 31 - 1)
ODT = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}


def test_shuffle_networks_transpose():
    """Each network of ``_vtr16_put``, run on NumPy vectors: channel k's 16 elements are the
    low bytes / words / dwords of lane k of the 16 input rows."""
    rng = np.random.default_rng(3)
    M = rng.integers(*I32, (16, 16), endpoint=True).astype(np.int32)
    for w, (stages, cpv) in vnni._TR16_NET.items():
        dt = {1: np.uint8, 2: np.uint16}.get(w, np.uint32)
        v = [M[i].view(dt) for i in range(16)]
        for stage in stages:
            v = [np.concatenate([v[a], v[b]])[[0 if x is None else x for x in mask]] for a, b, mask in stage]
        for k in range(16):
            got = v[k // cpv][16 * (k % cpv):16 * (k % cpv) + 16]
            np.testing.assert_array_equal(got, M[:, k].view(np.uint32).astype(dt), err_msg=f"osize {w} channel {k}")


def _mix(rng, n, lo, hi, extremes):
    """n int64 in [lo, hi]: uniform, small, and the given extreme values +- a little."""
    v = rng.integers(lo, hi, n, dtype=np.int64, endpoint=True)
    kind = rng.integers(0, 4, n)
    v = np.where(kind == 1, rng.integers(-300, 301, n), v)
    ex = np.asarray(extremes, dtype=object)[rng.integers(0, len(extremes), n)]
    near = [min(hi, max(lo, int(e) + int(d))) for e, d in zip(ex, rng.integers(-3, 4, n))]
    return np.where(kind >= 2, np.asarray(near, np.int64), v)


def _orow(rng, m1, how):
    """Output offsets of rows 0 .. m1 - 1 (only those from m0 on are used): increasing, hence
    distinct, in runs of consecutive values; returns (orow, sn) with every offset < sn."""
    if how == "consecutive":
        o = 5 + np.arange(m1, dtype=np.int64)
    else:
        o = np.empty(m1, np.int64)
        cur, left = int(rng.integers(0, 20)), 0
        for m in range(m1):
            if left == 0:      # a new run: a gap (maybe none), a length up to 40
                cur += int(rng.integers(0, 4)) * int(rng.integers(0, 2))
                left = int(rng.integers(1, 41))
            o[m] = cur
            cur += 1
            left -= 1
        if how == "swaps":     # neighbours exchanged: their blocks are not consecutive
            for m in np.flatnonzero(rng.random(m1 - 1) < 0.03):
                o[m], o[m + 1] = o[m + 1], o[m]
    sn = int(o.max()) + 1 + int(rng.integers(0, 4))
    if how in ("holes", "swaps"):
        o = np.where(rng.random(m1) < 0.04, -1, o)
    return o, sn


def _out(nout, osize):
    # a sentinel pattern: bytes the epilogue must not write are compared too
    return (np.arange(nout * osize) * 37 % 251).astype(np.uint8)


def _same(ref, got, what):
    assert got[0] == ref[0], f"{what}: clamp count {got[0]} != {ref[0]}"
    np.testing.assert_array_equal(got[1], ref[1], err_msg=what)


ROWS = st.one_of(st.integers(1, 80), st.sampled_from([16, 32, 48, 64]))
ORROWS = st.sampled_from(["consecutive", "consecutive", "runs", "holes", "swaps"])


@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1), m0=st.integers(0, 3), rows=ROWS, n0=st.integers(0, 40),
       nch=st.one_of(st.sampled_from([16, 32, 48, 64]), st.integers(1, 64)), osize=st.sampled_from([1, 2]),
       orow_how=ORROWS, mult_how=st.sampled_from(["pow2", "scale", "mixed"]),
       bounds_how=st.sampled_from(["dtype", "dtype", "narrow", "point", "inverted"]),
       acc_how=st.sampled_from(["small", "extreme"]))
def test_f32_cols_equals_references(seed, m0, rows, n0, nch, osize, orow_how, mult_how, bounds_how, acc_how):
    rng = np.random.default_rng(seed)
    m1, n1 = m0 + rows, n0 + nch
    npad = (n1 + 63) // 64 * 64              # per-channel arrays padded to whole panels, as epilogue_args does
    corr = np.zeros(npad, np.int64)
    if acc_how == "small":                   # with power-of-two scales: many rounding ties
        T = rng.integers(-3000, 3000, rows * NR).astype(np.int32)
        corr[:n1] = rng.integers(-500, 500, n1)
    else:                                    # tile sums at the int32 extremes, tile + corr still in int32
        T = _mix(rng, rows * NR, I32[0] + 2 ** 20, I32[1] - 2 ** 20, [I32[0] + 2 ** 20, I32[1] - 2 ** 20, 0])
        T = T.astype(np.int32)
        corr[:n1] = _mix(rng, n1, -(2 ** 20), 2 ** 20, [-(2 ** 20), 2 ** 20])
    corr32 = corr.astype(np.int32)
    e = rng.integers(-24, 4, npad).astype(np.float64)
    if mult_how == "pow2":
        mf = (2.0 ** e).astype(np.float32)
    else:
        mf = (rng.uniform(0.5, 1.0, npad) * 2.0 ** e).astype(np.float32)
        if mult_how == "mixed":
            mf = np.where(rng.random(npad) < 0.5, (2.0 ** e).astype(np.float32), mf)
            mf[rng.random(npad) < 0.1] = 0
    info = np.iinfo({1: np.uint8 if rng.random() < 0.3 else np.int8, 2: np.int16}[osize])
    zy = int(rng.integers(info.min, info.max, endpoint=True)) // 2
    amin, amax = int(info.min), int(info.max)
    if bounds_how == "narrow":
        amin = int(rng.integers(info.min, info.max - 4, endpoint=True))
        amax = amin + int(rng.integers(0, 5))
    elif bounds_how == "point":
        amin = amax = zy
    elif bounds_how == "inverted":           # never made by the drivers: only the twins must agree
        amax = int(rng.integers(info.min, info.max - 4, endpoint=True))
        amin = amax + int(rng.integers(1, 5))
    lo, hi = amin - zy, amax - zy
    orow, sn = _orow(rng, m1, orow_how)
    nout = n1 * sn + 20
    R = np.empty(16, np.int32)

    def call(f):
        out = _out(nout, osize)
        return f(T, m0, m1, n0, n1, corr32, mf, lo, hi, zy, orow, sn, out, osize, R), out
    ref = call(vnni._epilogue_f32_cols_vcol)
    _same(ref, call(vnni._epilogue_f32_cols), "_epilogue_f32_cols vs _epilogue_f32_cols_vcol")
    _same(ref, call(vnni._epilogue_f32), "_epilogue_f32 vs _epilogue_f32_cols_vcol")
    if lo <= hi:
        out = _out(nout, osize)
        z = np.zeros(npad)
        k = vnni._epilogue(T, np.zeros(1, np.int64), False, m0, m1, n0, n1, corr, orow, sn, out, osize, 1, 0, mf,
                           z, z.astype(np.int64), z.astype(np.int64), mf, zy, amin, amax, 0)
        _same((k, out), ref, "_epilogue_f32_cols_vcol vs _epilogue code 0 (scalar)")


def _multipliers(rng, n, how):
    """(m0s, shift) of n channels, int64, in the 16x8 scheme's ranges."""
    if how == "raw":
        m = rng.integers(0, 2 ** 15, n)
        m[rng.random(n) < 0.2] = 0x7FFF
        m[rng.random(n) < 0.05] = 0
        return m.astype(np.int64), rng.integers(-31, 15, n).astype(np.int64)
    real = 2.0 ** rng.integers(-40, 10, n).astype(np.float64)
    if how == "scale":
        real *= rng.uniform(0.5, 1.0, n)
    m0, sh = fp.quantize_multiplier(real)
    m = fp.reduce_multiplier_15bit(m0)
    ok = (sh >= -31) & (sh <= 14)
    return np.where(ok, m, 1 << 14).astype(np.int64), np.where(ok, sh, -20).astype(np.int64)


def _bounds16x8(rng, how, osize):
    if how == "dtype":
        info = np.iinfo(ODT[osize])
        return int(info.min), int(info.max)
    if how == "narrow":
        a = int(rng.integers(-200, 200))
        return a, a + int(rng.integers(0, 5))
    if how == "wide":        # beyond int32: never clamps (the vector path cuts them to int32)
        return -(2 ** 40), 2 ** 40
    if how == "inverted":    # amin > amax: the scalar order decides (scalar fallback)
        a = int(rng.integers(-100, 100))
        return a, a - int(rng.integers(1, 50))
    return 2 ** 31 + 5, 2 ** 31 + 9      # above int32: everything clamps to amin (scalar fallback)


@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1), m0=st.integers(0, 3), rows=ROWS, n0=st.integers(0, 40),
       nch=st.one_of(st.sampled_from([16, 32]), st.integers(1, 32)), osize=st.sampled_from([1, 2, 4, 8]),
       orow_how=ORROWS, mult_how=st.sampled_from(["raw", "pow2", "scale"]),
       bounds_how=st.sampled_from(["dtype", "dtype", "narrow", "narrow", "wide", "inverted", "above"]),
       zy_how=st.sampled_from(["small", "wide"]), acc_how=st.sampled_from(["int32", "small"]))
def test_16x8_lohi_cols_equals_references(seed, m0, rows, n0, nch, osize, orow_how, mult_how, bounds_how, zy_how,
                                          acc_how):
    rng = np.random.default_rng(seed)
    m1, n1 = m0 + rows, n0 + nch
    N = n1 + int(rng.integers(0, 3))          # channel arrays end at n1 or a little after
    corr = _mix(rng, N, -(2 ** 47), 2 ** 47, [-(2 ** 47), 2 ** 47, 0])
    m0s, shift = _multipliers(rng, N, mult_how)
    zy = int(rng.integers(-300, 300)) if zy_how == "small" else int(_mix(rng, 1, *I32, list(I32))[0])
    amin, amax = _bounds16x8(rng, bounds_how, osize)
    if acc_how == "int32":
        T = _mix(rng, rows * NR, *I32, list(I32) + [0]).astype(np.int32)
    else:       # small sums: with power-of-two multipliers the rounding ties are frequent
        T = rng.integers(-1000, 1000, rows * NR).astype(np.int32)
    orow, sn = _orow(rng, m1, orow_how)
    nout = n1 * sn + 20

    def call(f):
        out = _out(nout, osize)
        return f(T, m0, m1, n0, n1, corr, orow, sn, out, osize, m0s, shift, zy, amin, amax), out
    got = call(vnni._epilogue_16x8_lohi_cols)
    _same(call(vnni._epilogue_16x8_lohi_cols_scalar), got, "_epilogue_16x8_lohi_cols vs its scalar twin")
    # the route it replaces: the AMX driver's combine into int64, then the per-element epilogue
    T64 = np.zeros(rows * NR, np.int64)
    for j in range((nch + 15) // 16):
        for c in range(16):
            T64[16 * j + c::NR] = T[32 * j + 16 + c::NR].astype(np.int64) * 256 + T[32 * j + c::NR]
    out = _out(nout, osize)
    zf = np.zeros(N, np.float32)
    k = vnni._epilogue(T, T64, True, m0, m1, n0, n1, corr, orow, sn, out, osize, 1, 5, zf, np.zeros(N), m0s, shift,
                       zf, zy, amin, amax, 0)
    _same((k, out), got, "_epilogue_16x8_lohi_cols vs combine + _epilogue code 5")

"""The row-major vector epilogue for whole 64-channel rows (``vnni._epilogue_f32_rows64``, the
GEMM drivers' common case, reached through ``_epilogue_f32`` with ``sn = 1`` and ``n1 - n0 =
64``) equals the general vector loop ``_epilogue_f32_body`` and the portable per-element path
(``_epilogue`` with scheme code 0, ``fixedpoint.scale_f32_rne``) bit for bit: every output byte
(bytes that must stay untouched included, through a sentinel pattern) and the clamp count.

One-byte outputs take three saturating packs and one 64-byte store with the clamps counted in
a vector; the draws cover int8 and uint8 ranges, zero points at both ends, narrow and
single-point clamp ranges, power-of-two scales (rounding ties), accumulators near the int32
extremes, skipped rows (``orow < 0``) and rows that start anywhere in the output.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwsim.kernels import cpu, vnni

pytestmark = pytest.mark.skipif(not cpu.has_vnni(), reason="CPU without AVX-512")

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NR = vnni.NR
I32 = (-(2 ** 31), 2 ** 31 - 1)


@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1), m0=st.integers(0, 3), rows=st.integers(1, 70), n0=st.integers(0, 70),
       otype=st.sampled_from(["int8", "uint8", "int16", "uint16"]),
       mult_how=st.sampled_from(["pow2", "scale", "mixed"]),
       bounds_how=st.sampled_from(["dtype", "dtype", "narrow", "point", "zy_edge"]),
       acc_how=st.sampled_from(["small", "extreme"]), holes=st.booleans())
def test_rows64_equals_references(seed, m0, rows, n0, otype, mult_how, bounds_how, acc_how, holes):
    rng = np.random.default_rng(seed)
    m1, n1 = m0 + rows, n0 + NR
    npad = (n1 + NR - 1) // NR * NR
    corr = np.zeros(npad, np.int64)
    if acc_how == "small":
        T = rng.integers(-3000, 3000, rows * NR).astype(np.int32)
        corr[:n1] = rng.integers(-500, 500, n1)
    else:
        T = rng.integers(I32[0] + 2 ** 20, I32[1] - 2 ** 20, rows * NR, endpoint=True).astype(np.int32)
        T[rng.random(rows * NR) < 0.2] = I32[1] - 2 ** 20
        corr[:n1] = rng.integers(-(2 ** 20), 2 ** 20, n1)
    corr32 = corr.astype(np.int32)
    e = rng.integers(-24, 4, npad).astype(np.float64)
    mf = (2.0 ** e).astype(np.float32)
    if mult_how != "pow2":
        sc = (rng.uniform(0.5, 1.0, npad) * 2.0 ** e).astype(np.float32)
        mf = np.where(rng.random(npad) < 0.5, mf, sc) if mult_how == "mixed" else sc
        mf[rng.random(npad) < 0.05] = 0
    info = np.iinfo(np.dtype(otype))
    osize = info.bits // 8
    zy = int(rng.integers(info.min, info.max, endpoint=True))
    amin, amax = int(info.min), int(info.max)
    if bounds_how == "narrow":
        amin = int(rng.integers(info.min, info.max - 4, endpoint=True))
        amax = amin + int(rng.integers(0, 5))
    elif bounds_how == "point":
        amin = amax = zy
    elif bounds_how == "zy_edge":
        zy = amin if rng.random() < 0.5 else amax
    lo, hi = amin - zy, amax - zy
    ld = n1 + int(rng.integers(0, 9))
    orow = (np.arange(m1, dtype=np.int64) * ld + int(rng.integers(0, 5)))
    if holes:
        orow[rng.random(m1) < 0.1] = -1
    nout = m1 * ld + 10
    R = np.empty(16, np.int32)

    def fresh():
        return (np.arange(nout * osize) * 37 % 251).astype(np.uint8)

    got = fresh()
    k = vnni._epilogue_f32(T, m0, m1, n0, n1, corr32, mf, lo, hi, zy, orow, 1, got, osize, R)
    body = fresh()
    kb = vnni._epilogue_f32_body(T, m0, m1, n0, n1, corr32, mf, lo, hi, zy, orow, 1, body, osize, R)
    assert k == kb, f"clamp count {k} != {kb} (_epilogue_f32_body)"
    np.testing.assert_array_equal(got, body, err_msg="_epilogue_f32 vs _epilogue_f32_body")
    ref = fresh()
    z = np.zeros(npad)
    kr = vnni._epilogue(T, np.zeros(1, np.int64), False, m0, m1, n0, n1, corr, orow, 1, ref, osize, 1, 0, mf,
                        z, z.astype(np.int64), z.astype(np.int64), mf, zy, amin, amax, 0)
    assert k == kr, f"clamp count {k} != {kr} (scalar _epilogue code 0)"
    np.testing.assert_array_equal(got, ref, err_msg="_epilogue_f32 vs scalar _epilogue code 0")

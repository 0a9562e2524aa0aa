"""The AMX tile path (kernels/amx.py) computes exactly what the portable kernels compute.

Property tests draw shapes whose tails exercise every edge of the tiling (M not a multiple of
16 or 32, K not a multiple of 64, channels not a multiple of 16 or 32, odd tile counts, reads
past the end of A), zero points, int4 / zero-pointed uint8 weights, uint8 / int8 / int16 /
uint16 activations, power-of-two scales (rounding ties) and extreme values, and compare the
AMX plan's output and KernelStats with the portable kernel's bit for bit.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwsim.bits import IntFormat
from hwsim.cli.bench import _threads
from hwsim.kernels import (AccumParams, ConvParams, GemmParams, RequantParams, amx, cpu, dispatch, pack_int4,
                           qconv2d, qgemm, gemm_acc, conv2d_acc, vnni)

pytestmark = pytest.mark.skipif(not cpu.has_amx(), reason="CPU or OS without AMX int8 tiles")
SETTINGS = settings(max_examples=int(os.environ.get("HWSIM_AMX_EXAMPLES", "40")), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _rand(rng, dt, shape, extreme):
    info = np.iinfo(dt)
    if extreme:
        return rng.choice(np.array([info.min, info.max], dt), size=shape)
    return rng.integers(info.min, int(info.max) + 1, size=shape).astype(dt)


def _weights(rng, kind, shape, extreme):
    """(weights as passed to the kernels, weight zero point)."""
    if kind == "i4":
        v = rng.choice([-8, 7], size=shape) if extreme else rng.integers(-8, 8, shape)
        return pack_int4(v.astype(np.int8)), 0
    if kind == "u8":
        return _rand(rng, np.uint8, shape, extreme), int(rng.integers(0, 256))
    if kind == "i16":
        return _rand(rng, np.int16, shape, extreme), int(rng.integers(-1000, 1000))
    return _rand(rng, np.int8, shape, extreme), 0


def _scales(rng, n, pow2):
    """(sx, sw per channel, sy): powers of two (rounding ties) or uniform draws."""
    if pow2:
        return 2.0 ** -4, 2.0 ** -rng.integers(5, 9, n).astype(float), 2.0 ** -int(rng.integers(-6, 0))
    return rng.uniform(0.01, 0.05), rng.uniform(0.001, 0.01, n), rng.uniform(0.05, 0.5)


def _requant(rng, n, xdt, pow2):
    wide = np.dtype(xdt).itemsize == 2
    fmt = IntFormat(16 if wide else 8, signed=bool(rng.integers(0, 2)) or wide)
    scheme = "tflite_16x8" if wide else str(rng.choice(["onnxruntime", "tflite_reference", "tflite_optimized",
                                                        "onnx_reference", "fbgemm"]))
    sx, sw, sy = _scales(rng, n, pow2)
    kw = {"bias_float": rng.uniform(-1, 1, n)} if scheme == "fbgemm" else {}
    zy = int(rng.integers(fmt.qmin // 2, fmt.qmax // 2 + 1)) if scheme != "fbgemm" or not wide else 0
    return RequantParams.create(scheme, sx, sw, sy, fmt, zy, **kw)


def _same(got, ref):
    np.testing.assert_array_equal(got[0], ref[0])
    assert got[0].dtype == ref[0].dtype and got[0].shape == ref[0].shape
    assert got[1] == ref[1]


XDT = st.sampled_from([np.uint8, np.int8, np.int16, np.uint16])


@SETTINGS
@given(xdt=XDT, wk=st.sampled_from(["i8", "i4", "u8", "i16"]), M=st.integers(1, 70), K=st.integers(1, 200),
       N=st.integers(1, 80), extreme=st.booleans(), pow2=st.booleans(), seed=st.integers(0, 2 ** 31))
def test_gemm_amx_equals_portable(xdt, wk, M, K, N, extreme, pow2, seed):
    rng = np.random.default_rng(seed)
    x = _rand(rng, xdt, (M, K), extreme)
    if np.dtype(xdt).itemsize == 1 and wk == "i16":
        wk = "i8"
    w, zw = _weights(rng, wk if np.dtype(xdt).itemsize == 1 or wk != "u8" else "i8", (K, N), extreme)
    info = np.iinfo(xdt)
    zx = int(rng.integers(info.min, int(info.max) + 1))
    bias = rng.integers(-5000, 5000, N).astype(np.int32)
    acc = AccumParams(bits=64) if np.dtype(xdt).itemsize == 2 else AccumParams()
    p = GemmParams(x_zero_point=zx, w_zero_point=zw, accum=acc)
    q = p.replace(requant=_requant(rng, N, xdt, pow2))
    for fn, params in ((gemm_acc, p), (qgemm, q)):
        plan = vnni.gemm_plan(x, w, bias, params, amx=True)
        if plan is None:
            # only when the accumulator bound cannot be proved (then VNNI / portable run it)
            assert not np.dtype(xdt).itemsize == 1 or wk == "u8"
            continue
        assert plan.__module__.endswith(".amx")
        got = plan(x, w, bias, params)
        with cpu.forced_path("portable"):
            ref = fn(x, w, bias, params)
        _same(got, ref)


@SETTINGS
@given(xdt=XDT, wk=st.sampled_from(["i8", "i4", "i16"]), NB=st.integers(1, 2), C=st.integers(1, 40),
       H=st.integers(1, 12), W=st.integers(1, 21), Cout=st.integers(1, 40), k=st.sampled_from([1, 2, 3, 5]),
       s=st.sampled_from([1, 2, 3]), pad=st.integers(0, 2), d=st.sampled_from([1, 2]), extreme=st.booleans(),
       pow2=st.booleans(), seed=st.integers(0, 2 ** 31))
def test_conv_amx_equals_portable(xdt, wk, NB, C, H, W, Cout, k, s, pad, d, extreme, pow2, seed):
    rng = np.random.default_rng(seed)
    if np.dtype(xdt).itemsize == 1 and wk == "i16":
        wk = "i8"
    pads = (pad, int(rng.integers(0, pad + 1)), int(rng.integers(0, pad + 1)), pad)
    if H + pads[0] + pads[2] < d * (k - 1) + 1 or W + pads[1] + pads[3] < d * (k - 1) + 1:
        return
    x = _rand(rng, xdt, (NB, C, H, W), extreme)
    w, zw = _weights(rng, wk, (Cout, C, k, k), extreme)
    info = np.iinfo(xdt)
    zx = int(rng.integers(info.min, int(info.max) + 1))
    bias = rng.integers(-5000, 5000, Cout).astype(np.int32)
    acc = AccumParams(bits=64) if np.dtype(xdt).itemsize == 2 else AccumParams()
    p = ConvParams(strides=(s, int(rng.integers(1, s + 1))), pads=pads, dilations=(d, d), x_zero_point=zx,
                   w_zero_point=zw, accum=acc)
    q = p.replace(requant=_requant(rng, Cout, xdt, pow2))
    for fn, params in ((conv2d_acc, p), (qconv2d, q)):
        plan = vnni.conv_plan(x, w, bias, params, amx=True)
        if plan is None:     # int16 weights whose centred values leave int16: no fast path at all
            assert wk == "i16"
            continue
        assert plan.__module__.endswith(".amx")
        got = plan(x, w, bias, params)
        with cpu.forced_path("portable"):
            ref = fn(x, w, bias, params)
        _same(got, ref)


def test_auto_path_is_amx_and_vnni_path_is_not():
    x = np.zeros((40, 70), np.uint8)
    w = np.zeros((70, 33), np.int8)
    w.flags.writeable = False
    p = GemmParams()
    assert cpu.kernel_path() == "amx"
    assert dispatch.fast_path("gemm", x=x, w=w, bias=None, params=p).__module__.endswith(".amx")
    with cpu.forced_path("vnni"):
        assert cpu.kernel_path() == "vnni"
        assert dispatch.fast_path("gemm", x=x, w=w, bias=None, params=p).__module__.endswith(".vnni")


def test_int32_tile_bound_declines():
    """K * 255 * 128 past int32: the tiles would overflow, so AMX declines (VNNI blocks K instead)."""
    K = 70000
    x = np.full((2, K), 255, np.uint8)
    w = np.full((K, 3), -128, np.int8)
    p = GemmParams(accum=AccumParams(bits=64))
    assert vnni.gemm_plan(x, w, None, p, amx=True) is None or \
        not vnni.gemm_plan(x, w, None, p, amx=True).__module__.endswith(".amx")


def _constant_problem(seed):
    """(x uint8 (20, 64), read-only int8 weights (64, 32), read-only int32 bias): constants,
    whose plans the kernels remember."""
    rng = np.random.default_rng(seed)
    x = _rand(rng, np.uint8, (20, 64), False)
    w = _rand(rng, np.int8, (64, 32), False)
    w.flags.writeable = False
    b = rng.integers(-100, 100, 32).astype(np.int32)
    b.flags.writeable = False
    return x, w, b


def test_memoised_plan_reused_only_for_same_objects():
    x, w, b = _constant_problem(3)
    p = GemmParams(x_zero_point=7)
    f1 = dispatch.fast_path("gemm", x=x, w=w, bias=b, params=p)
    assert dispatch.fast_path("gemm", x=x, w=w, bias=b, params=p) is f1
    p2 = GemmParams(x_zero_point=9)
    f2 = dispatch.fast_path("gemm", x=x, w=w, bias=b, params=p2)
    assert f2 is not f1
    with cpu.forced_path("portable"):
        ref = gemm_acc(x, w, b, p2)
    _same(f2(x, w, b, p2), ref)
    bw = b.copy()     # writeable bias: never remembered (its values could change)
    assert dispatch.fast_path("gemm", x=x, w=w, bias=bw, params=p) is not dispatch.fast_path(
        "gemm", x=x, w=w, bias=bw, params=p)


def test_last_plan_only_for_the_very_same_call():
    """qgemm's first check (dispatch.last_plan) hands back the previous plan only for the same
    weights, bias and params objects, activation shape and dtype and kernel path, and never
    once the weights or the bias are writeable (their values could have changed)."""
    x, w, b = _constant_problem(5)
    rq = RequantParams.create("onnxruntime", 0.02, np.full(32, 0.004), 0.3, IntFormat(8, signed=False), 100)
    p = GemmParams(x_zero_point=7, requant=rq)
    y = qgemm(x, w, b, p)
    plan = dispatch.last_plan("gemm", x, w, b, p)
    assert plan is not None and plan is dispatch.plan_for("gemm", x, w, b, p)
    _same(qgemm(x.copy(), w, b, p), y)
    assert dispatch.last_plan("gemm", x, w, b, GemmParams(x_zero_point=7, requant=rq)) is None
    assert dispatch.last_plan("gemm", x, w, b.copy(), p) is None
    assert dispatch.last_plan("gemm", x[:10], w, b, p) is None
    assert dispatch.last_plan("gemm", x.view(np.int8), w, b, p) is None
    assert dispatch.last_plan("gemm", x, w.copy(), b, p) is None
    with cpu.forced_path("vnni"):
        assert dispatch.last_plan("gemm", x, w, b, p) is None
    with cpu.forced_path("portable"):
        assert dispatch.last_plan("gemm", x, w, b, p) is None
        ref = qgemm(x, w, b, p)
    _same(y, ref)
    b.flags.writeable = True
    assert dispatch.last_plan("gemm", x, w, b, p) is None
    b[0] += 1000
    with cpu.forced_path("portable"):
        ref2 = qgemm(x, w, b, p)
    _same(qgemm(x, w, b, p), ref2)
    b.flags.writeable = False
    w.flags.writeable = True
    assert dispatch.last_plan("gemm", x, w, b, p) is None
    w[0, 0] = -w[0, 0] - 1
    with cpu.forced_path("portable"):
        ref3 = qgemm(x, w, b, p)
    _same(qgemm(x, w, b, p), ref3)


def test_peak_positive():
    from hwsim.kernels import amx
    assert amx.peak_gops(seconds=0.01) > 0


@pytest.mark.parametrize("xdt,M,K,N,wdt", [(np.uint8, 45, 1100, 70, np.int8), (np.int8, 33, 1600, 40, np.int8),
                                           (np.int16, 20, 700, 33, np.int8), (np.uint16, 17, 520, 16, np.int8),
                                           (np.int16, 19, 600, 20, np.int16)])
def test_gemm_amx_k_blocks(xdt, M, K, N, wdt):
    """K past one block (8 chunks): C tiles carried between blocks through memory."""
    rng = np.random.default_rng(K)
    x = _rand(rng, xdt, (M, K), False)
    w = _rand(rng, wdt, (K, N), False)
    bias = rng.integers(-5000, 5000, N).astype(np.int32)
    acc = AccumParams(bits=64) if np.dtype(xdt).itemsize == 2 else AccumParams()
    p = GemmParams(x_zero_point=int(np.iinfo(xdt).max // 5), accum=acc)
    q = p.replace(requant=_requant(rng, N, xdt, False))
    for fn, params in ((gemm_acc, p), (qgemm, q)):
        plan = vnni.gemm_plan(x, w, bias, params, amx=True)
        assert plan.__module__.endswith(".amx")
        with cpu.forced_path("portable"):
            ref = fn(x, w, bias, params)
        _same(plan(x, w, bias, params), ref)


@SETTINGS
@given(xdt=st.sampled_from([np.uint8, np.int8]), wk=st.sampled_from(["i8", "i4"]), M=st.integers(1, 140),
       K=st.integers(1, 768), panel_pairs=st.integers(1, 3), out_bits=st.sampled_from([8, 16]),
       out_signed=st.booleans(), threads=st.sampled_from([1, 2]), extreme=st.booleans(), pow2=st.booleans(),
       seed=st.integers(0, 2 ** 31))
def test_gemm_amx_steps_with_epilogue(xdt, wk, M, K, panel_pairs, out_bits, out_signed, threads, extreme, pow2,
                                      seed):
    """8-bit activations, N a multiple of 64, one K block (K <= 768) and the ONNX Runtime float32
    requantization on contiguous rows: amx._steps_b8 runs each (panel pair, tile pair) step's
    tiles and then requantizes the step before from a ring of two T buffers; 1 and 2 threads
    (tasks split over rows and panels), 8- and 16-bit outputs (the packed and the plain row
    stores), int4 weights, extreme values and power-of-two scales (rounding ties)."""
    rng = np.random.default_rng(seed)
    N = 64 * panel_pairs
    x = _rand(rng, xdt, (M, K), extreme)
    w, zw = _weights(rng, wk, (K, N), extreme)
    info = np.iinfo(xdt)
    zx = int(rng.integers(info.min, int(info.max) + 1))
    bias = rng.integers(-5000, 5000, N).astype(np.int32)
    fmt = IntFormat(out_bits, signed=out_signed)
    sx, sw, sy = _scales(rng, N, pow2)
    zy = int(rng.integers(fmt.qmin // 2, fmt.qmax // 2 + 1))
    p = GemmParams(x_zero_point=zx, w_zero_point=zw,
                   requant=RequantParams.create("onnxruntime", sx, sw, sy, fmt, zy))
    with _threads(threads):
        plan = vnni.gemm_plan(x, w, bias, p, amx=True)
        assert plan.__module__.endswith(".amx")
        got = plan(x, w, bias, p)
    with cpu.forced_path("portable"):
        ref = qgemm(x, w, bias, p)
    _same(got, ref)


def _at_offset(a, delta):
    """A copy of ``a`` (C order) starting ``delta`` bytes past a cache line."""
    raw = np.zeros(a.nbytes + 128, np.uint8)
    s = (-raw.ctypes.data) % 64 + delta
    x = raw[s:s + a.nbytes].view(a.dtype).reshape(a.shape)
    x[...] = a
    assert x.ctypes.data % 64 == delta
    return x


def _gemm_at_offset(seed, xdt, wdt, M, K, N, delta, extreme, pow2):
    """A requantized GEMM whose ``x`` starts ``delta`` bytes past a cache line, with read-only
    weights: (x, w, bias, params, AMX plan)."""
    rng = np.random.default_rng(seed)
    isz = np.dtype(xdt).itemsize
    x = _at_offset(_rand(rng, xdt, (M, K), extreme), delta)
    w = _rand(rng, wdt, (K, N), False)
    w.flags.writeable = False
    bias = rng.integers(-5000, 5000, N).astype(np.int32)
    acc = AccumParams(bits=64) if isz == 2 else AccumParams()
    p = GemmParams(x_zero_point=3, accum=acc, requant=_requant(rng, N, xdt, pow2))
    plan = vnni.gemm_plan(x, w, bias, p, amx=True)
    assert plan.__module__.endswith(".amx")
    return x, w, bias, p, plan


def _same_as_portable_qgemm(plan, x, w, bias, p):
    with cpu.forced_path("portable"):
        ref = qgemm(x, w, bias, p)
    _same(plan(x, w, bias, p), ref)


@pytest.mark.parametrize("xdt,wdt", [(np.uint8, np.int8), (np.int8, np.int8), (np.uint16, np.int16)])
@pytest.mark.parametrize("M", [64, 37])
def test_gemm_amx_one_plan_across_offsets(xdt, wdt, M):
    """One plan called with x at changing cache-line offsets: it first tries the launch of
    the previous call, which declines (-1) when x starts elsewhere; the results stay those of
    the portable kernel in every order (8 has no weight slot: an aligned copy runs)."""
    x, w, bias, p, plan = _gemm_at_offset(M, xdt, wdt, M, 128, 40, 0, False, False)
    for delta in (16, 16, 0, 48, 8, 8, 32, 0, 0):
        _same_as_portable_qgemm(plan, _at_offset(x, delta), w, bias, p)


@pytest.mark.parametrize("xdt,wdt", [(np.uint8, np.int8), (np.int8, np.int8), (np.int16, np.int8),
                                     (np.uint16, np.int16)])
@pytest.mark.parametrize("delta", [0, 16, 32, 48, 8])
@pytest.mark.parametrize("M", [48, 37])
def test_gemm_amx_misaligned_rows(xdt, wdt, delta, M):
    """Rows of a multiple of 64 bytes starting ``delta`` bytes past a cache line: read as
    aligned chunks with shifted weights (delta 8 has no slot of its own: an aligned copy runs)."""
    x, w, bias, p, plan = _gemm_at_offset(delta + M, xdt, wdt, M, 128, 40, delta, False, False)
    _same_as_portable_qgemm(plan, x, w, bias, p)


@pytest.mark.parametrize("xdt,wdt", [(np.uint8, np.int8), (np.int16, np.int8)])
@pytest.mark.parametrize("row_bytes", [96, 144, 288, 112])
@pytest.mark.parametrize("delta", [0, 16, 48, 8])
@pytest.mark.parametrize("M", [300, 256])
def test_gemm_amx_interleaved_rows(xdt, wdt, row_bytes, delta, M):
    """Rows of a multiple of 16 (not 64) bytes: tiles of every 2nd / 4th row, each tile's rows
    at one offset within a cache line, with per-offset weight slots; M past a whole block reads
    the tail copy; delta 8 has no slot of its own (an aligned copy of x runs)."""
    isz = np.dtype(xdt).itemsize
    assert amx._period(row_bytes) == 64 // np.gcd(row_bytes % 64, 64)
    x, w, bias, p, plan = _gemm_at_offset(delta + M + row_bytes, xdt, wdt, M, row_bytes // isz, 72, delta, True, True)
    cells = dict(zip(plan.__code__.co_freevars, (c.cell_contents for c in plan.__closure__)))
    if isz == 2:      # 16-bit activations with 8-bit weights: split into byte planes, no interleaving
        assert cells["launch"].fam == amx.FAM_SPLIT
    else:
        assert set(cells["launches"]) == {0, 16, 32, 48}
        assert len(set(cells["launches"][16].pslot.tolist())) > 1     # row classes on different slots
    _same_as_portable_qgemm(plan, x, w, bias, p)


def test_row_tiles_cover_rows_once():
    for M, per in ((300, 2), (256, 4), (31, 1), (97, 4)):
        tbase, rows, cls, block, stride = amx._row_tiles(M, 48, per)
        assert stride == 48 * per
        assert sorted(rows[rows < M].tolist()) == list(range(M))
        first = rows.reshape(-1, 16)[:, 0]
        assert np.array_equal(tbase, first * 48)
        assert np.array_equal((first % (32 * per)) % per, cls)


@pytest.mark.parametrize("xdt,C", [(np.uint8, 16), (np.uint8, 32), (np.int8, 48), (np.int16, 16), (np.uint16, 48)])
@pytest.mark.parametrize("k,d,NB", [(3, 1, 2), (3, 2, 1), (1, 1, 1)])
def test_conv_amx_pixels_of_16_to_48_bytes(xdt, C, k, d, NB):
    """Stride-1 convolution over pixels of 16/32/48 bytes, whose tile rows straddle cache
    lines (16-bit activations as two 8-bit images, low and high bytes)."""
    rng = np.random.default_rng(C + 10 * k + d)
    H, W, Cout = 19, 23, 40
    x = _rand(rng, xdt, (NB, C, H, W), True)
    w = _rand(rng, np.int8, (Cout, C, k, k), False)
    w.flags.writeable = False
    bias = rng.integers(-5000, 5000, Cout).astype(np.int32)
    info = np.iinfo(xdt)
    acc = AccumParams(bits=64) if np.dtype(xdt).itemsize == 2 else AccumParams()
    p = ConvParams(pads=(d,) * 4, dilations=(d, d), x_zero_point=int(info.min) + 5, accum=acc,
                   requant=_requant(rng, Cout, xdt, True))
    plan = vnni.conv_plan(x, w, bias, p, amx=True)
    assert plan.__module__.endswith(".amx")
    launch = dict(zip(plan.__code__.co_freevars, (c.cell_contents for c in plan.__closure__)))["launch"]
    assert launch.fam == (amx.FAM_PLANES if np.dtype(xdt).itemsize == 2 else
                          amx.FAM_S8 if np.dtype(xdt) == np.int8 else amx.FAM_U8)
    with cpu.forced_path("portable"):
        ref = qconv2d(x, w, bias, p)
    _same(plan(x, w, bias, p), ref)


_NRT_PROBE = """
import sys
import numpy as np
from numba.core.runtime import rtsys
from hwsim.cli.bench import conv_case, gemm_case, _threads
cases = [gemm_case("W8A8", 256, 256, 256), gemm_case("W8A8", 100, 200, 48), conv_case("W8A8", 32, 20, 20, 64, 3, 1, 1)]
with _threads(2):
    for c in cases:
        c.call()
        s0, r0 = rtsys.get_allocation_stats(), sys.getrefcount(c.x)
        for _ in range(20):
            c.call()
        s1, r1 = rtsys.get_allocation_stats(), sys.getrefcount(c.x)
        print(s1.alloc - s0.alloc - (s1.free - s0.free), s1.mi_alloc - s0.mi_alloc - (s1.mi_free - s0.mi_free), r1 - r0)
"""


def test_borrowed_arrays_keep_numba_allocations_balanced():
    """_run passes its arrays on without reference counts (amx._borrowed): 20 more calls of a
    plan leave Numba's allocation and meminfo counts and the activations' Python reference
    count where they were (a missing or an extra release shows as a difference or a crash)."""
    import subprocess
    import sys
    env = dict(os.environ, NUMBA_NRT_STATS="1")
    out = subprocess.run([sys.executable, "-c", _NRT_PROBE], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line.split() for line in out.stdout.splitlines()]
    assert rows == [["0", "0", "0"]] * 3, out.stdout

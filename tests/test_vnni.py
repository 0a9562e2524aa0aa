"""The fast paths (kernels/vnni.py, kernels/amx.py) give exactly the portable path's results.

Each case runs the public kernel with ``HWSIM_KERNEL_PATH=portable`` and then on every fast
path this CPU has (``vnni``; ``auto`` = AMX tiles where the CPU has them), and compares
outputs and KernelStats bit for bit.
"""
from __future__ import annotations

import numpy as np
import pytest

from hwsim.bits import IntFormat
from hwsim.kernels import (AccumParams, ConvParams, GemmParams, RequantParams, conv2d_acc, cpu, dispatch,
                           gemm_acc, pack_int4, qconv2d, qgemm)

pytestmark = pytest.mark.skipif(not cpu.has_vnni(), reason="CPU without AVX-512 VNNI")

SCHEMES = ["onnxruntime", "tflite_reference", "tflite_optimized", "tflite_reference_fc", "fbgemm",
           "onnx_reference", "tflite_single_rounding", "power_of_two"]


FAST = ["vnni"] + (["auto"] if cpu.has_amx() else [])


def _both(monkeypatch, fn, *args):
    """(portable result, last fast result), every fast path checked equal to the portable one."""
    monkeypatch.setenv("HWSIM_KERNEL_PATH", "portable")
    ref = fn(*args)
    for path in FAST:
        monkeypatch.setenv("HWSIM_KERNEL_PATH", path)
        got = fn(*args)
        _same(ref, got)
    return ref, got


def _same(ref, got):
    np.testing.assert_array_equal(got[0], ref[0])
    assert got[0].dtype == ref[0].dtype and got[0].shape == ref[0].shape
    assert got[1] == ref[1]


def _rand(rng, dt, shape, extreme=False):
    info = np.iinfo(dt)
    if extreme:
        return rng.choice(np.array([info.min, info.max], dt), size=shape)
    return rng.integers(info.min, int(info.max) + 1, size=shape).astype(dt)


def _rp(rng, scheme, n, out_dt, pow2=False):
    fmt = IntFormat(8 if np.dtype(out_dt).itemsize == 1 else 16, signed=np.dtype(out_dt).kind == "i")
    if pow2 or scheme == "power_of_two":
        sx, sw, sy = 2.0 ** -4, 2.0 ** -rng.integers(5, 9, n), 2.0 ** -int(rng.integers(-6, 0))
    else:
        sx, sw, sy = rng.uniform(0.01, 0.05), rng.uniform(0.001, 0.01, n), rng.uniform(0.05, 0.5)
    zy = int(rng.integers(fmt.qmin // 2, fmt.qmax // 2 + 1))
    kw = {}
    if scheme == "fbgemm":
        kw["bias_float"] = rng.uniform(-1, 1, n)
    return RequantParams.create(scheme, sx, sw, sy, fmt, zy, **kw)


CASES = [  # x dtype, weight kind, M, K, N
    (np.uint8, "i8", 37, 53, 70), (np.int8, "i8", 13, 64, 64), (np.uint8, "i4", 25, 29, 65),
    (np.int8, "i4", 7, 100, 130), (np.int16, "i8", 19, 45, 66), (np.uint16, "i8", 6, 31, 64),
    (np.int16, "i16", 11, 33, 17), (np.uint8, "u8", 12, 40, 64),
    (np.int16, "i8", 9, 1100, 70),   # K past one int32 block: int64 sums of blocks, 16x8 epilogue
]


@pytest.mark.parametrize("xdt,wk,M,K,N", CASES)
@pytest.mark.parametrize("extreme", [False, True])
def test_gemm_fast_equals_portable(monkeypatch, xdt, wk, M, K, N, extreme):
    rng = np.random.default_rng(M * 1000 + K + extreme)
    x = _rand(rng, xdt, (M, K), extreme)
    zw = 0
    if wk == "i4":
        wv = rng.choice([-8, 7], size=(K, N)) if extreme else rng.integers(-8, 8, (K, N))
        w = pack_int4(wv.astype(np.int8))
    elif wk == "u8":
        w = _rand(rng, np.uint8, (K, N), extreme)
        zw = 128
    else:
        w = _rand(rng, {"i8": np.int8, "i16": np.int16}[wk], (K, N), extreme)
    if wk == "i16":
        w = (w // 4).astype(np.int16)   # keeps K * max|x| * max|w| inside int64 / the pair inside int32
    zx = int(np.iinfo(xdt).max // 3) if not extreme else int(np.iinfo(xdt).min)
    bias = rng.integers(-5000, 5000, N).astype(np.int32)
    acc = AccumParams(bits=64) if np.dtype(xdt).itemsize == 2 else AccumParams()
    p = GemmParams(x_zero_point=zx, w_zero_point=zw, accum=acc)
    assert dispatch.fast_path("gemm", x=x, w=w, bias=bias, params=p) is not None
    _same(*_both(monkeypatch, gemm_acc, x, w, bias, p))
    out_dt = np.int16 if np.dtype(xdt).itemsize == 2 else np.uint8
    for scheme in (SCHEMES if not extreme else SCHEMES[:3]):
        if np.dtype(xdt).itemsize == 2 and scheme == "tflite_reference":
            scheme = "tflite_16x8"
        rp = _rp(rng, scheme, N, out_dt, pow2=extreme)
        q = p.replace(requant=rp)
        _same(*_both(monkeypatch, qgemm, x, w, bias, q))


def test_gemm_batched_lead_dims(monkeypatch):
    rng = np.random.default_rng(5)
    x = _rand(rng, np.uint8, (2, 3, 50))
    w = _rand(rng, np.int8, (50, 70))
    p = GemmParams(x_zero_point=3, requant=_rp(rng, "onnxruntime", 70, np.uint8))
    _same(*_both(monkeypatch, qgemm, x, w, None, p))


def test_overflow_possible_falls_back():
    x = np.full((2, 70000), 255, np.uint8)
    w = np.full((70000, 3), -128, np.int8)
    assert dispatch.fast_path("gemm", x=x, w=w, bias=None, params=GemmParams()) is None
    p = GemmParams(accum=AccumParams(pairwise_int16=True))
    assert dispatch.fast_path("gemm", x=x[:, :8], w=w[:8], bias=None, params=p) is None


def test_env_forces_portable(monkeypatch):
    x = np.zeros((2, 8), np.uint8)
    w = np.zeros((8, 3), np.int8)
    monkeypatch.setenv("HWSIM_KERNEL_PATH", "portable")
    assert dispatch.fast_path("gemm", x=x, w=w, bias=None, params=GemmParams()) is None
    monkeypatch.setenv("HWSIM_KERNEL_PATH", "bogus")
    from hwsim.errors import ConfigError
    with pytest.raises(ConfigError):
        cpu.kernel_path()


CONV = [  # x dtype, weight kind, N, C, H, W, Cout, k, stride, pad, dil
    (np.uint8, "i8", 1, 5, 9, 11, 70, 3, 1, 1, 1), (np.int8, "i8", 2, 16, 7, 6, 64, 3, 2, 1, 1),
    (np.uint8, "i4", 1, 8, 8, 8, 20, 1, 1, 0, 1), (np.int16, "i8", 1, 6, 6, 9, 33, 3, 1, 2, 2),
    (np.uint8, "i8", 1, 3, 10, 10, 8, 5, 2, 2, 1),
]


@pytest.mark.parametrize("xdt,wk,NB,C,H,W,Cout,k,s,pad,d", CONV)
def test_conv_fast_equals_portable(monkeypatch, xdt, wk, NB, C, H, W, Cout, k, s, pad, d):
    rng = np.random.default_rng(C * 100 + H)
    x = _rand(rng, xdt, (NB, C, H, W))
    if wk == "i4":
        w = pack_int4(rng.integers(-8, 8, (Cout, C, k, k)).astype(np.int8))
    else:
        w = _rand(rng, np.int8, (Cout, C, k, k))
    zx = int(np.iinfo(xdt).max // 2)
    bias = rng.integers(-5000, 5000, Cout).astype(np.int32)
    acc = AccumParams(bits=64) if np.dtype(xdt).itemsize == 2 else AccumParams()
    p = ConvParams(strides=(s, s), pads=(pad, pad, pad, pad), dilations=(d, d), x_zero_point=zx, accum=acc)
    assert dispatch.fast_path("conv", x=x, w=w, bias=bias, params=p) is not None
    _same(*_both(monkeypatch, conv2d_acc, x, w, bias, p))
    out_dt = np.int16 if np.dtype(xdt).itemsize == 2 else np.int8
    for scheme in ("onnxruntime", "tflite_optimized"):
        rp = _rp(rng, scheme, Cout, out_dt)
        _same(*_both(monkeypatch, qconv2d, x, w, bias, p.replace(requant=rp)))


DW = [  # x dtype, N, C, mult, H, W, k, stride, pad, dil
    (np.uint8, 1, 32, 1, 14, 13, 3, 1, 1, 1), (np.int8, 2, 8, 1, 9, 9, 3, 2, 1, 1),
    (np.uint8, 1, 4, 2, 8, 10, 5, 1, 2, 2), (np.int16, 1, 6, 1, 7, 7, 3, 1, 1, 1),
]


@pytest.mark.parametrize("xdt,NB,C,mult,H,W,k,s,pad,d", DW)
def test_depthwise_fast_equals_portable(monkeypatch, xdt, NB, C, mult, H, W, k, s, pad, d):
    rng = np.random.default_rng(C * 10 + H)
    x = _rand(rng, xdt, (NB, C, H, W))
    w = _rand(rng, np.int8, (C * mult, 1, k, k))
    zx = int(np.iinfo(xdt).max // 2)
    bias = rng.integers(-5000, 5000, C * mult).astype(np.int32)
    p = ConvParams(strides=(s, s), pads=(pad,) * 4, dilations=(d, d), groups=C, x_zero_point=zx)
    assert dispatch.fast_path("depthwise", x=x, w=w, bias=bias, params=p) is not None
    _same(*_both(monkeypatch, conv2d_acc, x, w, bias, p))
    out_dt = np.int16 if np.dtype(xdt).itemsize == 2 else np.uint8
    for scheme in ("onnxruntime", "tflite_reference", "power_of_two"):
        rp = _rp(rng, scheme, C * mult, out_dt)
        _same(*_both(monkeypatch, qconv2d, x, w, bias, p.replace(requant=rp)))


def test_conv_w16a16_splits_taps(monkeypatch):
    """Full-scale int16 x int16 taps overflow int32 partial sums: the taps are split into
    channel chunks summed in int64 (accumulator int64)."""
    rng = np.random.default_rng(3)
    x = _rand(rng, np.int16, (1, 10, 5, 6))
    w = rng.integers(-16384, 16384, (9, 10, 3, 3)).astype(np.int16)
    p = ConvParams(pads=(1, 1, 1, 1), accum=AccumParams(bits=64))
    assert dispatch.fast_path("conv", x=x, w=w, bias=None, params=p) is not None
    _same(*_both(monkeypatch, conv2d_acc, x, w, None, p))

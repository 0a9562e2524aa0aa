"""The depthwise fast path (kernels/vnni_dw.py) gives exactly the portable path's results.

Property test over random problems (shapes, channel multipliers, kernel sizes, strides,
paddings, dilations, zero points, int8 / int4 / uint8 / int16 weights, 8- and 16-bit
activations, every requantization scheme with per-channel or per-tensor, random or
power-of-two scales); both kernels (row-window and plane) are checked, and outputs and
KernelStats must be bit-identical to ``HWSIM_KERNEL_PATH=portable``.
"""
from __future__ import annotations

import numpy as np
import pytest
from hwsim.kernels import (
    AccumParams,
    ConvParams,
    PackedInt4,
    RequantParams,
    conv2d_acc,
    cpu,
    dispatch,
    pack_int4,
    qconv2d,
    vnni_dw,
)
from hwsim.kernels.schemes import Requant
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwsim.bits import IntFormat

pytestmark = pytest.mark.skipif(not cpu.has_vnni(), reason="CPU without AVX-512 VNNI")


def _run(monkeypatch, fn, *args):
    monkeypatch.setenv("HWSIM_KERNEL_PATH", "portable")
    ref = fn(*args)
    monkeypatch.setenv("HWSIM_KERNEL_PATH", "auto")
    got = fn(*args)
    np.testing.assert_array_equal(got[0], ref[0])
    assert got[0].dtype == ref[0].dtype and got[0].shape == ref[0].shape
    assert got[1] == ref[1]


def _kernel(x, w, bias, p):
    fn = dispatch.fast_path("depthwise", x=x, w=w, bias=bias, params=p)
    return None if fn is None else fn.kernel


XDT = [np.uint8, np.int8, np.uint16, np.int16]


@st.composite
def problems(draw):
    xdt = draw(st.sampled_from(XDT))
    wk = draw(st.sampled_from(["i8", "i4", "u8", "i16"] if np.dtype(xdt).itemsize == 2 else ["i8", "i4", "u8"]))
    NB = draw(st.integers(1, 2))
    C = draw(st.integers(1, 40))
    mult = draw(st.sampled_from([1, 1, 1, 2]))
    KH, KW = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    if draw(st.booleans()):
        KH = KW = 3
    sh, sw = draw(st.sampled_from([(1, 1), (1, 1), (2, 2), (1, 2), (2, 1), (3, 3)]))
    dh, dw = draw(st.sampled_from([(1, 1), (1, 1), (2, 2), (1, 3)]))
    pads = tuple(draw(st.integers(0, 3)) for _ in range(4))
    H = draw(st.integers(max(1, dh * (KH - 1) + 1 - pads[0] - pads[2]), 24))
    W = draw(st.integers(max(1, dw * (KW - 1) + 1 - pads[1] - pads[3]), 70))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    info = np.iinfo(xdt)
    extreme = draw(st.booleans())
    if extreme:
        x = rng.choice(np.array([info.min, info.max], np.int64), size=(NB, C, H, W)).astype(xdt)
    else:
        x = rng.integers(info.min, int(info.max) + 1, (NB, C, H, W)).astype(xdt)
    zx = draw(st.sampled_from([0, int(info.min), int(info.max), int(rng.integers(info.min, int(info.max) + 1))]))
    Cout = C * mult
    zw = 0
    if wk == "i8":
        w = rng.integers(-128, 128, (Cout, 1, KH, KW)).astype(np.int8)
    elif wk == "i4":
        w = pack_int4(rng.integers(-8, 8, (Cout, 1, KH, KW)).astype(np.int8))
    elif wk == "u8":
        w = rng.integers(0, 256, (Cout, 1, KH, KW)).astype(np.uint8)
        zw = draw(st.sampled_from([128, 0, "per_channel"]))
        if zw == "per_channel":
            zw = rng.integers(100, 156, Cout)
    else:
        w = rng.integers(-300, 300, (Cout, 1, KH, KW)).astype(np.int16)
    bias = draw(st.sampled_from([None, "small", "big"]))
    if bias == "small":
        bias = rng.integers(-5000, 5000, Cout).astype(np.int32)
    elif bias == "big":
        bias = rng.integers(-2 ** 28, 2 ** 28, Cout).astype(np.int64)
    acc = AccumParams(bits=64) if np.dtype(xdt).itemsize == 2 else AccumParams()
    p = ConvParams(strides=(sh, sw), pads=pads, dilations=(dh, dw), groups=C, x_zero_point=zx, w_zero_point=zw,
                   accum=acc)
    return x, w, bias, p, rng, draw(st.booleans()), draw(st.sampled_from(list(Requant)))


def _requant(rng, scheme, n, out_dt, pow2, per_channel):
    fmt = IntFormat(8 * np.dtype(out_dt).itemsize, signed=np.dtype(out_dt).kind == "i")
    nch = n if per_channel else 1
    if pow2 or scheme is Requant.POWER_OF_TWO:
        sx, sw, sy = 2.0 ** -4, 2.0 ** -rng.integers(5, 9, nch), 2.0 ** -int(rng.integers(-6, 0))
    else:
        sx, sw, sy = rng.uniform(0.01, 0.05), rng.uniform(0.001, 0.01, nch), rng.uniform(0.05, 0.5)
    if nch == 1:
        sw = float(np.ravel(sw)[0])
    zy = int(rng.integers(fmt.qmin // 2, fmt.qmax // 2 + 1))
    kw = {}
    if scheme is Requant.FBGEMM:
        kw["bias_float"] = rng.uniform(-1, 1, n)
    return RequantParams.create(scheme.value, sx, sw, sy, fmt, zy, **kw)


@pytest.mark.parametrize("rows", [True, False], ids=["rows", "plane"])
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                 HealthCheck.function_scoped_fixture])
@given(prob=problems())
def test_depthwise_fast_equals_portable(monkeypatch, rows, prob):
    x, w, bias, p, rng, pow2, scheme = prob
    monkeypatch.setattr(vnni_dw, "ROWS", rows)
    _run(monkeypatch, conv2d_acc, x, w, bias, p)
    if scheme is Requant.TFLITE_16X8 and np.dtype(x.dtype).itemsize == 1:
        scheme = Requant.TFLITE_REFERENCE
    if scheme is not Requant.TFLITE_16X8 and np.dtype(x.dtype).itemsize == 2 and rng.integers(2):
        scheme = Requant.TFLITE_16X8
    out_dt = rng.choice([np.uint8, np.int8, np.int16]) if scheme is not Requant.TFLITE_16X8 else np.int16
    rp = _requant(rng, scheme, w.shape[0], out_dt, pow2, bool(rng.integers(2)))
    _run(monkeypatch, qconv2d, x, w, bias, p.replace(requant=rp))


PAIRS = {  # bench pairs: x dtype, zx, weights
    "W8A8": (np.uint8, 128, "i8"), "W8A8s8": (np.int8, 0, "i8"), "W4A8": (np.uint8, 128, "i4"),
    "W8A16": (np.int16, 0, "i8"),
}


@pytest.mark.parametrize("pair", list(PAIRS))
@pytest.mark.parametrize("shape", [(1, 32, 112, 112, 1, 1), (2, 19, 17, 37, 1, 1), (1, 24, 30, 45, 2, 1),
                                   (1, 8, 9, 16, 1, 0), (1, 5, 4, 3, 1, 2), (1, 16, 33, 64, 2, 1),
                                   (2, 7, 7, 33, 2, 0), (1, 70, 7, 7, 1, 1)])
def test_row_window_kernel_taken_and_exact(monkeypatch, pair, shape):
    NB, C, H, W, s, pad = shape
    xdt, zx, wk = PAIRS[pair]
    rng = np.random.default_rng(C * H + W)
    info = np.iinfo(xdt)
    x = rng.integers(info.min, int(info.max) + 1, (NB, C, H, W)).astype(xdt)
    if wk == "i4":
        p4 = pack_int4(rng.integers(-8, 8, (C, 1, 3, 3)).astype(np.int8))
        data = p4.data.copy()
        data.flags.writeable = False
        w = PackedInt4(data, p4.shape, p4.signed)
    else:
        w = rng.integers(-127, 128, (C, 1, 3, 3)).astype(np.int8)
        w.flags.writeable = False         # constants: the plan's weight arrays are cached
    bias = rng.integers(-1000, 1000, C).astype(np.int32)
    acc = AccumParams(bits=64) if np.dtype(xdt).itemsize == 2 else AccumParams()
    p = ConvParams(strides=(s, s), pads=(pad,) * 4, groups=C, x_zero_point=zx, accum=acc)
    if pair != "W8A16" and not vnni_dw._has_vbmi():
        pytest.skip("no AVX512-VBMI")
    assert _kernel(x, w, bias, p) == "rows"
    _run(monkeypatch, conv2d_acc, x, w, bias, p)
    for scheme in ("onnxruntime", "tflite_optimized", "tflite_reference", "fbgemm"):
        if pair == "W8A16":
            scheme = {"onnxruntime": "onnxruntime", "tflite_reference": "tflite_16x8"}.get(scheme, scheme)
        fmt = IntFormat(16) if pair == "W8A16" else IntFormat(8, signed=pair == "W8A8s8")
        kw = {"bias_float": rng.uniform(-1, 1, C)} if scheme == "fbgemm" else {}
        rp = RequantParams.create(scheme, 0.02, rng.uniform(0.001, 0.01, C), 0.3 if fmt.bits == 8 else 0.002, fmt,
                                  0, **kw)
        _run(monkeypatch, qconv2d, x, w, bias, p.replace(requant=rp))


def test_plane_kernel_when_weights_exceed_int8(monkeypatch):
    """uint8 weights with zero point 0 do not fit vpdpbusd's int8 operand: plane kernel."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (1, 4, 9, 9)).astype(np.uint8)
    w = rng.integers(0, 256, (4, 1, 3, 3)).astype(np.uint8)
    p = ConvParams(pads=(1,) * 4, groups=4, x_zero_point=7)
    assert _kernel(x, w, None, p) == "plane"
    _run(monkeypatch, conv2d_acc, x, w, None, p)


def test_without_vbmi_8bit_falls_back_to_plane(monkeypatch):
    """Without AVX512-VBMI (no vpermb) 8-bit inputs use the plane kernel; 16-bit ones keep
    the row-window kernel (vpermw is AVX512BW)."""
    monkeypatch.setattr(vnni_dw, "_has_vbmi", lambda: False)
    rng = np.random.default_rng(1)
    w = rng.integers(-127, 128, (6, 1, 3, 3)).astype(np.int8)
    for xdt, zx in ((np.uint8, 3), (np.int16, -5)):
        info = np.iinfo(xdt)
        x = rng.integers(info.min, int(info.max) + 1, (1, 6, 10, 21)).astype(xdt)
        acc = AccumParams(bits=64) if np.dtype(xdt).itemsize == 2 else AccumParams()
        p = ConvParams(pads=(1,) * 4, groups=6, x_zero_point=zx, accum=acc)
        assert _kernel(x, w, None, p) == ("plane" if xdt == np.uint8 else "rows")
        _run(monkeypatch, conv2d_acc, x, w, None, p)

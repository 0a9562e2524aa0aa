"""LiteRT bit-exactness: single-op .tflite models vs hwsim.kernels, 0 mismatches required.

Every model is built in code (tests/litert_models.py) and run under LiteRT's reference
resolver (BUILTIN_REF) and its optimized resolver without delegates
(BUILTIN_WITHOUT_DEFAULT_DELEGATES). The matching scheme per resolver:

=================== ======================= ==========================
op                  reference resolver      optimized resolver
=================== ======================= ==========================
CONV_2D, DEPTHWISE  tflite_reference        tflite_optimized (ruy)
FULLY_CONNECTED     tflite_reference_fc     tflite_optimized
int16x8 CONV_2D     tflite_16x8             tflite_16x8
ADD, MUL            tflite_reference        tflite_optimized
AVERAGE_POOL_2D     ties away               ties away
QUANTIZE            half_away of x/s        half_even of x*f32(1/s)
=================== ======================= ==========================

Many outputs per invoke (large spatial sizes); power-of-two scales in every op (ties).
``python3 -m pytest -q -s tests/test_litert_bitexact.py`` prints the per-scheme totals.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from litert_models import (RESOLVERS, add_model, avg_pool_model, conv2d_model,  # noqa: E402
                           depthwise_model, fully_connected_model, max_pool_model, mul_model,
                           quantize_model, run_model, unary_model)

from hwsim.bits import IntFormat  # noqa: E402
from hwsim.kernels import (AccumParams, ConvParams, GemmParams, RequantParams, qconv2d, qgemm,  # noqa: E402
                           quantize)
from hwsim.kernels.quantize import round_f32  # noqa: E402
from hwsim.kernels.elementwise import add_tflite, mul_tflite, tflite_add_params, tflite_mul_params  # noqa: E402
from hwsim.kernels.lut import (SIGMOID_OUT, TANH_OUT, apply_lut, sigmoid_lut, tanh_lut,  # noqa: E402
                               tflite_hard_swish_lut)
from hwsim.kernels.pool import avg_pool, max_pool, same_pads  # noqa: E402

#: (scheme, op, resolver) -> [outputs compared, mismatches]
COUNTS: dict = {}
CONV_SCHEME = {"reference": "tflite_reference", "optimized": "tflite_optimized"}
FC_SCHEME = {"reference": "tflite_reference_fc", "optimized": "tflite_optimized"}


def _record(scheme, op, resolver, got, want):
    assert got.shape == want.shape, (op, resolver, got.shape, want.shape)
    bad = int(np.count_nonzero(got != want))
    c = COUNTS.setdefault((scheme, op, resolver), [0, 0])
    c[0] += got.size
    c[1] += bad
    return bad


def _scale(rng, pot, lo_exp, hi_exp):
    """A float32 scale: an exact power of two, or a random mantissa in the same range."""
    e = int(rng.integers(lo_exp, hi_exp + 1))
    if pot:
        return float(2.0 ** e)
    return float(np.float32(rng.uniform(1.0, 2.0) * 2.0 ** e))


def _wscales(rng, pot, n):
    return np.array([_scale(rng, pot, -9, -6) for _ in range(n)], np.float32)


def _out_scale(rng, pot, sx, sw, k):
    """An output scale that keeps most outputs inside int8 (acc spread ~ sqrt(K)*64*64)."""
    target = float(sx) * float(np.mean(sw)) * np.sqrt(k) * 64.0 * 40.0 / 127.0
    e = int(np.floor(np.log2(target)))
    return float(2.0 ** e) if pot else float(np.float32(target * rng.uniform(0.7, 1.3)))


def _same_pads(hw, k, s, d):
    eff = [(kk - 1) * dd + 1 for kk, dd in zip(k, d)]
    return same_pads(hw, eff, s)


# ----------------------------------------------------------------------------- conv family

CONV_CASES = [
    # (N, H, W, Cin, Cout, K, stride, dilation, padding, activation, pot)
    (1, 72, 72, 8, 16, (3, 3), (1, 1), (1, 1), "SAME", "NONE", True),
    (1, 72, 72, 8, 16, (3, 3), (1, 1), (1, 1), "SAME", "NONE", False),
    (2, 57, 61, 5, 12, (5, 3), (2, 1), (1, 2), "VALID", "RELU6", True),
    (1, 64, 64, 6, 24, (1, 1), (1, 1), (1, 1), "VALID", "RELU", False),
    (1, 65, 65, 4, 8, (3, 3), (2, 2), (1, 1), "SAME", "NONE", True),
    (1, 40, 40, 5, 13, (3, 3), (1, 1), (1, 1), "SAME", "NONE", False),   # odd Cout
]


def _conv_problem(rng, case, act_dtype="int8"):
    N, H, W, Cin, Cout, K, stride, dil, padding, act, pot = case
    sx = _scale(rng, pot, -7, -5)
    sw = _wscales(rng, pot, Cout)
    sy = _out_scale(rng, pot, sx, sw, Cin * K[0] * K[1])
    if act_dtype == "int16":
        zx, zy = 0, 0      # int16 activations are symmetric in TFLite
        x = rng.integers(-32768, 32768, (N, H, W, Cin)).astype(np.int16)
    else:
        zx, zy = (int(v) for v in rng.integers(-100, 100, 2))
        x = rng.integers(-128, 128, (N, H, W, Cin)).astype(np.int8)
        x.flat[: Cin * 7] = 127
        x.flat[Cin * 7: Cin * 14] = -128
    w = rng.integers(-127, 128, (Cout, K[0], K[1], Cin)).astype(np.int8)
    w[0] = 127
    b = rng.integers(-3000, 3000, Cout)
    return x, w, b, sx, sw, sy, zx, zy


def _conv_ours(x, w_oihw, bias, sx, sw, sy, zx, zy, scheme, pads, stride, dil, groups, act, fmt):
    rp = RequantParams.create(scheme, sx, sw, sy, fmt, zy,
                              activation=None if act == "NONE" else act.lower())
    accum = AccumParams(bits=64 if scheme == "tflite_16x8" else 32)
    p = ConvParams(strides=stride, pads=pads, dilations=dil, groups=groups, x_zero_point=zx,
                   accum=accum, requant=rp)
    y, _ = qconv2d(x.transpose(0, 3, 1, 2), w_oihw, bias, p)
    return y.transpose(0, 2, 3, 1)


@pytest.mark.parametrize("resolver", RESOLVERS)
def test_conv2d(resolver):
    rng = np.random.default_rng(11)
    for case in CONV_CASES:
        x, w, b, sx, sw, sy, zx, zy = _conv_problem(rng, case)
        N, H, W, Cin, Cout, K, stride, dil, padding, act, pot = case
        pads = _same_pads((H, W), K, stride, dil) if padding == "SAME" else (0, 0, 0, 0)
        scheme = CONV_SCHEME[resolver]
        want = _conv_ours(x, w.transpose(0, 3, 1, 2), b, sx, sw, sy, zx, zy, scheme, pads, stride,
                          dil, 1, act, IntFormat(8))
        model = conv2d_model(x.shape, w, b.astype(np.int32), (sx, zx), (sw, 0), (sy, zy),
                             want.shape, stride=stride, dilation=dil, padding=padding,
                             activation=act)
        got = run_model(model, [x], resolver)
        assert _record(scheme, "CONV_2D", resolver, got, want) == 0, case


DW_CASES = [
    (1, 96, 96, 16, 1, (3, 3), (1, 1), (1, 1), "SAME", "NONE", True),
    (1, 96, 96, 16, 1, (3, 3), (1, 1), (1, 1), "SAME", "RELU6", False),
    (2, 50, 47, 8, 2, (5, 5), (2, 2), (1, 1), "VALID", "NONE", True),
    (1, 64, 64, 12, 1, (3, 3), (1, 1), (2, 2), "SAME", "NONE", False),
    (1, 64, 64, 13, 1, (3, 3), (1, 1), (1, 1), "SAME", "NONE", True),
    (1, 40, 40, 6, 3, (3, 3), (2, 2), (1, 1), "VALID", "NONE", False),
]


def _dw_ours(resolver, x, w_oihw, b, sx, sw, sy, zx, zy, pads, stride, dil, C, act):
    """Our qconv2d with the resolver's scheme. (With ``tflite_optimized``, qconv2d itself
    requantizes the last ``Cout % 8`` depthwise channels with the reference rounding, as
    LiteRT's optimized kernel does; the cases below include Cout % 8 != 0.)"""
    return _conv_ours(x, w_oihw, b, sx, sw, sy, zx, zy, CONV_SCHEME[resolver], pads, stride, dil, C,
                      act, IntFormat(8))


@pytest.mark.parametrize("resolver", RESOLVERS)
def test_depthwise(resolver):
    rng = np.random.default_rng(12)
    for case in DW_CASES:
        N, H, W, C, mult, K, stride, dil, padding, act, pot = case
        Cout = C * mult
        sx = _scale(rng, pot, -7, -5)
        sw = _wscales(rng, pot, Cout)
        sy = _out_scale(rng, pot, sx, sw, K[0] * K[1])
        zx, zy = (int(v) for v in rng.integers(-100, 100, 2))
        x = rng.integers(-128, 128, (N, H, W, C)).astype(np.int8)
        x.flat[: C * 9] = -128
        w = rng.integers(-127, 128, (1, K[0], K[1], Cout)).astype(np.int8)
        b = rng.integers(-2000, 2000, Cout)
        pads = _same_pads((H, W), K, stride, dil) if padding == "SAME" else (0, 0, 0, 0)
        scheme = CONV_SCHEME[resolver]
        w_oihw = w[0].transpose(2, 0, 1)[:, None]          # 1HWO -> (Cout, 1, KH, KW)
        want = _dw_ours(resolver, x, w_oihw, b, sx, sw, sy, zx, zy, pads, stride, dil, C, act)
        model = depthwise_model(x.shape, w, b.astype(np.int32), (sx, zx), (sw, 0), (sy, zy),
                                want.shape, stride=stride, dilation=dil, padding=padding,
                                depth_multiplier=mult, activation=act)
        got = run_model(model, [x], resolver)
        assert _record(scheme, "DEPTHWISE_CONV_2D", resolver, got, want) == 0, case


FC_CASES = [
    # (rows, K, O, per_channel, activation, pot)
    (2560, 64, 128, True, "NONE", True),
    (2560, 64, 128, True, "NONE", False),
    (2000, 100, 96, False, "RELU", True),
    (2000, 100, 96, False, "NONE", False),
    (3000, 64, 13, True, "NONE", True),                                  # odd O
]


@pytest.mark.parametrize("resolver", RESOLVERS)
def test_fully_connected(resolver):
    rng = np.random.default_rng(13)
    for case in FC_CASES:
        rows, K, O, per_channel, act, pot = case
        sx = _scale(rng, pot, -7, -5)
        sw = _wscales(rng, pot, O) if per_channel else np.full(1, _scale(rng, pot, -9, -6), np.float32)
        sy = _out_scale(rng, pot, sx, sw, K)
        zx, zy = (int(v) for v in rng.integers(-100, 100, 2))
        x = rng.integers(-128, 128, (rows, K)).astype(np.int8)
        x[:3] = 127
        w = rng.integers(-127, 128, (O, K)).astype(np.int8)
        b = rng.integers(-5000, 5000, O)
        scheme = FC_SCHEME[resolver]
        rp = RequantParams.create(scheme, sx, np.broadcast_to(sw, (O,)) if per_channel else sw[0],
                                  sy, IntFormat(8), zy,
                                  activation=None if act == "NONE" else act.lower())
        want, _ = qgemm(x, w.T.copy(), b, GemmParams(x_zero_point=zx, requant=rp))
        model = fully_connected_model(x.shape, w, b.astype(np.int32), (sx, zx),
                                      (sw if per_channel else sw[0], 0), (sy, zy), want.shape,
                                      activation=act)
        got = run_model(model, [x], resolver)
        assert _record(scheme, "FULLY_CONNECTED", resolver, got, want) == 0, case


@pytest.mark.parametrize("resolver", RESOLVERS)
def test_conv2d_int16x8_int64_bias(resolver):
    rng = np.random.default_rng(14)
    cases = [
        (1, 112, 112, 8, 16, (3, 3), (1, 1), (1, 1), "SAME", "NONE", True),
        (1, 112, 112, 8, 16, (3, 3), (1, 1), (1, 1), "SAME", "NONE", False),
        (1, 120, 120, 4, 16, (5, 5), (2, 2), (1, 1), "VALID", "RELU", False),
        (1, 80, 80, 16, 8, (1, 1), (1, 1), (1, 1), "VALID", "NONE", True),
    ]
    for case in cases:
        x, w, b, sx, sw, sy, zx, zy = _conv_problem(rng, case, "int16")
        N, H, W, Cin, Cout, K, stride, dil, padding, act, pot = case
        b = rng.integers(-(2 ** 24), 2 ** 24, Cout)
        b[:2] = rng.integers(-(2 ** 34), 2 ** 34, 2)      # beyond int32: needs the int64 bias
        pads = _same_pads((H, W), K, stride, dil) if padding == "SAME" else (0, 0, 0, 0)
        want = _conv_ours(x, w.transpose(0, 3, 1, 2), b, sx, sw, sy, zx, zy, "tflite_16x8", pads,
                          stride, dil, 1, act, IntFormat(16))
        model = conv2d_model(x.shape, w, b.astype(np.int64), (sx, zx), (sw, 0), (sy, zy),
                             want.shape, act_dtype="int16", stride=stride, dilation=dil,
                             padding=padding, activation=act, bias_dtype="int64")
        got = run_model(model, [x], resolver)
        assert _record("tflite_16x8", "CONV_2D_16x8", resolver, got, want) == 0, case


# ----------------------------------------------------------------------------- elementwise

@pytest.mark.parametrize("resolver", RESOLVERS)
def test_add(resolver):
    rng = np.random.default_rng(15)
    shapes = [((1, 64, 64, 32), (1, 64, 64, 32)), ((1, 64, 64, 36), (1, 1, 1, 36)),
              ((1, 64, 64, 32), (1, 64, 64, 1)), ((1, 1, 1, 1), (1, 64, 64, 20))]
    for t in range(12):
        dtype = "int8" if t < 8 else "int16"
        pot = t % 2 == 0
        sa, sb, sy = (_scale(rng, pot, -8, -3) for _ in range(3))
        info = np.iinfo(dtype)
        za, zb, zy = ((0, 0, 0) if dtype == "int16" else
                      (int(v) for v in rng.integers(-128, 128, 3)))
        sha, shb = shapes[t % 4]
        a = rng.integers(info.min, info.max + 1, sha).astype(dtype)
        b = rng.integers(info.min, info.max + 1, shb).astype(dtype)
        a.flat[:2] = (info.min, info.max)
        b.flat[:2] = (info.max, info.min)
        act = "RELU" if t == 5 else "NONE"
        p = tflite_add_params(sa, za, sb, zb, sy, zy, dtype,
                              act_min=zy if act == "RELU" else None)
        want = add_tflite(a, b, p, optimized=(resolver == "optimized"))
        model = add_model(sha, shb, dtype, (sa, za), (sb, zb), (sy, zy), activation=act)
        got = run_model(model, [a, b], resolver)
        assert _record(CONV_SCHEME[resolver], "ADD", resolver, got, want) == 0, (t, sa, sb, sy)


@pytest.mark.parametrize("resolver", RESOLVERS)
def test_mul(resolver):
    rng = np.random.default_rng(16)
    for t in range(6):
        dtype = "int8" if t < 4 else "int16"
        pot = t % 2 == 0
        sa, sb = _scale(rng, pot, -6, -3), _scale(rng, pot, -6, -3)
        sy = _scale(rng, pot, -8, -5) if dtype == "int8" else sa * sb * 64.0
        info = np.iinfo(dtype)
        za, zb, zy = ((0, 0, 0) if dtype == "int16" else
                      (int(v) for v in rng.integers(-128, 128, 3)))
        sha, shb = [((1, 48, 48, 32), (1, 48, 48, 32)), ((1, 48, 48, 30), (1, 1, 1, 30)),
                    ((1, 48, 48, 1), (1, 48, 48, 24))][t % 3]
        a = rng.integers(info.min, info.max + 1, sha).astype(dtype)
        b = rng.integers(info.min, info.max + 1, shb).astype(dtype)
        p = tflite_mul_params(sa, za, sb, zb, sy, zy, dtype)
        want = mul_tflite(a, b, p, optimized=(resolver == "optimized"))
        got = run_model(mul_model(sha, shb, dtype, (sa, za), (sb, zb), (sy, zy)), [a, b], resolver)
        assert _record(CONV_SCHEME[resolver], "MUL", resolver, got, want) == 0, t


# ----------------------------------------------------------------------------- pooling, LUT

@pytest.mark.parametrize("resolver", RESOLVERS)
def test_pools(resolver):
    rng = np.random.default_rng(17)
    for t in range(6):
        dtype = "int8" if t < 4 else "int16"
        k = [(2, 2), (3, 3), (5, 3)][t % 3]
        s = [(1, 1), (2, 2), (2, 1)][t % 3]
        padding = ["VALID", "SAME"][t % 2]
        N, H, W, C = 2, 64, 61, 16
        info = np.iinfo(dtype)
        x = rng.integers(info.min, info.max + 1, (N, H, W, C)).astype(dtype)
        x[0, :6] = info.max
        x[1, :6] = info.min
        pads = same_pads((H, W), k, s) if padding == "SAME" else (0, 0, 0, 0)
        q = (0.05, 3 if dtype == "int8" else 0)
        xn = x.transpose(0, 3, 1, 2)
        want_avg = avg_pool(xn, k, s, pads).transpose(0, 2, 3, 1)
        got = run_model(avg_pool_model(x.shape, dtype, q, k, s, padding, want_avg.shape), [x], resolver)
        assert _record("avgpool_half_away", "AVERAGE_POOL_2D", resolver, got, want_avg) == 0, t
        want_max = max_pool(xn, k, s, pads).transpose(0, 2, 3, 1)
        got = run_model(max_pool_model(x.shape, dtype, q, k, s, padding, want_max.shape), [x], resolver)
        assert _record("maxpool", "MAX_POOL_2D", resolver, got, want_max) == 0, t


@pytest.mark.parametrize("resolver", RESOLVERS)
def test_logistic_tanh_hardswish_lut(resolver):
    rng = np.random.default_rng(18)
    for dtype in ("int8", "uint8"):
        info = np.iinfo(dtype)
        x = np.arange(info.min, info.max + 1).astype(dtype).reshape(1, 256)
        for t in range(16):
            s = float(2.0 ** -rng.integers(1, 8)) if t % 2 == 0 else float(np.float32(rng.uniform(0.005, 0.2)))
            z = int(rng.integers(info.min, info.max + 1))
            for op, make, outq in (("LOGISTIC", sigmoid_lut, SIGMOID_OUT), ("TANH", tanh_lut, TANH_OUT)):
                want = apply_lut(x, make(s, z, dtype))
                got = run_model(unary_model(op, x.shape, dtype, (s, z), outq[dtype]), [x], resolver)
                assert _record("lut", op, resolver, got, want) == 0, (op, dtype, s, z)
            # HARD_SWISH: TFLite's int16 fixed-point algorithm, tabulated
            so = float(2.0 ** -rng.integers(2, 7)) if t % 2 == 0 else float(np.float32(rng.uniform(0.005, 0.1)))
            zo = int(rng.integers(info.min, info.max + 1))
            want = apply_lut(x, tflite_hard_swish_lut(s, z, so, zo, dtype))
            got = run_model(unary_model("HARD_SWISH", x.shape, dtype, (s, z), (so, zo)), [x], resolver)
            assert _record("lut", "HARD_SWISH", resolver, got, want) == 0, (dtype, s, z, so, zo)


# ----------------------------------------------------------------------------- quantize

QUANTIZE_ROUNDING = {"reference": "half_away", "optimized": "half_even"}


def _quantize_tflite_optimized(x, s, z, fmt):
    """LiteRT's optimized QUANTIZE multiplies by the float32 reciprocal of the scale:
    ``rne(f32(x * f32(1/s))) + z`` (the reference kernel divides: ``away(f32(x/s)) + z``).
    hwsim.kernels.quantize divides, so the optimized rule is composed here from its
    float32 tie-exact rounding (see kernels/README.md)."""
    inv = np.float32(np.float32(1.0) / np.float32(s))
    v = (np.asarray(x, np.float32) * inv).astype(np.float32)
    r = round_f32(v, "half_even").astype(np.float64) + z
    return np.clip(r, fmt.qmin, fmt.qmax).astype(fmt.storage_dtype)


@pytest.mark.parametrize("resolver", RESOLVERS)
def test_quantize(resolver):
    rng = np.random.default_rng(19)
    n = 1 << 18
    for dtype, bits in (("int8", 8), ("int16", 16)):
        for pot in (True, False):
            s = _scale(rng, pot, -6, -2)
            z = int(rng.integers(-100, 100)) if dtype == "int8" else 0
            fmt = IntFormat(bits)
            # ties: exact half-integers of the scale (power-of-two scales make them exact)
            k = rng.integers(fmt.qmin - z - 3, fmt.qmax - z + 3, n).astype(np.float32)
            x = (k + np.float32(0.5) * rng.integers(0, 2, n).astype(np.float32)) * np.float32(s)
            x[: n // 4] = rng.normal(0, 40 * s, n // 4).astype(np.float32)
            x = x.astype(np.float32).reshape(1, n)
            if resolver == "reference":
                want = quantize(x, s, z, fmt, rounding="half_away")
            else:
                want = _quantize_tflite_optimized(x, s, z, fmt)
            got = run_model(quantize_model(x.shape, dtype, (s, z)), [x], resolver)
            assert _record(f"quantize_{QUANTIZE_ROUNDING[resolver]}", "QUANTIZE", resolver, got,
                           want) == 0, (dtype, s, z)


def test_outputs_per_scheme():
    """At least 10^6 compared outputs per requantization scheme (needs the whole module)."""
    needed = ["tflite_reference", "tflite_optimized", "tflite_reference_fc", "tflite_16x8"]
    per_scheme: dict = {}
    for (scheme, op, resolver), (n, bad) in sorted(COUNTS.items()):
        per_scheme.setdefault(scheme, [0, 0])
        per_scheme[scheme][0] += n
        per_scheme[scheme][1] += bad
        print(f"{scheme:22s} {op:18s} {resolver:9s} outputs={n:9d} mismatches={bad}")
    for scheme, (n, bad) in sorted(per_scheme.items()):
        print(f"TOTAL {scheme:22s} outputs={n:9d} mismatches={bad}")
    if not all(s in per_scheme for s in needed):
        pytest.skip("run the whole module to check the per-scheme totals")
    for s in needed:
        assert per_scheme[s][1] == 0
        assert per_scheme[s][0] >= 1_000_000, (s, per_scheme[s][0])

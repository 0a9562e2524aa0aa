"""Slow NumPy/Python twins of the elementwise, pooling and lookup-table kernels.

The living definition: every function has the same name and signature as its compiled
twin in :mod:`~hwsim.kernels.elementwise`, :mod:`~hwsim.kernels.pool` or
:mod:`~hwsim.kernels.lut`, and is written for clarity with exact Python integers (and exact
rationals for the float32 FMA), one element at a time. Property tests assert that the
compiled kernels equal these bit for bit.

Example
-------
>>> import numpy as np
>>> from hwsim.kernels.reference_elementwise import add_tflite
>>> from hwsim.kernels.elementwise import tflite_add_params
>>> p = tflite_add_params(0.5, 1, 0.25, -3, 1.0, 0, "int8")
>>> add_tflite(np.array([2], np.int8), np.array([5], np.int8), p).tolist()
[3]
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from .elementwise import (OrtAddParams, OrtMulParams, PotBinaryParams, TfliteAddParams,
                          TfliteMulParams, _ort_span_mode, tflite_span)
from .lut import Lut
from .schemes import Rounding

__all__ = ["add_tflite", "mul_tflite", "add_ort", "mul_ort", "add_pot", "mul_pot", "avg_pool", "max_pool",
           "global_avg_pool", "avg_pool_ort", "global_avg_pool_ort", "apply_lut", "build_lut"]

I32_MIN, I32_MAX = -(2 ** 31), 2 ** 31 - 1


# --------------------------------------------------------------------------- integer helpers

def _wrap32(v: int) -> int:
    """C++ int32 two's-complement wrap."""
    return (v + 2 ** 31) % 2 ** 32 - 2 ** 31


def _div_trunc(a: int, b: int) -> int:
    """C/C++ integer division (toward zero), b > 0."""
    q = abs(a) // b
    return q if a >= 0 else -q


def _srdhm(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul: a*b / 2^31 with nudge ``2^30`` or
    ``1 - 2^30`` and C division: exact halves go toward +inf."""
    if a == I32_MIN and b == I32_MIN:
        return I32_MAX
    ab = a * b
    nudge = 2 ** 30 if ab >= 0 else 1 - 2 ** 30
    return _div_trunc(ab + nudge, 2 ** 31)


def _rdbpot(x: int, e: int) -> int:
    """gemmlowp RoundingDivideByPOT: x / 2^e rounded half away from zero."""
    if e == 0:
        return x
    r = Fraction(x, 2 ** e)
    fl = r.numerator // r.denominator
    frac = r - fl
    if frac > Fraction(1, 2) or (frac == Fraction(1, 2) and x > 0):
        return fl + 1
    return fl


def _vqrdmulh(a: int, b: int) -> int:
    """NEON vqrdmulh: floor((2ab + 2^31) / 2^32) (ties toward +inf), saturating."""
    if a == I32_MIN and b == I32_MIN:
        return I32_MAX
    return (2 * a * b + 2 ** 31) // 2 ** 32


def _shl(x: int, n: int) -> int:
    """NEON vshl by a signed count: wrapping left shift, or floor right shift."""
    return _wrap32(x * 2 ** n) if n >= 0 else x // 2 ** (-n)


def _clamp(v: int, lo: int, hi: int) -> int:
    return min(max(v, lo), hi)


def _pairs(a, b):
    a = np.asarray(a)
    b = np.asarray(b)
    shape = np.broadcast_shapes(a.shape, b.shape)
    fa = np.broadcast_to(a, shape).ravel().tolist()
    fb = np.broadcast_to(b, shape).ravel().tolist()
    return fa, fb, shape


# --------------------------------------------------------------------------- TFLite ADD / MUL

def add_tflite(a, b, p: TfliteAddParams, *, optimized: bool = False) -> np.ndarray:
    """TFLite ADD: each input ``(x - zx) << left_shift``, scaled by its Q31 multiplier
    (gemmlowp double rounding), summed, scaled to the output, ``+ zy``, clamped.
    ``optimized``: LiteRT's x86 int8 kernel (blocks of 16 with vqrdmulh, the input
    shift folded into the left shift, int16 wrap before the zero point; scalar tail)."""
    fa, fb, shape = _pairs(a, b)
    span = tflite_span(np.shape(a), np.shape(b))
    n_vec = span - span % 16 if (optimized and p.out_dtype == "int8") else 0
    out = []
    for i, (x, y) in enumerate(zip(fa, fb)):
        if i % span < n_vec:      # vector block inside the span
            xa = _vqrdmulh(_shl(x + p.a_offset, p.left_shift + p.a_shift), p.a_mult)
            xb = _vqrdmulh(_shl(y + p.b_offset, p.left_shift + p.b_shift), p.b_mult)
            s = _rdbpot(_vqrdmulh(_wrap32(xa + xb), p.out_mult), -p.out_shift)
            s16 = (s + 2 ** 15) % 2 ** 16 - 2 ** 15
            s16 = (s16 + p.out_offset + 2 ** 15) % 2 ** 16 - 2 ** 15
            out.append(_clamp(_clamp(s16, -128, 127), p.qmin, p.qmax))
            continue
        sa = _rdbpot(_srdhm((x + p.a_offset) * 2 ** p.left_shift, p.a_mult), -p.a_shift)
        sb = _rdbpot(_srdhm((y + p.b_offset) * 2 ** p.left_shift, p.b_mult), -p.b_shift)
        raw = _rdbpot(_srdhm(_wrap32(sa + sb), p.out_mult), -p.out_shift) + p.out_offset
        out.append(_clamp(raw, p.qmin, p.qmax))
    return np.array(out, dtype=np.int64).astype(p.out_dtype).reshape(shape)


def mul_tflite(a, b, p: TfliteMulParams, *, optimized: bool = False) -> np.ndarray:
    """TFLite MUL: ``(a - za)(b - zb)`` in int32, times ``M0·2^shift`` with gemmlowp double
    rounding, ``+ zy``, clamped; ``optimized``: LiteRT's x86 int8 block kernel."""
    fa, fb, shape = _pairs(a, b)
    left, right = max(p.out_shift, 0), max(-p.out_shift, 0)
    span = tflite_span(np.shape(a), np.shape(b))
    n_vec = span - span % 16 if (optimized and p.out_dtype == "int8") else 0
    out = []
    for i, (x, y) in enumerate(zip(fa, fb)):
        prod = _wrap32((x + p.a_offset) * (y + p.b_offset))
        if i % span < n_vec:      # vector block inside the span
            t = _rdbpot(_vqrdmulh(_wrap32(prod * 2 ** left), p.out_mult), right)
            t16 = _clamp(t, -32768, 32767)
            t16 = (t16 + p.out_offset + 2 ** 15) % 2 ** 16 - 2 ** 15
            out.append(_clamp(_clamp(t16, -128, 127), p.qmin, p.qmax))
            continue
        raw = _rdbpot(_srdhm(_wrap32(prod * 2 ** left), p.out_mult), right) + p.out_offset
        out.append(_clamp(raw, p.qmin, p.qmax))
    return np.array(out, dtype=np.int64).astype(p.out_dtype).reshape(shape)


# --------------------------------------------------------------------------- ORT (float32)

def _round_f32(q: Fraction) -> Fraction:
    """Round an exact rational to the nearest float32, ties to even (no double rounding)."""
    f = np.float32(float(q))
    best = None
    for c in (np.nextafter(f, np.float32(-np.inf)), f, np.nextafter(f, np.float32(np.inf))):
        if not np.isfinite(c):
            continue
        d = abs(Fraction(float(c)) - q)
        even = (int(np.array(c, np.float32).view(np.uint32)) & 1) == 0
        if best is None or d < best[0] or (d == best[0] and even):
            best = (d, c)
    return Fraction(float(best[1]))


def _fma(x, y, z) -> Fraction:
    return _round_f32(Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z)))


def _rne_int(q: Fraction) -> int:
    fl = q.numerator // q.denominator
    frac = q - fl
    if frac > Fraction(1, 2) or (frac == Fraction(1, 2) and fl % 2 == 1):
        return fl + 1
    return fl


def add_ort(a, b, p: OrtAddParams) -> np.ndarray:
    """ORT QLinearAdd (MLAS AVX2): ``rne(fma(a, rA, fma(b, rB, fixed)))`` in float32, exact
    rationals here; a broadcast-scalar input is ORT's B (folded into ``fixed`` with one
    float32 multiply and one add); saturate to the output type."""
    a = np.asarray(a)
    b = np.asarray(b)
    shape = np.broadcast_shapes(a.shape, b.shape)
    mode = _ort_span_mode(a.shape, b.shape, shape)
    fa, fb, shape = _pairs(a, b)
    ra, rb, fixed = p.ratio_a, p.ratio_b, p.fixed
    if mode == 1:
        fa, fb, ra, rb, fixed = fb, fa, rb, ra, p.fixed_swapped
    out = []
    for x, y in zip(fa, fb):
        if mode == 0:
            t = _fma(x, ra, float(_fma(y, rb, fixed)))
        else:
            f2 = _round_f32(Fraction(float(fixed)) + _round_f32(Fraction(y) * Fraction(float(rb))))
            t = _fma(x, ra, float(f2))
        out.append(_clamp(_rne_int(t), p.qmin, p.qmax))
    return np.array(out, dtype=np.int64).astype(p.out_dtype).reshape(shape)


def mul_ort(a, b, p: OrtMulParams) -> np.ndarray:
    """ORT QLinearMul (MLAS SSE2): ``rne(f32(f32(f32(p) * ratio) + f32(zc)))`` with
    ``p = (a - za)(b - zb)`` exact; saturate to the output type."""
    fa, fb, shape = _pairs(a, b)
    out = []
    for x, y in zip(fa, fb):
        prod = (x - p.a_zp) * (y - p.b_zp)
        v = _round_f32(_round_f32(_round_f32(Fraction(prod)) * Fraction(float(p.ratio)))
                       + Fraction(float(p.zc)))
        out.append(_clamp(_rne_int(v), p.qmin, p.qmax))
    return np.array(out, dtype=np.int64).astype(p.out_dtype).reshape(shape)


# --------------------------------------------------------------------------- power of two

_CODE_TO_ROUNDING = {0: Rounding.HALF_EVEN, 1: Rounding.HALF_AWAY, 2: Rounding.HALF_UP,
                     3: Rounding.FLOOR}


def _shift(acc: int, n: int, code: int) -> int:
    if n <= 0:
        return acc * 2 ** (-n)
    return _divide_round(acc, 2 ** n, _CODE_TO_ROUNDING[code])


def add_pot(a, b, p: PotBinaryParams) -> np.ndarray:
    """Power-of-two Add: exact sum at the finer input scale, one rounded shift, saturate."""
    fa, fb, shape = _pairs(a, b)
    out = [_clamp(_shift((x - p.a_zp) * 2 ** p.a_shift + (y - p.b_zp) * 2 ** p.b_shift,
                         p.out_shift, p.rounding) + p.out_zp, p.qmin, p.qmax)
           for x, y in zip(fa, fb)]
    return np.array(out, dtype=np.int64).astype(p.out_dtype).reshape(shape)


def mul_pot(a, b, p: PotBinaryParams) -> np.ndarray:
    """Power-of-two Mul: exact product, one rounded shift, saturate."""
    fa, fb, shape = _pairs(a, b)
    out = [_clamp(_shift((x - p.a_zp) * (y - p.b_zp), p.out_shift, p.rounding) + p.out_zp,
                  p.qmin, p.qmax) for x, y in zip(fa, fb)]
    return np.array(out, dtype=np.int64).astype(p.out_dtype).reshape(shape)


# --------------------------------------------------------------------------- pooling

def _divide_round(acc: int, n: int, rounding: Rounding) -> int:
    q = Fraction(acc, n)
    fl = q.numerator // q.denominator
    frac = q - fl
    if rounding is Rounding.FLOOR or frac < Fraction(1, 2):
        return fl
    if frac > Fraction(1, 2):
        return fl + 1
    if rounding is Rounding.HALF_EVEN:
        return fl + (fl % 2)
    if rounding is Rounding.HALF_AWAY:
        return fl + 1 if acc > 0 else fl
    return fl + 1


def _windows(x, kernel, stride, pads):
    n_, c_, h_, w_ = x.shape
    kh, kw = kernel
    sh, sw = stride
    pt, pl, pb, pr = pads or (0, 0, 0, 0)
    oh = (h_ + pt + pb - kh) // sh + 1
    ow = (w_ + pl + pr - kw) // sw + 1
    for oy in range(oh):
        for ox in range(ow):
            taps = [(oy * sh - pt + dy, ox * sw - pl + dx) for dy in range(kh) for dx in range(kw)]
            yield oy, ox, taps
    return


def avg_pool(x, kernel, stride, pads=None, *, count_include_pad=False, zero_point=0,
             rounding=Rounding.HALF_AWAY, act_min=None, act_max=None) -> np.ndarray:
    """Average pool: exact integer sum over the window, one rounded division by the count."""
    x = np.asarray(x)
    info = np.iinfo(x.dtype)
    lo = info.min if act_min is None else max(int(info.min), int(act_min))
    hi = info.max if act_max is None else min(int(info.max), int(act_max))
    rounding = Rounding(getattr(rounding, "value", rounding))
    n_, c_, h_, w_ = x.shape
    wins = list(_windows(x, kernel, stride, pads))
    oh = max(w[0] for w in wins) + 1
    ow = max(w[1] for w in wins) + 1
    out = np.zeros((n_, c_, oh, ow), np.int64)
    for n in range(n_):
        for c in range(c_):
            for oy, ox, taps in wins:
                inside = [int(x[n, c, iy, ix]) for iy, ix in taps if 0 <= iy < h_ and 0 <= ix < w_]
                acc, cnt = sum(inside), len(inside)
                if count_include_pad:
                    acc += int(zero_point) * (len(taps) - cnt)
                    cnt = len(taps)
                v = int(zero_point) if cnt == 0 else _divide_round(acc, cnt, rounding)
                out[n, c, oy, ox] = _clamp(v, lo, hi)
    return out.astype(x.dtype)


def max_pool(x, kernel, stride, pads=None, *, act_min=None, act_max=None) -> np.ndarray:
    """Max pool: maximum of the in-bounds taps, clamped to the activation range."""
    x = np.asarray(x)
    info = np.iinfo(x.dtype)
    lo = info.min if act_min is None else max(int(info.min), int(act_min))
    hi = info.max if act_max is None else min(int(info.max), int(act_max))
    n_, c_, h_, w_ = x.shape
    wins = list(_windows(x, kernel, stride, pads))
    oh = max(w[0] for w in wins) + 1
    ow = max(w[1] for w in wins) + 1
    out = np.zeros((n_, c_, oh, ow), np.int64)
    for n in range(n_):
        for c in range(c_):
            for oy, ox, taps in wins:
                inside = [int(x[n, c, iy, ix]) for iy, ix in taps if 0 <= iy < h_ and 0 <= ix < w_]
                out[n, c, oy, ox] = _clamp(max(inside), lo, hi)
    return out.astype(x.dtype)


def global_avg_pool(x, *, rounding=Rounding.HALF_AWAY, act_min=None, act_max=None) -> np.ndarray:
    """Average over H and W with :func:`avg_pool`'s division."""
    x = np.asarray(x)
    return avg_pool(x, x.shape[2:], (1, 1), None, rounding=rounding, act_min=act_min,
                    act_max=act_max)


def avg_pool_ort(x, kernel, stride, pads, x_scale, x_zp, y_scale, y_zp, *,
                 count_include_pad=False) -> np.ndarray:
    """ORT QLinearAveragePool: every float32 step rounded exactly (rationals), window order."""
    x = np.asarray(x)
    info = np.iinfo(x.dtype)
    sx, sy = Fraction(float(np.float32(x_scale))), Fraction(float(np.float32(y_scale)))
    n_, c_, h_, w_ = x.shape
    wins = list(_windows(x, kernel, stride, pads))
    oh = max(w[0] for w in wins) + 1
    ow = max(w[1] for w in wins) + 1
    out = np.zeros((n_, c_, oh, ow), np.int64)
    for n in range(n_):
        for c in range(c_):
            for oy, ox, taps in wins:
                acc = Fraction(0)
                inside = [(iy, ix) for iy, ix in taps if 0 <= iy < h_ and 0 <= ix < w_]
                for iy, ix in inside:
                    deq = _round_f32(sx * _round_f32(Fraction(int(x[n, c, iy, ix]) - int(x_zp))))
                    acc = _round_f32(acc + deq)
                cnt = len(taps) if count_include_pad else len(inside)
                y = _round_f32(acc / cnt)
                v = _round_f32(_round_f32(y / sy) + int(y_zp))
                out[n, c, oy, ox] = _clamp(_rne_int(v), int(info.min), int(info.max))
    return out.astype(x.dtype)


def global_avg_pool_ort(x, x_scale, x_zp, y_scale, y_zp) -> np.ndarray:
    """ORT QLinearGlobalAveragePool: exact integer sum, one float32 multiply, float clamp, rne."""
    x = np.asarray(x)
    info = np.iinfo(x.dtype)
    n_, c_, h_, w_ = x.shape
    hw = h_ * w_
    m = _round_f32(Fraction(float(np.float32(x_scale)))
                   / _round_f32(Fraction(float(np.float32(y_scale))) * hw))
    out = np.zeros((n_, c_, 1, 1), np.int64)
    for n in range(n_):
        for c in range(c_):
            acc = sum(int(v) for v in x[n, c].ravel().tolist()) - int(x_zp) * hw
            v = _round_f32(_round_f32(Fraction(acc)) * m)
            v = min(max(v, Fraction(int(info.min) - int(y_zp))), Fraction(int(info.max) - int(y_zp)))
            out[n, c, 0, 0] = _rne_int(v) + int(y_zp)
    return out.astype(x.dtype)


# --------------------------------------------------------------------------- LUT

def build_lut(fn, in_scale, in_zp, out_scale, out_zp, fmt) -> Lut:
    """TFLite LUTPopulate, one input value at a time with float32 scalars."""
    from .lut import _fmt
    qmin, qmax, name = _fmt(fmt)
    inv = np.float32(1.0) / np.float32(out_scale)
    table = []
    for q in range(qmin, qmax + 1):
        deq = np.float32(in_scale) * np.float32(q - int(in_zp))
        t = np.float32(fn(np.array([deq], np.float32))[0])
        v = float(np.float32(t * inv))
        r = Fraction(v)
        fl = r.numerator // r.denominator
        rounded = fl + 1 if (r - fl > Fraction(1, 2) or (r - fl == Fraction(1, 2) and r > 0)) else fl
        y = float(np.float32(rounded) + np.float32(out_zp)) if np.isfinite(v) else (qmax if v > 0 else qmin)
        table.append(_clamp(int(y), qmin, qmax))
    return Lut(np.array(table, np.int64), qmin, float(np.float32(out_scale)), int(out_zp), name)


def apply_lut(x, lut: Lut) -> np.ndarray:
    """``table[x - qmin]`` element by element."""
    x = np.asarray(x)
    out = [int(lut.table[int(v) - lut.qmin]) for v in x.ravel().tolist()]
    return np.array(out, np.int64).astype(lut.dtype).reshape(x.shape)

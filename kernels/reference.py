"""Slow, obviously-correct NumPy/Python twins of the compiled kernels — the living definition.

Every function here has the same name and the same contract as its compiled counterpart
(:mod:`hwsim.kernels` and :mod:`hwsim.kernels.fixedpoint`). They are written for clarity:

* integers are Python ints (NumPy ``object`` arrays), so nothing can overflow by accident —
  every wrap or saturation is written out;
* float32 chains use ``np.float32`` scalars (each operation rounds to float32), float64
  chains use Python floats; ties are resolved with :class:`fractions.Fraction`, exactly;
* the accumulator adds one product at a time in the canonical order described in
  :mod:`hwsim.kernels.params`, vectorised only over independent output elements.

The property tests assert compiled == reference exactly.

Examples
--------
>>> import numpy as np
>>> from hwsim.kernels import reference as ref, GemmParams
>>> ref.gemm_acc(np.array([[1, 2]], np.uint8), np.array([[3], [4]], np.int8), None, GemmParams())[0].tolist()
[[11]]
"""
from __future__ import annotations

import dataclasses

import math
from fractions import Fraction

import numpy as np

from hwsim.errors import KernelError

from .params import ConvParams, GemmParams, KernelStats, PackedInt4, RequantParams
from .schemes import Overflow, Requant, Rounding

__all__ = [
    "round_fraction", "wrap_int32", "saturating_rounding_doubling_high_mul", "rounding_divide_by_pot",
    "multiply_by_quantized_multiplier_double_rounding", "multiply_by_quantized_multiplier_ruy_x86",
    "multiply_by_quantized_multiplier_single_rounding", "multiply_by_quantized_multiplier_16x8",
    "quantize_multiplier", "shift_round", "requantize_value", "requantize",
    "gemm_acc", "qgemm", "conv2d_acc", "qconv2d", "quantize", "dequantize",
]

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


# ---------------------------------------------------------------------------------------------
# exact rounding of rationals
# ---------------------------------------------------------------------------------------------

def round_fraction(q: Fraction, rule: str) -> int:
    """Round an exact rational: ``even`` | ``away`` | ``up`` (ties to +inf) | ``floor``."""
    q = Fraction(q)
    fl = math.floor(q)
    frac = q - fl
    if rule == "floor":
        return fl
    if frac > Fraction(1, 2):
        return fl + 1
    if frac < Fraction(1, 2):
        return fl
    if rule == "up":
        return fl + 1
    if rule == "away":
        return fl + 1 if q > 0 else fl
    if rule == "even":
        return fl + (fl % 2)
    raise ValueError(rule)


_RULE = {Rounding.HALF_EVEN: "even", Rounding.HALF_AWAY: "away", Rounding.HALF_UP: "up", Rounding.FLOOR: "floor"}


def wrap_int32(v: int) -> int:
    """Two's-complement wrap to int32."""
    return ((int(v) + (1 << 31)) % (1 << 32)) - (1 << 31)


def _wrap(v: int, bits: int) -> int:
    return ((int(v) + (1 << (bits - 1))) % (1 << bits)) - (1 << (bits - 1))


# ---------------------------------------------------------------------------------------------
# fixed-point primitives (literal translations of the runtime code, Python ints)
# ---------------------------------------------------------------------------------------------

def saturating_rounding_doubling_high_mul(a: int, b: int) -> int:
    """gemmlowp: ``(a*b + nudge) / 2^31`` with C truncating division; INT32_MIN² saturates.

    ``nudge = 2^30`` if ``a*b >= 0`` else ``1 - 2^30``: ties round up (toward +inf).
    """
    a, b = int(a), int(b)
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    s = ab + ((1 << 30) if ab >= 0 else (1 - (1 << 30)))
    q = abs(s) // (1 << 31)           # C division truncates toward zero
    return q if s >= 0 else -q


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    """``x / 2^exponent`` rounded half away from zero (gemmlowp RoundingDivideByPOT), exactly."""
    return round_fraction(Fraction(int(x), 1 << int(exponent)), "away")


def multiply_by_quantized_multiplier_double_rounding(acc: int, m0: int, shift: int) -> int:
    """TFLite reference ``MultiplyByQuantizedMultiplier`` (gemmlowp double rounding)."""
    left, right = max(int(shift), 0), max(-int(shift), 0)
    x = wrap_int32(wrap_int32(acc) * (1 << left))
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, m0), right)


def multiply_by_quantized_multiplier_ruy_x86(acc: int, m0: int, shift: int) -> int:
    """ruy x86: ``round_up(x·M0 / 2^31)`` then ``round_up(t / 2^right)``, exact rationals."""
    left, right = max(int(shift), 0), max(-int(shift), 0)
    x = wrap_int32(wrap_int32(acc) * (1 << left))
    t = round_fraction(Fraction(x * int(m0), 1 << 31), "up")
    return round_fraction(Fraction(t, 1 << right), "up")


def multiply_by_quantized_multiplier_single_rounding(acc: int, m0: int, shift: int) -> int:
    """Single rounding: ``round_up(acc·M0 / 2^(31-shift))``, wrapped to int32."""
    return wrap_int32(round_fraction(Fraction(wrap_int32(acc) * int(m0), 1 << (31 - int(shift))), "up"))


def multiply_by_quantized_multiplier_16x8(acc: int, mred: int, shift: int) -> int:
    """TFLite 16x8: ``round_up(acc·Mred / 2^(15-shift))`` with the int64 product wrap, then int32 wrap."""
    total = 15 - int(shift)
    prod = _wrap(int(acc) * int(mred) + (1 << (total - 1)), 64)    # the C int64 expression
    return wrap_int32(prod >> total)


def quantize_multiplier(real, single_rounding: bool = False):
    """TFLite ``QuantizeMultiplier`` from exact rationals: ``real = M0·2^(shift-31)``, ``M0`` rounded away."""
    real = np.atleast_1d(np.asarray(real, np.float64))
    m0s, shifts = [], []
    for r in real.tolist():
        if r == 0.0:
            m0s.append(0)
            shifts.append(0)
            continue
        q = Fraction(r)
        shift = 0
        while q >= 1:
            q /= 2
            shift += 1
        while q < Fraction(1, 2):
            q *= 2
            shift -= 1
        m0 = round_fraction(q * (1 << 31), "away")
        if m0 == 1 << 31:
            m0 //= 2
            shift += 1
        if shift < -31:
            m0, shift = 0, 0
        if single_rounding and shift > 30:
            m0, shift = (1 << 31) - 1, 30
        m0s.append(m0)
        shifts.append(shift)
    return np.array(m0s, np.int64), np.array(shifts, np.int64)


def shift_round(acc: int, n: int, rounding) -> int:
    """``acc · 2^-n`` rounded with ``rounding`` (a :class:`Rounding` or its code 0..3)."""
    if isinstance(rounding, (int, np.integer)):
        rule = ("even", "away", "up", "floor")[int(rounding)]
    else:
        rule = _RULE[Rounding(rounding)]
    return round_fraction(Fraction(int(acc)) / Fraction(2) ** int(n), rule)


# ---------------------------------------------------------------------------------------------
# requantization
# ---------------------------------------------------------------------------------------------

def requantize_value(acc: int, p: RequantParams, c: int) -> tuple[int, int]:
    """One accumulator of channel ``c`` -> (output integer, clamped flag)."""
    i = c if p.channels > 1 else 0
    zy, lo, hi = p.out_zero_point, p.act_min, p.act_max
    s = p.scheme
    acc = int(acc)
    if s in (Requant.ONNXRUNTIME, Requant.FBGEMM, Requant.ONNX_REFERENCE, Requant.TFLITE_REFERENCE_FC):
        if s is Requant.ONNXRUNTIME:
            v = np.float32(acc) * np.float32(p.multiplier[i])            # float32 * float32 -> float32
            rule = "even"
        elif s is Requant.FBGEMM:
            v = (np.float32(acc) + np.float32(p.bias_term[i])) * np.float32(p.multiplier[i])
            rule = "even"
        elif s is Requant.ONNX_REFERENCE:                                   # zero point before rounding
            v = Fraction(float(acc) * float(p.multiplier[i]) + zy)          # double product, double sum
            if v < lo:
                return lo, 1
            if v > hi:
                return hi, 1
            return round_fraction(v, "even"), 0
        else:
            v = float(acc) * float(p.multiplier[i])
            rule = "away"
        v = Fraction(float(v))
        if v < lo - zy:
            return lo, 1
        if v > hi - zy:
            return hi, 1
        return round_fraction(v, rule) + zy, 0
    m0, sh = int(p.m0[i]), int(p.shift[i])
    if s is Requant.TFLITE_REFERENCE:
        r = wrap_int32(multiply_by_quantized_multiplier_double_rounding(acc, m0, sh) + zy)
    elif s is Requant.TFLITE_OPTIMIZED:
        r = wrap_int32(multiply_by_quantized_multiplier_ruy_x86(acc, m0, sh) + zy)
    elif s is Requant.TFLITE_SINGLE_ROUNDING:
        r = wrap_int32(multiply_by_quantized_multiplier_single_rounding(acc, m0, sh) + zy)
    elif s is Requant.TFLITE_16X8:
        r = wrap_int32(multiply_by_quantized_multiplier_16x8(acc, m0, sh) + zy)
    elif s is Requant.POWER_OF_TWO:
        r = shift_round(acc, sh, p.rounding) + zy
    else:  # pragma: no cover
        raise KernelError(f"unknown scheme {s}")
    if r < lo:
        return lo, 1
    if r > hi:
        return hi, 1
    return r, 0


def requantize(acc, p: RequantParams, axis: int = -1):
    """Twin of :func:`hwsim.kernels.requantize`."""
    a = np.asarray(acc)
    if a.ndim == 0:
        a = a.reshape(1)
    ax = axis % a.ndim
    moved = np.moveaxis(a, ax, -1)
    out = np.empty(moved.shape, np.int64)
    clamped = 0
    for idx in np.ndindex(*moved.shape):
        out[idx], k = requantize_value(int(moved[idx]), p, idx[-1])
        clamped += k
    return np.moveaxis(out, -1, ax).astype(p.out_fmt.storage_dtype), KernelStats(out_clamped=clamped)


# ---------------------------------------------------------------------------------------------
# accumulation (one step at a time, vectorised over independent outputs)
# ---------------------------------------------------------------------------------------------

def _step(acc: np.ndarray, term, accum) -> tuple[np.ndarray, int]:
    """``acc + term`` in the accumulator register, element-wise on Python-int object arrays."""
    lo, hi = accum.acc_min, accum.acc_max
    s = acc + term
    over = np.array([(v < lo or v > hi) for v in s.reshape(-1)], bool).reshape(s.shape)
    if accum.overflow is Overflow.SATURATE:
        s = np.where(s > hi, hi, np.where(s < lo, lo, s)).astype(object)
    else:
        s = np.vectorize(lambda v: _wrap(v, accum.bits), otypes=[object])(s)
    return s, int(over.sum())


def _accumulate(terms_x: list, terms_w: list, bias: np.ndarray, zx, zw: np.ndarray, accum, pairwise: bool):
    """Generic accumulation. ``terms_x[k]`` / ``terms_w[k]`` are the raw operands of reduction step ``k``
    (object arrays broadcastable to the output shape; the output-channel axis of ``zw`` and
    ``bias`` already broadcast). Returns (acc, overflows, pair_saturations)."""
    shape = np.broadcast_shapes(*(np.shape(t) for t in terms_x[:1] + terms_w[:1]), np.shape(bias))
    acc = np.zeros(shape, object)
    acc, ov = _step(acc, np.broadcast_to(bias, shape), accum)
    K = len(terms_x)
    ps = 0
    if not pairwise:
        for k in range(K):
            acc, o = _step(acc, (terms_x[k] - zx) * (terms_w[k] - zw), accum)
            ov += o
        return acc, ov, ps
    sum_x = np.zeros(shape, object)
    sum_w = np.zeros(shape, object)
    for k in range(0, K, 2):
        pair = terms_x[k] * terms_w[k]
        sum_x = sum_x + terms_x[k]
        sum_w = sum_w + terms_w[k]
        if k + 1 < K:
            pair = pair + terms_x[k + 1] * terms_w[k + 1]
            sum_x = sum_x + terms_x[k + 1]
            sum_w = sum_w + terms_w[k + 1]
        pair = np.broadcast_to(pair, shape)
        ps += int(sum(1 for v in pair.reshape(-1) if v > 32767 or v < -32768))
        pair = np.where(pair > 32767, 32767, np.where(pair < -32768, -32768, pair)).astype(object)
        acc, o = _step(acc, pair, accum)
        ov += o
    corr = -zw * sum_x - zx * sum_w + K * zx * zw
    acc, o = _step(acc, np.broadcast_to(corr, shape), accum)
    return acc, ov + o, ps


def _obj(a) -> np.ndarray:
    return np.asarray(a).astype(np.int64).astype(object)


def _weights(w) -> np.ndarray:
    return w.unpack() if isinstance(w, PackedInt4) else np.asarray(w)


def _is_pairwise(accum, x, w) -> bool:
    return bool(accum.pairwise_int16) and x.dtype == np.uint8 and w.dtype == np.int8


def _acc_dtype(accum):
    return np.int32 if accum.bits <= 32 else np.int64


def gemm_acc(x_q, w_q, bias_q=None, p: GemmParams | None = None):
    """Twin of :func:`hwsim.kernels.gemm_acc`."""
    p = p if p is not None else GemmParams()
    x = np.asarray(x_q)
    w = _weights(w_q)
    K, N = w.shape
    lead = x.shape[:-1]
    x2 = _obj(x.reshape(-1, K))                                       # (M, K)
    wo = _obj(w)                                                      # (K, N)
    zw = np.broadcast_to(_obj(p.w_zero_point), (N,))
    bias = _obj(np.zeros(N, np.int64) if bias_q is None else np.asarray(bias_q).reshape(-1))
    tx = [x2[:, k:k + 1] for k in range(K)]                          # (M, 1)
    tw = [wo[k][None, :] for k in range(K)]                          # (1, N)
    acc, ov, ps = _accumulate(tx, tw, bias[None, :], p.x_zero_point, zw[None, :], p.accum,
                              _is_pairwise(p.accum, x, w))
    st = KernelStats(macs=x2.shape[0] * N * K, acc_overflows=ov, pair_saturations=ps)
    return acc.astype(np.int64).astype(_acc_dtype(p.accum)).reshape(*lead, N), st


def qgemm(x_q, w_q, bias_q, p: GemmParams):
    """Twin of :func:`hwsim.kernels.qgemm`."""
    acc, st = gemm_acc(x_q, w_q, bias_q, p)
    y, rs = requantize(acc.astype(np.int64), p.requant, axis=-1)
    return y, KernelStats(st.macs, st.acc_overflows, st.pair_saturations, rs.out_clamped)


def conv2d_acc(x_q, w_q, bias_q=None, p: ConvParams | None = None):
    """Twin of :func:`hwsim.kernels.conv2d_acc`: explicit zero-point padding, then taps in order."""
    p = p if p is not None else ConvParams()
    x = np.asarray(x_q)
    w = _weights(w_q)
    NB, C, H, W = x.shape
    Cout, Cg, KH, KW = w.shape
    G = p.groups
    Ng = Cout // G
    pt, pl, pb, pr = p.pads
    (sh, sw), (dh, dw) = p.strides, p.dilations
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=p.x_zero_point)
    OH = (H + pt + pb - dh * (KH - 1) - 1) // sh + 1
    OW = (W + pl + pr - dw * (KW - 1) - 1) // sw + 1
    group_of = np.arange(Cout) // Ng                                  # group of each output channel
    tx, tw = [], []
    for c in range(Cg):
        for kh in range(KH):
            for kw in range(KW):
                rows = kh * dh + sh * np.arange(OH)
                cols = kw * dw + sw * np.arange(OW)
                # input channel for output channel co is group_of[co]*Cg + c
                patch = xp[:, group_of * Cg + c][:, :, rows][:, :, :, cols]   # (NB, Cout, OH, OW)
                tx.append(_obj(patch))
                tw.append(_obj(w[:, c, kh, kw]).reshape(1, Cout, 1, 1))
    zw = np.broadcast_to(_obj(p.w_zero_point), (Cout,)).reshape(1, Cout, 1, 1)
    bias = _obj(np.zeros(Cout, np.int64) if bias_q is None else np.asarray(bias_q).reshape(-1)).reshape(1, Cout, 1, 1)
    acc, ov, ps = _accumulate(tx, tw, bias, p.x_zero_point, zw, p.accum, _is_pairwise(p.accum, x, w))
    acc = np.broadcast_to(acc, (NB, Cout, OH, OW))
    st = KernelStats(macs=NB * OH * OW * Cout * Cg * KH * KW, acc_overflows=ov, pair_saturations=ps)
    return acc.astype(np.int64).astype(_acc_dtype(p.accum)), st


def qconv2d(x_q, w_q, bias_q, p: ConvParams):
    """Twin of :func:`hwsim.kernels.qconv2d`.

    With ``tflite_optimized``, a depthwise convolution's channels after the last full block
    of 8 are requantized with the ``tflite_reference`` rounding (LiteRT's optimized kernel).
    """
    acc, st = conv2d_acc(x_q, w_q, bias_q, p)
    acc = acc.astype(np.int64)
    y, rs = requantize(acc, p.requant, axis=1)
    cout = acc.shape[1]
    depthwise = p.groups > 1 and p.groups == np.shape(x_q)[1] and np.shape(w_q)[1] == 1
    if p.requant.scheme is Requant.TFLITE_OPTIMIZED and depthwise and cout % 8:
        ref = dataclasses.replace(p.requant, scheme=Requant.TFLITE_REFERENCE)
        y_ref, _ = requantize(acc, ref, axis=1)
        first = cout - cout % 8
        y[:, first:] = y_ref[:, first:]
    return y, KernelStats(st.macs, st.acc_overflows, st.pair_saturations, rs.out_clamped)


# ---------------------------------------------------------------------------------------------
# quantize / dequantize
# ---------------------------------------------------------------------------------------------

def quantize(x, scale, zero_point, fmt, rounding=Rounding.HALF_EVEN, axis=None, *, reciprocal=False):
    """Twin of :func:`hwsim.kernels.quantize`: per element, float32 division, exact tie rule."""
    x = np.asarray(x, np.float32)
    rule = _RULE[Rounding(rounding)]
    s = np.asarray(scale, np.float32)
    z = np.asarray(zero_point, np.int64)
    out = np.empty(x.shape, fmt.storage_dtype)
    for idx in np.ndindex(*x.shape):
        j = idx[axis] if (axis is not None and s.size > 1) else 0
        sj = s.reshape(-1)[j if s.size > 1 else 0]
        zj = int(z.reshape(-1)[j if z.size > 1 else 0])
        with np.errstate(over="ignore"):
            if reciprocal:
                v = np.float32(x[idx]) * (np.float32(1) / np.float32(sj))   # float32 reciprocal, product
            else:
                v = np.float32(x[idx]) / np.float32(sj)               # float32 division
        if np.isnan(v):
            q = fmt.qmin
        elif np.isinf(v):
            q = fmt.qmax if v > 0 else fmt.qmin
        else:
            q = round_fraction(Fraction(float(v)), rule) + zj
        out[idx] = min(max(q, fmt.qmin), fmt.qmax)
    return out


def dequantize(q, scale, zero_point=0, axis=None):
    """Twin of :func:`hwsim.kernels.dequantize`: ``f32(q - z) * f32(s)`` per element."""
    q = np.asarray(q)
    s = np.asarray(scale, np.float32).reshape(-1)
    z = np.asarray(zero_point, np.int64).reshape(-1)
    out = np.empty(q.shape, np.float32)
    for idx in np.ndindex(*q.shape):
        j = idx[axis] if (axis is not None and s.size > 1) else 0
        zj = int(z[j if z.size > 1 else 0])
        out[idx] = np.float32(int(q[idx]) - zj) * s[j if s.size > 1 else 0]
    return out

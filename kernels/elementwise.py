"""Integer elementwise Add and Mul with each runtime's rescaling (NumPy broadcasting).

Every scheme is one short, named kernel; the parameter objects hold what the runtime
derives once at "prepare" time (multipliers, shifts, float ratios), so a reader finds the
whole arithmetic of a scheme in two places: ``*_params`` (prepare) and the ``_*_kernel``.

Schemes
-------
``tflite``        TFLite ADD (int8 / uint8 / int16): both inputs shifted left by 20 (int16: 15),
                  each rescaled by its own Q31 multiplier relative to twice the larger input
                  scale, summed in int32, rescaled to the output: gemmlowp double rounding
                  (high-mul ties toward +inf, shift ties away from zero). LiteRT's optimized
                  int8 kernel differs (``optimized=True``).
``tflite`` (mul)  TFLite MUL: ``(a-za)*(b-zb)`` in int32 times Q31 ``M0`` of
                  ``f32(f32(sa*sb)/sy)`` (float32, unlike conv's double), gemmlowp double rounding.
``onnxruntime``   com.microsoft QLinearAdd on x86-64 (MLAS AVX2): float32
                  ``fixed = f32(zc) - (rA*za + rB*zb)``; ``y = rne(fma(a, rA, fma(b, rB, fixed)))``
                  with ``rA = f32(sa/sc)``, ``rB = f32(sb/sc)``; when one input is a broadcast scalar
                  in the innermost span it is folded into ``fixed`` first (ORT swaps it to B).
                  QLinearMul (MLAS SSE2): ``rne(f32(f32(p) * f32(f32(sa*sb)/sc)) + f32(zc))``
                  with ``p = (a-za)*(b-zb)``. Saturating pack to the output type.
``onnx_reference`` float64 dequantize, add / multiply, divide by the output scale, ``rne``.
``power_of_two``  all scales ``2^k``: Add aligns both inputs to the finer input scale by exact
                  left shifts, sums in int64 and shifts to the output scale once with the
                  profile's rounding; Mul shifts the exact product once.

Example
-------
>>> import numpy as np
>>> from hwsim.kernels.elementwise import qadd
>>> a = np.array([1, 2, 127], np.int8); b = np.array([-128, 5, 9], np.int8)
>>> qadd(a, b, (0.5, 1), (0.25, -3), (1.0, 0), "int8", scheme="tflite_reference").tolist()
[-31, 3, 66]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwsim.errors import KernelError

from ._config import njit
from .fixedpoint import (ROUNDING_CODE, quantize_multiplier, rounding_divide_by_pot,
                         saturating_rounding_doubling_high_mul, shift_round, wrap_int32)
from .schemes import Rounding

__all__ = [
    "TfliteAddParams", "TfliteMulParams", "OrtAddParams", "OrtMulParams",
    "tflite_add_params", "tflite_mul_params",
    "ort_add_params", "ort_mul_params",
    "add_tflite", "mul_tflite", "tflite_span", "add_ort", "mul_ort", "add_onnx_reference", "mul_onnx_reference",
    "PotBinaryParams", "pot_add_params", "pot_mul_params", "add_pot", "mul_pot",
    "qadd", "qmul", "ADD_SCHEMES", "MUL_SCHEMES",
]

_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767),
           "uint16": (0, 65535)}


def _range(dtype) -> tuple[int, int]:
    name = np.dtype(dtype).name
    if name not in _RANGES:
        raise KernelError(f"elementwise: unsupported integer type {name!r} "
                          f"(supported: {', '.join(_RANGES)})")
    return _RANGES[name]


# --------------------------------------------------------------------------- prepare (host)

def _qm(real: float) -> tuple[int, int]:
    m0, shift = quantize_multiplier(real)
    return int(m0[0]), int(shift[0])


@dataclass(frozen=True)
class TfliteAddParams:
    """What TFLite's ADD prepare derives (``add.cc``)."""

    left_shift: int
    a_offset: int          # -za
    a_mult: int
    a_shift: int           # <= 0
    b_offset: int
    b_mult: int
    b_shift: int
    out_mult: int
    out_shift: int
    out_offset: int        # +zy
    qmin: int
    qmax: int
    out_dtype: str


def tflite_add_params(a_scale, a_zp, b_scale, b_zp, y_scale, y_zp, dtype="int8",
                      act_min=None, act_max=None) -> TfliteAddParams:
    """TFLite ADD prepare: left shift 20 (int8/uint8) or 15 (int16, zero points 0),
    ``twice_max = 2*max(sa, sb)`` in double, three ``QuantizeMultiplier`` (all <= 1)."""
    lo, hi = _range(dtype)
    name = np.dtype(dtype).name
    sa, sb, sy = (float(np.float32(v)) for v in (a_scale, b_scale, y_scale))
    if min(sa, sb, sy) <= 0:
        raise KernelError("tflite ADD: scales must be positive")
    left_shift = 15 if name == "int16" else 20
    twice_max = 2.0 * max(sa, sb)
    m1, s1 = _qm(sa / twice_max)
    m2, s2 = _qm(sb / twice_max)
    mo, so = _qm(twice_max / (float(1 << left_shift) * sy))
    if s1 > 0 or s2 > 0 or so > 0:
        raise KernelError("tflite ADD: output multiplier >= 1 (output scale too small for "
                          "the input scales; TFLite rejects this model)")
    qmin = lo if act_min is None else max(lo, int(act_min))
    qmax = hi if act_max is None else min(hi, int(act_max))
    return TfliteAddParams(left_shift, -int(a_zp), m1, s1, -int(b_zp), m2, s2, mo, so,
                           int(y_zp), qmin, qmax, name)


@dataclass(frozen=True)
class TfliteMulParams:
    """What TFLite's MUL prepare derives (``mul.cc``)."""

    a_offset: int
    b_offset: int
    out_mult: int
    out_shift: int
    out_offset: int
    qmin: int
    qmax: int
    out_dtype: str


def tflite_mul_params(a_scale, a_zp, b_scale, b_zp, y_scale, y_zp, dtype="int8",
                      act_min=None, act_max=None) -> TfliteMulParams:
    """TFLite MUL prepare: ``QuantizeMultiplier(double(f32(f32(sa*sb)/sy)))`` — mul.cc
    multiplies and divides the float32 scales in float32 before widening to double."""
    lo, hi = _range(dtype)
    sa, sb, sy = (np.float32(v) for v in (a_scale, b_scale, y_scale))
    m, s = _qm(float(np.float32(np.float32(sa * sb) / sy)))
    qmin = lo if act_min is None else max(lo, int(act_min))
    qmax = hi if act_max is None else min(hi, int(act_max))
    return TfliteMulParams(-int(a_zp), -int(b_zp), m, s, int(y_zp), qmin, qmax,
                           np.dtype(dtype).name)


@dataclass(frozen=True)
class OrtAddParams:
    """ONNX Runtime QLinearAdd (MLAS) constants, all float32."""

    ratio_a: float     # f32(sa / sc)
    ratio_b: float     # f32(sb / sc)
    fixed: float       # f32(zc) - fma(ratio_a, za, f32(ratio_b*zb))
    fixed_swapped: float  # the same with A and B exchanged (ORT swaps a broadcast-scalar A into B)
    qmin: int
    qmax: int
    out_dtype: str


def _f32(x) -> float:
    return float(np.float32(x))


def _fma32(x: float, y: float, z: float) -> float:
    """float32 fused multiply-add, rounded once (host version of :func:`_fma_f32`)."""
    return float(_fma_f32(np.float64(x), np.float64(y), np.float64(z)))


def ort_add_params(a_scale, a_zp, b_scale, b_zp, y_scale, y_zp, dtype="uint8") -> OrtAddParams:
    """QLinearAdd prepare as MLAS does it: ratios in float32, then the fixed part
    ``f32(zc) - fma(rA, za, f32(rB*zb))`` (the compiler contracts the inner sum to an FMA)."""
    lo, hi = _range(dtype)
    sa, sb, sc = np.float32(a_scale), np.float32(b_scale), np.float32(y_scale)
    ra = _f32(sa / sc)
    rb = _f32(sb / sc)
    return OrtAddParams(ra, rb, _ort_fixed(ra, a_zp, rb, b_zp, y_zp),
                        _ort_fixed(rb, b_zp, ra, a_zp, y_zp), lo, hi, np.dtype(dtype).name)


def _ort_fixed(ra, za, rb, zb, zc) -> float:
    inner = _fma32(ra, float(za), _f32(np.float32(rb) * np.float32(zb)))
    return _f32(np.float32(zc) - np.float32(inner))


@dataclass(frozen=True)
class OrtMulParams:
    """ONNX Runtime QLinearMul (MLAS SSE2) constants."""

    ratio: float       # f32(f32(sa*sb)/sc)
    a_zp: int
    b_zp: int
    zc: float          # f32(zc)
    qmin: int
    qmax: int
    out_dtype: str


def ort_mul_params(a_scale, a_zp, b_scale, b_zp, y_scale, y_zp, dtype="uint8") -> OrtMulParams:
    """QLinearMul prepare: ``f32(f32(sa*sb)/sc)``."""
    lo, hi = _range(dtype)
    sa, sb, sc = np.float32(a_scale), np.float32(b_scale), np.float32(y_scale)
    ratio = _f32(np.float32(sa * sb) / sc)
    return OrtMulParams(ratio, int(a_zp), int(b_zp), float(np.float32(y_zp)), lo, hi,
                        np.dtype(dtype).name)


# --------------------------------------------------------------------------- Numba primitives

_I32_MIN = -(1 << 31)
_I32_MAX = (1 << 31) - 1


@njit
def _fma_f32(x, y, z):
    """float32 fma(x, y, z) for float32-valued float64 inputs, rounded once.

    ``x*y`` is exact in float64 (24+24 bits); the float64 sum is corrected with its exact
    TwoSum error when it lands on a float32 rounding tie, so the result equals a true
    single-rounding float32 FMA."""
    p = x * y
    s = p + z
    bp = s - z
    e = (p - bp) + (z - (s - bp))         # TwoSum: s + e == p + z exactly
    r = np.float32(s)
    if e != 0.0:
        d = s - np.float64(r)
        if d != 0.0:
            other = np.float64(r) + 2.0 * d
            if np.float64(np.float32(other)) == other and (d > 0.0) == (e > 0.0):
                r = np.float32(other)     # s was a tie; the true value lies beyond it
    return r


# --------------------------------------------------------------------------- kernels

@njit
def _add_tflite_kernel(a, b, out, left_shift, a_off, a_mult, a_shift, b_off, b_mult, b_shift,
                       o_mult, o_shift, o_off, qmin, qmax):
    for i in range(a.size):
        xa = (np.int64(a[i]) + a_off) << left_shift
        xb = (np.int64(b[i]) + b_off) << left_shift
        sa = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(xa, a_mult), -a_shift)
        sb = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(xb, b_mult), -b_shift)
        raw = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(wrap_int32(sa + sb), o_mult), -o_shift) + o_off
        out[i] = min(max(raw, qmin), qmax)


@njit
def _vqrdmulh(a, b):
    """NEON vqrdmulhq_s32 (as emulated on x86 by NEON_2_SSE): ``(2ab + 2^31) >> 32``,
    ties toward +inf, saturating the single overflow case (the same integer function as
    gemmlowp's SaturatingRoundingDoublingHighMul, written as NEON computes it)."""
    if a == _I32_MIN and b == _I32_MIN:
        return np.int64(_I32_MAX)
    return (2 * np.int64(a) * np.int64(b) + (np.int64(1) << 31)) >> 32


@njit
def _shl32(x, n):
    """NEON vshlq_s32 by a signed count: left shift (wrapping) or arithmetic right shift."""
    if n >= 0:
        return wrap_int32(x << n)
    return x >> (-n)


@njit
def _add_tflite_opt_kernel(a, b, out, span, left_shift, a_off, a_mult, a_shift, b_off,
                           b_mult, b_shift, o_mult, o_shift, o_off, qmin, qmax):
    n_vec = span - span % 16
    for i in range(a.size):
        if i % span >= n_vec:   # scalar tail of each span: the reference arithmetic
            xa = (np.int64(a[i]) + a_off) << left_shift
            xb = (np.int64(b[i]) + b_off) << left_shift
            sa = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(xa, a_mult), -a_shift)
            sb = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(xb, b_mult), -b_shift)
            raw = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(wrap_int32(sa + sb), o_mult), -o_shift) + o_off
            out[i] = min(max(raw, qmin), qmax)
            continue
        xa = _vqrdmulh(_shl32(np.int64(a[i]) + a_off, left_shift + a_shift), a_mult)
        xb = _vqrdmulh(_shl32(np.int64(b[i]) + b_off, left_shift + b_shift), b_mult)
        s = rounding_divide_by_pot(_vqrdmulh(wrap_int32(xa + xb), o_mult), -o_shift)
        s16 = ((s + 32768) & 65535) - 32768             # vmovn_s32: truncating narrow
        s16 = ((s16 + o_off + 32768) & 65535) - 32768   # vaddq_s16: wrapping add
        s8 = min(max(s16, -128), 127)                   # vqmovn_s16: saturate
        out[i] = min(max(s8, qmin), qmax)


@njit
def _mul_tflite_kernel(a, b, out, a_off, b_off, o_mult, o_shift, o_off, qmin, qmax):
    left = o_shift if o_shift > 0 else 0
    right = -o_shift if o_shift < 0 else 0
    for i in range(a.size):
        p = wrap_int32((np.int64(a[i]) + a_off) * (np.int64(b[i]) + b_off))
        raw = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(wrap_int32(p << left), o_mult), right) + o_off
        out[i] = min(max(raw, qmin), qmax)


@njit
def _mul_tflite_opt_kernel(a, b, out, span, a_off, b_off, o_mult, o_shift, o_off, qmin, qmax):
    left = o_shift if o_shift > 0 else 0
    right = -o_shift if o_shift < 0 else 0
    n_vec = span - span % 16
    for i in range(a.size):
        p = wrap_int32((np.int64(a[i]) + a_off) * (np.int64(b[i]) + b_off))
        if i % span >= n_vec:   # scalar tail of each span: the reference arithmetic
            raw = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(
                wrap_int32(p << left), o_mult), right) + o_off
            out[i] = min(max(raw, qmin), qmax)
            continue
        t = rounding_divide_by_pot(_vqrdmulh(wrap_int32(p << left), o_mult), right)
        t16 = min(max(t, -32768), 32767)                   # vqmovn_s32: saturate
        t16 = ((t16 + o_off + 32768) & 65535) - 32768      # vaddq_s16: wrapping add
        out[i] = min(max(min(max(t16, -128), 127), qmin), qmax)


@njit
def _sat(v, lo, hi):
    # MLAS packs with saturation (int32 -> int16 -> int8/uint8)
    if v < lo:
        return lo
    if v > hi:
        return hi
    return v


@njit
def _cvt_rne(x):
    """x86 cvtps2dq: round half to even; NaN/overflow give INT32_MIN."""
    if not (x > -2147483648.5 and x < 2147483647.5):
        return np.int64(_I32_MIN)
    return np.int64(np.rint(x))


@njit
def _add_ort_kernel(a, b, out, mode, ra, rb, fixed, qmin, qmax):
    # mode 0: both vectors; mode 1: b is the span scalar (folded into fixed)
    ra64 = np.float64(ra)
    rb64 = np.float64(rb)
    for i in range(a.size):
        if mode == 0:
            t = _fma_f32(np.float64(b[i]), rb64, np.float64(fixed))
            t = _fma_f32(np.float64(a[i]), ra64, np.float64(t))
        else:
            f2 = np.float32(np.float32(fixed) + np.float32(np.float32(b[i]) * np.float32(rb)))
            t = _fma_f32(np.float64(a[i]), ra64, np.float64(f2))
        out[i] = _sat(_cvt_rne(np.float64(t)), qmin, qmax)


@njit
def _mul_ort_kernel(a, b, out, ratio, za, zb, zc, qmin, qmax):
    r = np.float32(ratio)
    for i in range(a.size):
        p = (np.int64(a[i]) - za) * (np.int64(b[i]) - zb)
        v = np.float32(np.float32(np.float32(p) * r) + np.float32(zc))
        out[i] = _sat(_cvt_rne(np.float64(v)), qmin, qmax)


# --------------------------------------------------------------------------- public API

def _broadcast(a, b):
    a = np.asarray(a)
    b = np.asarray(b)
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError as e:
        raise KernelError(f"elementwise: shapes {a.shape} and {b.shape} do not broadcast") from e
    # int64 working copies: one compiled specialization per kernel, whatever the input type
    fa = np.broadcast_to(a, shape).astype(np.int64).ravel()
    fb = np.broadcast_to(b, shape).astype(np.int64).ravel()
    return fa, fb, shape


def add_tflite(a, b, p: TfliteAddParams, *, optimized: bool = False) -> np.ndarray:
    """TFLite ADD: int32 arithmetic, gemmlowp double rounding (high-mul ties up, shift ties
    away), saturating clamp
    to ``[qmin, qmax]``; ``optimized=True``: the int8 optimized kernel as built for x86
    (NEON code through NEON_2_SSE) — see :func:`_add_tflite_opt_kernel`.

    ``a``, ``b`` broadcast NumPy-style; result has ``p.out_dtype``. The optimized variant
    follows LiteRT's ``AddElementwiseInt8`` / ``AddScalarBroadcast``: within each innermost
    broadcast span (:func:`tflite_span`) blocks of 16 use ``vqrdmulh`` with the input shift
    folded into the left shift (one rounding instead of two) and an int16 wrap of the output before the zero
    point is added; each span's last ``span % 16`` elements use the reference arithmetic."""
    fa, fb, shape = _broadcast(a, b)
    out = np.empty(fa.size, np.int64)
    args = (p.left_shift, p.a_offset, p.a_mult, p.a_shift, p.b_offset, p.b_mult, p.b_shift,
            p.out_mult, p.out_shift, p.out_offset, p.qmin, p.qmax)
    if optimized and p.out_dtype == "int8" and fa.size:
        _add_tflite_opt_kernel(fa, fb, out, tflite_span(np.shape(a), np.shape(b)), *args)
    else:
        _add_tflite_kernel(fa, fb, out, *args)
    return out.astype(p.out_dtype).reshape(shape)


def mul_tflite(a, b, p: TfliteMulParams, *, optimized: bool = False) -> np.ndarray:
    """TFLite MUL: int32 product wraps like C++ int32, gemmlowp double rounding (high-mul ties
    up, shift ties away),
    saturating clamp to ``[qmin, qmax]``; ``optimized=True``: LiteRT's x86 int8
    ``MulElementwise`` (blocks of 16: ``vqrdmulh``, int16 saturate, int16 wrapping
    add of the zero point; reference arithmetic for each span's tail, as for ADD)."""
    fa, fb, shape = _broadcast(a, b)
    out = np.empty(fa.size, np.int64)
    args = (p.a_offset, p.b_offset, p.out_mult, p.out_shift, p.out_offset, p.qmin, p.qmax)
    if optimized and p.out_dtype == "int8" and fa.size:
        _mul_tflite_opt_kernel(fa, fb, out, tflite_span(np.shape(a), np.shape(b)), *args)
    else:
        _mul_tflite_kernel(fa, fb, out, *args)
    return out.astype(p.out_dtype).reshape(shape)


def tflite_span(a_shape, b_shape) -> int:
    """Length of the innermost run that LiteRT's optimized broadcast (``BinaryBroadcastFiveFold``)
    hands to one elementwise / scalar-broadcast call: the whole tensor for equal shapes,
    else the product of the trailing output dims over which both inputs vary alike (both
    vary, or the same one stays constant)."""
    shape = np.broadcast_shapes(tuple(a_shape), tuple(b_shape))
    nd = len(shape)
    af = (1,) * (nd - len(a_shape)) + tuple(a_shape)
    bf = (1,) * (nd - len(b_shape)) + tuple(b_shape)
    total = int(np.prod(shape)) if shape else 1
    if af == bf:
        return max(total, 1)
    span, kind = 1, None
    for d in range(nd - 1, -1, -1):
        if shape[d] == 1:
            continue
        k = (af[d] == shape[d], bf[d] == shape[d])
        if kind is None:
            kind = k
        elif k != kind:
            break
        span *= shape[d]
    return max(span, 1)


def _ort_span_mode(a_shape, b_shape, shape) -> int:
    """Which MLAS kernel ORT's broadcaster calls: 0 vector+vector, 1 A scalar in the
    innermost span, 2 B scalar in the innermost span."""
    nd = len(shape)
    a_full = (1,) * (nd - len(a_shape)) + tuple(a_shape)
    b_full = (1,) * (nd - len(b_shape)) + tuple(b_shape)
    if int(np.prod(a_full)) == 1 and int(np.prod(shape)) > 1:
        return 1
    if int(np.prod(b_full)) == 1 and int(np.prod(shape)) > 1:
        return 2
    for d in range(nd - 1, -1, -1):
        if shape[d] == 1:
            continue
        if a_full[d] == 1:
            return 1
        if b_full[d] == 1:
            return 2
        return 0
    return 0


def add_ort(a, b, p: OrtAddParams) -> np.ndarray:
    """ONNX Runtime com.microsoft QLinearAdd (x86 MLAS AVX2): float32 FMAs, round half to
    even, saturating pack to the output type.

    The innermost-span broadcast pattern selects the kernel exactly as ORT's broadcaster:
    a broadcast scalar input is swapped into B and folded into the fixed part."""
    a = np.asarray(a)
    b = np.asarray(b)
    shape = np.broadcast_shapes(a.shape, b.shape)
    mode = _ort_span_mode(a.shape, b.shape, shape)
    fa, fb, shape = _broadcast(a, b)
    ra, rb = p.ratio_a, p.ratio_b
    if mode == 1:  # ORT calls MlasQLinearAdd(B-span, A-scalar): roles swap, fixed part too
        fa, fb, ra, rb = fb, fa, rb, ra
    fixed = p.fixed if mode != 1 else p.fixed_swapped
    out = np.empty(fa.size, np.int64)
    _add_ort_kernel(fa, fb, out, 0 if mode == 0 else 1, ra, rb, fixed, p.qmin, p.qmax)
    return out.astype(p.out_dtype).reshape(shape)


def mul_ort(a, b, p: OrtMulParams) -> np.ndarray:
    """ONNX Runtime com.microsoft QLinearMul (x86 MLAS SSE2): exact int32 product, one
    float32 multiply and add, round half to even, saturating pack."""
    fa, fb, shape = _broadcast(a, b)
    out = np.empty(fa.size, np.int64)
    _mul_ort_kernel(fa, fb, out, p.ratio, p.a_zp, p.b_zp, p.zc, p.qmin, p.qmax)
    return out.astype(p.out_dtype).reshape(shape)


@dataclass(frozen=True)
class PotBinaryParams:
    """Power-of-two Add/Mul: left shifts of each input to a common scale, one rounding shift."""

    a_zp: int
    b_zp: int
    a_shift: int       # Add: left shift of (a - za) to the common scale (Mul: unused, 0)
    b_shift: int
    out_shift: int     # right shift to the output scale (< 0: exact left shift)
    out_zp: int
    qmin: int
    qmax: int
    rounding: int      # fixedpoint.ROUNDING_CODE
    out_dtype: str


def _log2_exact(scale, what) -> int:
    m, e = np.frexp(np.float32(scale))
    if float(m) != 0.5:
        raise KernelError(f"power_of_two: {what} scale {float(scale)!r} is not a power of two")
    return int(e) - 1


def _pot_params(a_shift, b_shift, n, za, zb, zy, dtype, rounding, act_min, act_max):
    lo, hi = _range(dtype)
    if max(a_shift, b_shift) > 30 or abs(n) > 40:
        raise KernelError("power_of_two: scale ratios beyond 2^30 / 2^40 are not supported")
    code = ROUNDING_CODE[Rounding(getattr(rounding, "value", rounding))]
    return PotBinaryParams(int(za), int(zb), a_shift, b_shift, n, int(zy),
                           lo if act_min is None else max(lo, int(act_min)),
                           hi if act_max is None else min(hi, int(act_max)), code,
                           np.dtype(dtype).name)


def pot_add_params(a_scale, a_zp, b_scale, b_zp, y_scale, y_zp, dtype="int8",
                   rounding=Rounding.HALF_EVEN, act_min=None, act_max=None) -> PotBinaryParams:
    """Power-of-two Add: ``k = log2`` of each scale; both inputs go to ``2^min(ka, kb)``."""
    ka, kb, ky = (_log2_exact(a_scale, "input A"), _log2_exact(b_scale, "input B"),
                  _log2_exact(y_scale, "output"))
    k = min(ka, kb)
    return _pot_params(ka - k, kb - k, ky - k, a_zp, b_zp, y_zp, dtype, rounding, act_min, act_max)


def pot_mul_params(a_scale, a_zp, b_scale, b_zp, y_scale, y_zp, dtype="int8",
                   rounding=Rounding.HALF_EVEN, act_min=None, act_max=None) -> PotBinaryParams:
    """Power-of-two Mul: the product has scale ``2^(ka+kb)``; one shift by ``ky - ka - kb``."""
    ka, kb, ky = (_log2_exact(a_scale, "input A"), _log2_exact(b_scale, "input B"),
                  _log2_exact(y_scale, "output"))
    return _pot_params(0, 0, ky - ka - kb, a_zp, b_zp, y_zp, dtype, rounding, act_min, act_max)


@njit
def _add_pot_kernel(a, b, out, za, zb, sa, sb, n, zy, qmin, qmax, rounding):
    for i in range(a.size):
        acc = ((np.int64(a[i]) - za) << sa) + ((np.int64(b[i]) - zb) << sb)
        v = shift_round(acc, n, rounding) + zy
        out[i] = min(max(v, qmin), qmax)


@njit
def _mul_pot_kernel(a, b, out, za, zb, n, zy, qmin, qmax, rounding):
    for i in range(a.size):
        acc = (np.int64(a[i]) - za) * (np.int64(b[i]) - zb)
        v = shift_round(acc, n, rounding) + zy
        out[i] = min(max(v, qmin), qmax)


def add_pot(a, b, p: PotBinaryParams) -> np.ndarray:
    """Power-of-two Add: exact int64 sum at the finer input scale, one arithmetic shift with
    ``p.rounding``, saturate; cannot overflow (shifts are bounded at prepare time)."""
    fa, fb, shape = _broadcast(a, b)
    out = np.empty(fa.size, np.int64)
    _add_pot_kernel(fa, fb, out, p.a_zp, p.b_zp, p.a_shift, p.b_shift, p.out_shift, p.out_zp,
                    p.qmin, p.qmax, p.rounding)
    return out.astype(p.out_dtype).reshape(shape)


def mul_pot(a, b, p: PotBinaryParams) -> np.ndarray:
    """Power-of-two Mul: exact int64 product, one arithmetic shift with ``p.rounding``, saturate."""
    fa, fb, shape = _broadcast(a, b)
    out = np.empty(fa.size, np.int64)
    _mul_pot_kernel(fa, fb, out, p.a_zp, p.b_zp, p.out_shift, p.out_zp, p.qmin, p.qmax,
                    p.rounding)
    return out.astype(p.out_dtype).reshape(shape)


def add_onnx_reference(a, b, a_q, b_q, y_q, dtype) -> np.ndarray:
    """float64 dequantize-add-quantize, round half to even, saturate (onnx.reference style)."""
    lo, hi = _range(dtype)
    fa, fb, shape = _broadcast(a, b)
    v = ((fa.astype(np.float64) - a_q[1]) * float(np.float32(a_q[0]))
         + (fb.astype(np.float64) - b_q[1]) * float(np.float32(b_q[0])))
    y = np.rint(v / float(np.float32(y_q[0]))) + y_q[1]
    return np.clip(y, lo, hi).astype(np.dtype(dtype)).reshape(shape)


def mul_onnx_reference(a, b, a_q, b_q, y_q, dtype) -> np.ndarray:
    """float64 dequantize-multiply-quantize, round half to even, saturate."""
    lo, hi = _range(dtype)
    fa, fb, shape = _broadcast(a, b)
    v = ((fa.astype(np.float64) - a_q[1]) * float(np.float32(a_q[0]))
         * ((fb.astype(np.float64) - b_q[1]) * float(np.float32(b_q[0]))))
    y = np.rint(v / float(np.float32(y_q[0]))) + y_q[1]
    return np.clip(y, lo, hi).astype(np.dtype(dtype)).reshape(shape)


ADD_SCHEMES = ("tflite_reference", "tflite_optimized", "tflite_single_rounding", "tflite_16x8",
               "tflite_reference_fc", "onnxruntime", "onnx_reference", "power_of_two")
MUL_SCHEMES = ADD_SCHEMES


def _scheme_name(scheme) -> str:
    return getattr(scheme, "value", scheme)


def qadd(a, b, a_q, b_q, y_q, dtype, *, scheme="tflite_reference", act_min=None, act_max=None,
         rounding=Rounding.HALF_EVEN):
    """Quantized Add with the scheme's rounding and overflow (saturating output) of ``a``
    (scale, zp = ``a_q``) and ``b`` into ``y_q``, type ``dtype``.

    Rounding and overflow are the scheme's (see the module docstring); ``scheme`` is a
    :class:`~hwsim.kernels.schemes.Requant` (or its string): the ``tflite_*`` schemes run
    TFLite's reference ADD, ``tflite_optimized`` LiteRT's optimized int8 kernel,
    ``power_of_two`` the shift-only Add with ``rounding``, ``onnxruntime`` the MLAS QLinearAdd, ``onnx_reference`` float64."""
    name = _scheme_name(scheme)
    if name.startswith("tflite"):
        return add_tflite(a, b, tflite_add_params(a_q[0], a_q[1], b_q[0], b_q[1], y_q[0], y_q[1],
                                                  dtype, act_min, act_max),
                          optimized=(name == "tflite_optimized"))
    if name == "onnxruntime":
        return add_ort(a, b, ort_add_params(a_q[0], a_q[1], b_q[0], b_q[1], y_q[0], y_q[1], dtype))
    if name == "onnx_reference":
        return add_onnx_reference(a, b, a_q, b_q, y_q, dtype)
    if name == "power_of_two":
        return add_pot(a, b, pot_add_params(a_q[0], a_q[1], b_q[0], b_q[1], y_q[0], y_q[1], dtype,
                                            rounding, act_min, act_max))
    raise KernelError(f"qadd: scheme {name!r} has no Add arithmetic "
                      f"(supported: {', '.join(ADD_SCHEMES)})")


def qmul(a, b, a_q, b_q, y_q, dtype, *, scheme="tflite_reference", act_min=None, act_max=None,
         rounding=Rounding.HALF_EVEN):
    """Quantized Mul with the scheme's rounding and overflow; schemes as :func:`qadd`
    (``onnxruntime`` = MLAS QLinearMul)."""
    name = _scheme_name(scheme)
    if name.startswith("tflite"):
        return mul_tflite(a, b, tflite_mul_params(a_q[0], a_q[1], b_q[0], b_q[1], y_q[0], y_q[1],
                                                  dtype, act_min, act_max),
                          optimized=(name == "tflite_optimized"))
    if name == "onnxruntime":
        return mul_ort(a, b, ort_mul_params(a_q[0], a_q[1], b_q[0], b_q[1], y_q[0], y_q[1], dtype))
    if name == "onnx_reference":
        return mul_onnx_reference(a, b, a_q, b_q, y_q, dtype)
    if name == "power_of_two":
        return mul_pot(a, b, pot_mul_params(a_q[0], a_q[1], b_q[0], b_q[1], y_q[0], y_q[1], dtype,
                                            rounding, act_min, act_max))
    raise KernelError(f"qmul: scheme {name!r} has no Mul arithmetic "
                      f"(supported: {', '.join(MUL_SCHEMES)})")

"""Each runtime's requantization, as one short named function.

Two kinds of function live here:

* **Multiplier derivations** (plain Python/NumPy, run once per layer): how a runtime turns
  the real scale ratio ``sx*sw/sy`` into the number its kernel multiplies by —
  :func:`ort_multiplier` (float32 chain), :func:`double_multiplier` (float64),
  :func:`quantize_multiplier` (TFLite Q31 ``M0`` and shift), :func:`reduce_multiplier_15bit`
  (TFLite 16x8), :func:`fbgemm_bias_term`, :func:`power_of_two_exponent`.
* **Scalar kernels** (``@njit``, inlined into the GEMM/conv requantization loop): one
  function per scheme, mapping one accumulator to one output integer *before* the output
  zero point and clamp, except where the runtime clamps in float (then the function takes
  the float bounds). Integers are passed as int64 holding the runtime's int32 values; where
  C code would cast to int32 the function wraps explicitly with :func:`wrap_int32`.

Where each scheme's arithmetic lives (``Requant`` value -> derivation -> per-element function):

======================== ===================================== =================================================
scheme                   multiplier derivation                 per-accumulator arithmetic
======================== ===================================== =================================================
onnxruntime              :func:`ort_multiplier`                :func:`scale_f32_rne`
tflite_reference         :func:`quantize_multiplier`           :func:`multiply_by_quantized_multiplier_double_rounding`
tflite_reference_fc      :func:`double_multiplier`             :func:`scale_f64_away`
tflite_optimized         :func:`quantize_multiplier`           :func:`multiply_by_quantized_multiplier_ruy_x86`
tflite_single_rounding   ``quantize_multiplier(single_rounding=True)`` :func:`multiply_by_quantized_multiplier_single_rounding`
tflite_16x8              :func:`quantize_multiplier` + :func:`reduce_multiplier_15bit`  :func:`multiply_by_quantized_multiplier_16x8`
fbgemm                   :func:`ort_multiplier` + :func:`fbgemm_bias_term` :func:`scale_fbgemm_f32_rne`
onnx_reference           :func:`ort_multiplier` (float32 chain) :func:`scale_f64_rne`
power_of_two             :func:`power_of_two_exponent`         :func:`shift_round`
======================== ===================================== =================================================

The output zero point, the fused-activation clamp and the saturating cast are added by
:func:`hwsim.kernels.requant.requantize_value` (TFLite schemes add the zero point in int32,
wrapping, as the C code does).

Note on gemmlowp's ``SaturatingRoundingDoublingHighMul``: its nudge ``1 - 2^30`` for negative
products makes exact halves round toward +inf (``-2.5 -> -2``), while ``RoundingDivideByPOT``
rounds halves away from zero; the LiteRT bit-exact tests confirm both.

Conventions (TFLite's): ``shift > 0`` is a left shift, ``shift < 0`` a right shift; ``M0`` is a
Q31 fixed-point mantissa in ``[2^30, 2^31)`` (or 0). Rounding names: ``away`` = half away from
zero, ``up`` = half toward +inf, ``rne`` = half to even.

Examples
--------
>>> from hwsim.kernels.fixedpoint import quantize_multiplier, multiply_by_quantized_multiplier_double_rounding
>>> m0, shift = quantize_multiplier(0.5)
>>> int(m0[0]), int(shift[0])
(1073741824, 0)
>>> int(multiply_by_quantized_multiplier_double_rounding(3, 1073741824, -1))   # 3 * 0.25 = 0.75 -> 1
1
"""
from __future__ import annotations

import math

import numpy as np

from ._config import njit
from .schemes import Rounding

__all__ = [
    # derivations
    "ort_multiplier", "double_multiplier", "quantize_multiplier", "reduce_multiplier_15bit",
    "fbgemm_bias_term", "power_of_two_exponent", "round_half_away",
    # scalar kernels
    "wrap_int32", "wrap_bits", "saturating_rounding_doubling_high_mul", "rounding_divide_by_pot",
    "multiply_by_quantized_multiplier_double_rounding", "multiply_by_quantized_multiplier_ruy_x86",
    "multiply_by_quantized_multiplier_single_rounding", "multiply_by_quantized_multiplier_16x8",
    "scale_f32_rne", "scale_fbgemm_f32_rne", "scale_f64_rne", "scale_f64_away", "shift_round",
    "ROUNDING_CODE",
]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

#: Integer code of each :class:`Rounding` inside compiled kernels.
ROUNDING_CODE = {Rounding.HALF_EVEN: 0, Rounding.HALF_AWAY: 1, Rounding.HALF_UP: 2, Rounding.FLOOR: 3}


# ---------------------------------------------------------------------------------------------
# Multiplier derivations (once per layer)
# ---------------------------------------------------------------------------------------------

def _f32(v) -> np.ndarray:
    return np.atleast_1d(np.asarray(v, dtype=np.float32))


def ort_multiplier(sx, sw, sy) -> np.ndarray:
    """ONNX Runtime / XNNPACK / QNNPACK: ``m = f32(f32(sx*sw) / sy)``, every step rounded to float32.

    Returns a float32 array with one entry per weight scale (per output channel).
    """
    prod = (_f32(sx) * _f32(sw)).astype(np.float32)
    return (prod / _f32(sy)).astype(np.float32)


def fbgemm_bias_term(bias, sx, sw) -> np.ndarray:
    """fbgemm's float bias in accumulator units: ``f32(bias / f32(sx*sw))`` (float32 division)."""
    prod = (_f32(sx) * _f32(sw)).astype(np.float32)
    return (_f32(bias) / prod).astype(np.float32)


def double_multiplier(sx, sw, sy) -> np.ndarray:
    """TFLite / onnx.reference: ``double(sx) * double(sw) / double(sy)`` from the float32 scales."""
    sx64 = np.atleast_1d(np.asarray(np.asarray(sx, np.float32), np.float64))
    sw64 = np.atleast_1d(np.asarray(np.asarray(sw, np.float32), np.float64))
    sy64 = np.atleast_1d(np.asarray(np.asarray(sy, np.float32), np.float64))
    return sx64 * sw64 / sy64


def round_half_away(v: float) -> int:
    """``std::round`` on a double: exact round half away from zero (fraction taken exactly)."""
    t = math.trunc(v)
    frac = v - t                   # exact for IEEE doubles
    if frac >= 0.5:
        t += 1
    elif frac <= -0.5:
        t -= 1
    return int(t)


def quantize_multiplier(real, single_rounding: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """TFLite ``QuantizeMultiplier``: real multiplier (double) -> Q31 ``M0`` (int32) and ``shift``.

    ``real = M0 * 2^(shift-31)``; the mantissa is rounded half away from zero (``std::round``);
    ``M0 == 2^31`` folds to ``2^30`` with ``shift + 1``; ``shift < -31`` flushes to ``M0 = 0,
    shift = 0``; zero gives ``(0, 0)``. With ``single_rounding`` (TFLITE_SINGLE_ROUNDING builds)
    ``shift > 30`` is clamped to ``shift = 30, M0 = 2^31 - 1``.
    Returns int64 arrays (one entry per channel).
    """
    real = np.atleast_1d(np.asarray(real, dtype=np.float64))
    m0 = np.zeros(real.shape, np.int64)
    sh = np.zeros(real.shape, np.int64)
    for i, r in enumerate(real.tolist()):
        if not math.isfinite(r) or r < 0:
            raise ValueError(f"requantization multiplier must be finite and >= 0, got {r!r}")
        if r == 0.0:
            continue
        q, shift = math.frexp(r)
        q_fixed = round_half_away(q * 2147483648.0)
        if q_fixed == (1 << 31):
            q_fixed //= 2
            shift += 1
        if shift < -31:
            shift, q_fixed = 0, 0
        if single_rounding and shift > 30:
            shift, q_fixed = 30, (1 << 31) - 1
        m0[i], sh[i] = q_fixed, shift
    return m0, sh


def reduce_multiplier_15bit(m0) -> np.ndarray:
    """TFLite 16x8: ``Mred = (M0 + 2^15) >> 16`` for ``M0 < 0x7FFF0000``, else ``0x7FFF``."""
    m0 = np.asarray(m0, dtype=np.int64)
    return np.where(m0 < 0x7FFF0000, (m0 + (1 << 15)) >> 16, 0x7FFF).astype(np.int64)


def power_of_two_exponent(sx, sw, sy) -> np.ndarray:
    """Power-of-two accelerators: ``sx*sw/sy == 2^-n`` exactly; returns ``n`` (int64, may be negative).

    Raises ValueError when a ratio is not an exact power of two.
    """
    ratio = double_multiplier(sx, sw, sy)
    out = np.zeros(ratio.shape, np.int64)
    for i, r in enumerate(ratio.tolist()):
        mant, e = math.frexp(r)
        if mant != 0.5:
            raise ValueError(f"power_of_two requantization needs sx*sw/sy = 2^-n, got ratio {r!r}")
        out[i] = -(e - 1)
    return out


# ---------------------------------------------------------------------------------------------
# Scalar kernels (compiled, inlined into the requantization loop)
# ---------------------------------------------------------------------------------------------

@njit
def wrap_int32(v):
    """Two's-complement wrap of an int64 to int32 (what a C ``static_cast<int32_t>`` does on x86)."""
    return ((v + 2147483648) & 0xFFFFFFFF) - 2147483648


@njit
def wrap_bits(v, bits):
    """Two's-complement wrap of an int64 to ``bits`` (< 64) bits."""
    half = np.int64(1) << (bits - 1)
    return ((v + half) & ((half << 1) - 1)) - half


@njit
def saturating_rounding_doubling_high_mul(a, b):
    """int32·int32 -> high 32 bits of 2ab, ties away from zero; only INT32_MIN·INT32_MIN saturates (to INT32_MAX).

    gemmlowp ``SaturatingRoundingDoublingHighMul``: ``(a*b + nudge) / 2^31`` with C (toward zero)
    division, ``nudge = 2^30`` for ``ab >= 0`` else ``1 - 2^30``.
    """
    if a == b and a == -2147483648:
        return np.int64(2147483647)
    ab = np.int64(a) * np.int64(b)
    if ab >= 0:
        s = ab + (np.int64(1) << 30)
        return s >> 31
    s = ab + (np.int64(1) - (np.int64(1) << 30))
    return -((-s) >> 31)


@njit
def rounding_divide_by_pot(x, exponent):
    """Arithmetic right shift by ``exponent`` (0..31), ties away from zero; no overflow possible.

    gemmlowp ``RoundingDivideByPOT``: ``(x >> e) + (remainder > threshold)``,
    ``threshold = mask/2 + (x < 0)``.
    """
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


@njit
def multiply_by_quantized_multiplier_double_rounding(acc, m0, shift):
    """TFLite reference: ``RoundingDivideByPOT(SRDHM(acc·2^left, M0), right)``: two roundings, both away; int32 wrap of ``acc·2^left``."""
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    x = wrap_int32(wrap_int32(acc) << left)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, m0), right)


@njit
def multiply_by_quantized_multiplier_ruy_x86(acc, m0, shift):
    """TFLite optimized (ruy, x86 AVX2/AVX-512): ``t = (acc·2^left·M0 + 2^30) >> 31``, then ``(t + 2^(r-1)) >> r``: two roundings, both up.

    ``acc·2^left`` wraps in int32 (``vpsllvd``); the products and sums are exact in int64.
    """
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    x = wrap_int32(wrap_int32(acc) << left)
    t = (x * np.int64(m0) + (np.int64(1) << 30)) >> 31
    if right > 0:
        t = (t + (np.int64(1) << (right - 1))) >> right
    return t


@njit
def multiply_by_quantized_multiplier_single_rounding(acc, m0, shift):
    """TFLite single-rounding build: ``(acc·M0 + 2^(30-shift)) >> (31-shift)``: one rounding, up; result wrapped to int32."""
    total = 31 - shift
    x = wrap_int32(acc)
    return wrap_int32((x * np.int64(m0) + (np.int64(1) << (total - 1))) >> total)


@njit
def multiply_by_quantized_multiplier_16x8(acc, mred, shift):
    """TFLite int16x8: int64 ``acc``, 15-bit ``Mred``: ``(acc·Mred + 2^(14-shift)) >> (15-shift)``; one rounding, up; product wraps in int64, result wrapped to int32."""
    total = 15 - shift
    return wrap_int32((acc * np.int64(mred) + (np.int64(1) << (total - 1))) >> total)


@njit
def _clamp_round_f32(v, lo, hi):
    """Clamp a float32 to the integer bounds ``[lo, hi]`` in float32, round rne; bounds not exact in
    float32 (32-bit outputs) are enforced again on the integer."""
    if v < np.float32(lo):
        return np.int64(lo), 1
    if v > np.float32(hi):
        return np.int64(hi), 1
    r = np.int64(np.rint(v))
    if r < lo:
        return np.int64(lo), 1
    if r > hi:
        return np.int64(hi), 1
    return r, 0


@njit
def scale_f32_rne(acc, m, lo, hi):
    """ONNX Runtime: ``rne(clamp(f32(acc)·m, lo, hi))`` in float32; ``lo/hi`` = output bounds minus zero point. Returns ``(value, clamped)``."""
    return _clamp_round_f32(np.float32(acc) * np.float32(m), lo, hi)


@njit
def scale_fbgemm_f32_rne(acc, bias_term, m, lo, hi):
    """fbgemm: ``rne(clamp((f32(acc) + bias_term)·m, lo, hi))``, float32 add then float32 multiply (no FMA). Returns ``(value, clamped)``."""
    return _clamp_round_f32((np.float32(acc) + np.float32(bias_term)) * np.float32(m), lo, hi)


@njit
def scale_f64_rne(acc, m, zy, lo, hi):
    """onnx.reference: ``rne(clamp(double(acc)·double(m) + zy, lo, hi))`` in float64: the zero point
    is added *before* rounding, so an odd ``zy`` moves the half-to-even ties. ``m`` is the float32
    chain ``f32(f32(sx·sw)/sy)`` (the evaluator multiplies its float32 scale tensors); ``lo``/``hi``
    are output codes. Returns ``(code, clamped)``."""
    v = np.float64(acc) * m + np.float64(zy)
    if v < lo:
        return np.int64(lo), 1
    if v > hi:
        return np.int64(hi), 1
    return np.int64(np.rint(v)), 0


@njit
def scale_f64_away(acc, m, lo, hi):
    """TFLite reference FULLY_CONNECTED: ``away(clamp(double(acc)·m, lo, hi))`` (``std::round``). Returns ``(value, clamped)``."""
    v = np.float64(acc) * m
    if v < lo:
        return np.int64(lo), 1
    if v > hi:
        return np.int64(hi), 1
    t = np.trunc(v)
    f = v - t
    if f >= 0.5:
        t += 1.0
    elif f <= -0.5:
        t -= 1.0
    return np.int64(t), 0


@njit
def shift_round(acc, n, rounding):
    """Power-of-two requantization: ``acc · 2^-n`` by arithmetic shift; ``n <= 0`` shifts left (exact, int64).

    ``rounding`` codes (:data:`ROUNDING_CODE`): 0 half-even, 1 half-away, 2 half-up, 3 floor.
    """
    if n <= 0:
        return acc << (-n)
    q = acc >> n                       # floor
    rem = acc - (q << n)               # 0 <= rem < 2^n
    half = np.int64(1) << (n - 1)
    if rounding == 3:
        return q
    if rem > half:
        return q + 1
    if rem < half:
        return q
    # exact tie
    if rounding == 2:
        return q + 1
    if rounding == 1:
        return q + 1 if acc >= 0 else q
    return q + (q & 1)

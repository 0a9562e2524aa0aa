"""Lookup-table activations: one table entry per input integer, filled from a float function.

Filling follows TFLite's ``LUTPopulate`` for 8-bit types exactly, in float32:
``deq = f32(in_scale * f32(q - in_zp))``, ``t = f32(fn(deq))``,
``y = clamp(round_half_away(f32(t * f32(1/out_scale))) + out_zp)``. The float function is
evaluated in float64 and rounded once to float32 (what a correctly rounded libm ``expf`` /
``tanhf`` returns). Applying the table is a pure integer gather: no overflow, no rounding.

Fixed output quantization (TFLite int8): sigmoid ``1/256`` with zero point ``-128`` (uint8:
0); tanh ``1/128`` with zero point 0 (uint8: 128). 16-bit formats get full 65536-entry
tables filled the same way (TFLite's int16 LOGISTIC/TANH use other, interpolated tables).

Example
-------
>>> import numpy as np
>>> from hwsim.kernels.lut import sigmoid_lut, apply_lut
>>> lut = sigmoid_lut(0.1, 0, "int8")
>>> apply_lut(np.array([-128, 0, 127], np.int8), lut).tolist()
[-128, 0, 127]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwsim.bits import IntFormat
from hwsim.errors import KernelError

from ._config import njit

__all__ = ["Lut", "build_lut", "apply_lut", "sigmoid_lut", "tanh_lut", "hard_swish_lut",
           "tflite_hard_swish_lut",
           "hard_sigmoid_lut", "SIGMOID_OUT", "TANH_OUT", "f32_sigmoid", "f32_tanh",
           "f32_hard_swish", "f32_hard_sigmoid"]


@dataclass(frozen=True)
class Lut:
    """A filled table: ``table[q - qmin]`` is the output for input ``q``."""

    table: np.ndarray      # int64, one entry per input value
    qmin: int              # smallest input integer
    out_scale: float
    out_zp: int
    dtype: str             # storage dtype of inputs and outputs


def _fmt(fmt) -> tuple[int, int, str]:
    if isinstance(fmt, IntFormat):
        return int(fmt.qmin), int(fmt.qmax), np.dtype(fmt.storage_dtype).name
    name = np.dtype(fmt).name
    if name not in ("int8", "uint8", "int16", "uint16"):
        raise KernelError(f"lut: unsupported format {name!r} (int8, uint8, int16, uint16)")
    info = np.iinfo(name)
    return int(info.min), int(info.max), name


def _round_away(v: np.ndarray) -> np.ndarray:
    return np.where(v >= 0, np.floor(v + 0.5), -np.floor(-v + 0.5))


# float32 functions as TFLite writes them (float64 evaluation rounded once to float32)
def f32_sigmoid(x: np.ndarray) -> np.ndarray:
    """``1.0f / (1.0f + expf(-x))`` with every step in float32."""
    with np.errstate(over="ignore"):
        e = np.exp(-x.astype(np.float64)).astype(np.float32)     # inf for x < -88.7, as expf
    return (np.float32(1.0) / (np.float32(1.0) + e)).astype(np.float32)


def f32_tanh(x: np.ndarray) -> np.ndarray:
    """``tanhf(x)``."""
    return np.tanh(x.astype(np.float64)).astype(np.float32)


def f32_hard_swish(x: np.ndarray) -> np.ndarray:
    """``x * relu6(x + 3) / 6`` in float32."""
    x = x.astype(np.float32)
    r6 = np.minimum(np.maximum(x + np.float32(3), np.float32(0)), np.float32(6))
    return (x * r6 / np.float32(6)).astype(np.float32)


def f32_hard_sigmoid(x: np.ndarray) -> np.ndarray:
    """``relu6(x + 3) / 6`` in float32 (PyTorch/ONNX HardSigmoid with alpha=1/6, beta=0.5)."""
    x = x.astype(np.float32)
    return (np.minimum(np.maximum(x + np.float32(3), np.float32(0)), np.float32(6))
            / np.float32(6)).astype(np.float32)


def build_lut(fn, in_scale, in_zp, out_scale, out_zp, fmt) -> Lut:
    """Fill a table (float32 arithmetic, round half away, saturate) for ``fn`` as TFLite's
    ``LUTPopulate``; ``fn`` maps a float32 array to a float32 array.

    Parameters
    ----------
    fn : vectorized float function, called once on all dequantized input values (float32).
    in_scale, in_zp, out_scale, out_zp : quantization of input and output.
    fmt : :class:`hwsim.bits.IntFormat` or a dtype name (``"int8"``, ``"uint8"``, ...).
    """
    qmin, qmax, name = _fmt(fmt)
    if not (float(in_scale) > 0 and float(out_scale) > 0):
        raise KernelError("lut: scales must be positive")
    q = np.arange(qmin, qmax + 1, dtype=np.int64)
    deq = (np.float32(in_scale) * (q - int(in_zp)).astype(np.float32)).astype(np.float32)
    t = np.asarray(fn(deq), dtype=np.float32)
    inv = np.float32(np.float32(1.0) / np.float32(out_scale))
    rescaled = _round_away((t * inv).astype(np.float32).astype(np.float64))
    y = (rescaled.astype(np.float32) + np.float32(out_zp)).astype(np.float64)
    y = np.where(np.isfinite(y), y, np.where(y > 0, qmax, qmin))
    table = np.clip(y, qmin, qmax).astype(np.int64)
    return Lut(table, qmin, float(np.float32(out_scale)), int(out_zp), name)


@njit
def _gather(x, table, qmin, out):
    for i in range(x.size):
        out[i] = table[np.int64(x[i]) - qmin]


def apply_lut(x, lut: Lut) -> np.ndarray:
    """``y[i] = table[x[i] - qmin]``: pure integer gather, any shape; output dtype = table's."""
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise KernelError(f"apply_lut: integer input expected, got {x.dtype}")
    flat = x.astype(np.int64).ravel()
    if flat.size and (int(flat.min()) < lut.qmin or int(flat.max()) >= lut.qmin + lut.table.size):
        raise KernelError("apply_lut: input values outside the table's format")
    out = np.empty(flat.size, np.int64)
    _gather(flat, lut.table, lut.qmin, out)
    return out.astype(lut.dtype).reshape(x.shape)


#: TFLite's fixed output quantization (scale, zero point) per storage type.
SIGMOID_OUT = {"int8": (1 / 256, -128), "uint8": (1 / 256, 0), "int16": (1 / 32768, 0),
               "uint16": (1 / 65536, 0)}
TANH_OUT = {"int8": (1 / 128, 0), "uint8": (1 / 128, 128), "int16": (1 / 32768, 0),
            "uint16": (1 / 32768, 32768)}


def sigmoid_lut(in_scale, in_zp, fmt) -> Lut:
    """Sigmoid table (rounding as :func:`build_lut`) with TFLite's fixed output quantization
    (int8: 1/256, zp -128)."""
    name = _fmt(fmt)[2]
    s, z = SIGMOID_OUT[name]
    return build_lut(f32_sigmoid, in_scale, in_zp, s, z, fmt)


def tanh_lut(in_scale, in_zp, fmt) -> Lut:
    """Tanh table (rounding as :func:`build_lut`) with TFLite's fixed output quantization
    (int8: 1/128, zp 0)."""
    name = _fmt(fmt)[2]
    s, z = TANH_OUT[name]
    return build_lut(f32_tanh, in_scale, in_zp, s, z, fmt)


def hard_swish_lut(in_scale, in_zp, out_scale, out_zp, fmt) -> Lut:
    """HardSwish float-function table (rounding as :func:`build_lut`); output quantization
    chosen by calibration. For TFLite-exact results use :func:`tflite_hard_swish_lut`."""
    return build_lut(f32_hard_swish, in_scale, in_zp, out_scale, out_zp, fmt)


def hard_sigmoid_lut(in_scale, in_zp, out_scale, out_zp, fmt) -> Lut:
    """HardSigmoid float-function table (rounding as :func:`build_lut`)."""
    return build_lut(f32_hard_sigmoid, in_scale, in_zp, out_scale, out_zp, fmt)


# --------------------------------------------------------------------------- TFLite HARD_SWISH

def _sat16(v: int) -> int:
    return min(max(v, -32768), 32767)


def _wrap16(v: int) -> int:
    return (v + 32768) % 65536 - 32768


def _srdhm16(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul on int16: ties away, C division."""
    if a == b == -32768:
        return 32767
    ab = a * b
    s = ab + ((1 << 14) if ab >= 0 else 1 - (1 << 14))
    q = abs(s) >> 15
    return q if s >= 0 else -q


def _sdhm16(a: int, b: int) -> int:
    """TFLite SaturatingDoublingHighMul on int16: ``a*b / 2^15`` truncated toward zero."""
    if a == b == -32768:
        return 32767
    ab = a * b
    q = abs(ab) >> 15
    return q if ab >= 0 else -q


def _rdbpot16(x: int, e: int) -> int:
    if e == 0:
        return x
    mask = (1 << e) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if (x & mask) > threshold else 0)


def _q16(real: float) -> tuple[int, int]:
    """QuantizeMultiplier then DownScaleInt32ToInt16Multiplier: (M0 + 2^15) >> 16, capped."""
    from .fixedpoint import quantize_multiplier
    m0, shift = quantize_multiplier(real)
    m0, shift = int(m0[0]), int(shift[0])
    if m0 >= (1 << 31) - 1 - (1 << 15):
        return 32767, shift
    return (m0 + (1 << 15)) >> 16, shift


def tflite_hard_swish_lut(in_scale, in_zp, out_scale, out_zp, fmt) -> Lut:
    """TFLite's int8/uint8 HARD_SWISH as a table: every entry computed with TFLite's int16
    fixed-point algorithm (hires input ``x·2^7``, 15-bit multipliers, a rounding and a
    truncating doubling high-mul, ties-away shifts, int16 wrap when adding the zero point).

    Prepare in float32: ``hires = f32(sx/128)``, output multiplier ``f32(hires/sy)``, reluish
    multiplier ``f32(hires / f32(3/32768))``, each QuantizeMultiplier'd and reduced to 16 bits."""
    qmin, qmax, name = _fmt(fmt)
    if name not in ("int8", "uint8"):
        raise KernelError(f"tflite_hard_swish_lut: int8 or uint8 only, got {name!r}")
    hires = np.float32(np.float32(1.0 / 128.0) * np.float32(in_scale))
    out_m, out_e = _q16(float(np.float32(hires / np.float32(out_scale))))
    rel_m, rel_e = _q16(float(np.float32(hires / np.float32(np.float32(3.0) / np.float32(32768.0)))))
    if out_e > 0:
        raise KernelError("tflite_hard_swish_lut: output scale too small for the input scale "
                          "(output multiplier exponent > 0; TFLite rejects this model)")
    table = []
    for q in range(qmin, qmax + 1):
        v = _wrap16(q - int(in_zp))
        hires_v = _wrap16(v * 128)
        pre_out = _srdhm16(hires_v, out_m)
        rel = hires_v
        if rel_e > 0:
            rel = _sat16(rel * (1 << (rel_e - 1)))
        rel = _srdhm16(rel, rel_m)
        if rel_e > 0:
            rel = _sat16(rel * 2)
        if rel_e < 0:
            rel = _rdbpot16(rel, -rel_e)
        rel = (rel + (1 << 15)) >> 1
        y = _rdbpot16(_sdhm16(rel, pre_out), -out_e)
        y = _wrap16(y + int(out_zp))
        table.append(min(max(y, qmin), qmax))
    return Lut(np.array(table, np.int64), qmin, float(np.float32(out_scale)), int(out_zp), name)

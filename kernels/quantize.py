"""Quantize (float -> int) with each runtime's tie rule, dequantize, and int4 packing.

* ONNX / ONNX Runtime QuantizeLinear (int8, uint8, int16, uint16, int4, uint4):
  ``q = sat(rne(f32(x / s)) + z)`` — a float32 *division*, not a multiply by the reciprocal.
* TFLite reference QUANTIZE: ``sat(away(f32(x / s)) + z)``; TFLite optimized QUANTIZE (x86):
  ``sat(rne(f32(x * f32(1/s))) + z)`` — a multiply by the float32 reciprocal
  (``reciprocal=True``).
* DequantizeLinear: ``f32(q - z) * s`` in float32.

``x`` is first cast to float32 (the runtime tensor type). NaN quantizes to ``qmin`` (what
ONNX Runtime's clamp-then-convert produces). Per-axis scales/zero points broadcast along ``axis``.

Examples
--------
>>> import numpy as np
>>> from hwsim.bits import IntFormat
>>> from hwsim.kernels.quantize import quantize, dequantize
>>> quantize(np.array([0.25, 0.75, -0.25], np.float32), 0.5, 0, IntFormat(8)).tolist()
[0, 2, 0]
>>> quantize(np.array([0.25, 0.75, -0.25], np.float32), 0.5, 0, IntFormat(8), "half_away").tolist()
[1, 2, -1]
>>> dequantize(np.array([3], np.int8), 0.5, 1).tolist()
[1.0]
"""
from __future__ import annotations

import numpy as np

from hwsim.bits import IntFormat
from hwsim.errors import KernelError

from .params import PackedInt4
from .schemes import Rounding

__all__ = ["quantize", "dequantize", "round_f32", "pack_int4", "unpack_int4"]


def _per_axis(v, ndim: int, axis, dtype, what: str) -> np.ndarray:
    a = np.asarray(v, dtype=dtype)
    if a.ndim == 0 or a.size == 1:
        return a.reshape(())
    if a.ndim != 1:
        raise KernelError(f"{what} must be a scalar or 1-D, got shape {a.shape}")
    if axis is None:
        raise KernelError(f"{what} has {a.size} entries: pass axis= for per-axis quantization")
    ax = axis % ndim
    shape = [1] * ndim
    shape[ax] = a.size
    return a.reshape(shape)


def round_f32(v: np.ndarray, rounding) -> np.ndarray:
    """Round a float32 array to integral float32 values with the given tie rule (exact, no float tricks)."""
    r = Rounding(rounding)
    v = np.asarray(v, np.float32)
    if r is Rounding.HALF_EVEN:
        return np.rint(v)
    if r is Rounding.FLOOR:
        return np.floor(v)
    fl = np.floor(v)
    frac = v - fl                      # exact: 0 <= frac < 1
    if r is Rounding.HALF_UP:
        return np.where(frac >= 0.5, fl + np.float32(1), fl).astype(np.float32)
    # half away from zero
    t = np.trunc(v)
    f = v - t                          # exact, sign of v
    out = np.where(f >= 0.5, t + np.float32(1), np.where(f <= -0.5, t - np.float32(1), t))
    return out.astype(np.float32)


def quantize(x, scale, zero_point, fmt: IntFormat, rounding=Rounding.HALF_EVEN, axis: int | None = None,
             *, reciprocal: bool = False) -> np.ndarray:
    """``sat(round(f32(x / scale)) + zero_point)`` in ``fmt`` (stored in ``fmt.storage_dtype``; int4 unpacked).

    Parameters
    ----------
    x : array_like, cast to float32.
    scale : float or 1-D (per ``axis``), float32; must be > 0.
    zero_point : int or 1-D (per ``axis``), inside ``fmt``'s range.
    fmt : IntFormat — e.g. ``IntFormat(8)``, ``IntFormat(4, signed=False)``.
    rounding : Rounding — ``half_even`` (ONNX/ORT, TFLite optimized), ``half_away`` (TFLite reference).
    axis : the per-channel axis when scale/zero_point are 1-D.
    reciprocal : multiply by ``f32(1 / scale)`` instead of dividing (TFLite optimized QUANTIZE).
    """
    x = np.asarray(x, dtype=np.float32)
    s = _per_axis(scale, x.ndim, axis, np.float32, "scale")
    z = _per_axis(zero_point, x.ndim, axis, np.int64, "zero_point")
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise KernelError(f"quantize: scale must be finite and > 0, got {np.asarray(scale).tolist()!r}")
    if np.any(z < fmt.qmin) or np.any(z > fmt.qmax):
        raise KernelError(f"quantize: zero point {np.asarray(zero_point).tolist()!r} outside {fmt} range")
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        v = (x * (np.float32(1) / s).astype(np.float32)).astype(np.float32) if reciprocal else (x / s).astype(np.float32)
        r = round_f32(v, rounding).astype(np.float64) + z
        r = np.where(np.isnan(r), fmt.qmin, r)
        r = np.clip(r, fmt.qmin, fmt.qmax)
    return r.astype(fmt.storage_dtype)


def dequantize(q, scale, zero_point=0, axis: int | None = None) -> np.ndarray:
    """``f32(q - zero_point) * scale`` in float32 (ONNX DequantizeLinear)."""
    q = np.asarray(q)
    if isinstance(q, PackedInt4):  # pragma: no cover - np.asarray never returns it
        q = q.unpack()
    s = _per_axis(scale, q.ndim, axis, np.float32, "scale")
    z = _per_axis(zero_point, q.ndim, axis, np.int64, "zero_point")
    return ((q.astype(np.int64) - z).astype(np.float32) * s).astype(np.float32)


def pack_int4(values, signed: bool = True) -> PackedInt4:
    """Pack int4 (``signed``: -8..7) or uint4 (0..15) values two per byte, low nibble first.

    >>> p = pack_int4(np.array([1, -2, 3], np.int8))
    >>> p.data.tolist(), p.unpack().tolist()
    ([225, 3], [1, -2, 3])
    """
    v = np.asarray(values)
    if not np.issubdtype(v.dtype, np.integer):
        raise KernelError(f"pack_int4: integer values expected, got {v.dtype}")
    lo, hi = (-8, 7) if signed else (0, 15)
    if v.size and (int(v.min()) < lo or int(v.max()) > hi):
        raise KernelError(f"pack_int4: values outside [{lo}, {hi}]")
    flat = (v.reshape(-1).astype(np.int64) & 0xF).astype(np.uint8)
    if flat.size % 2:
        flat = np.concatenate([flat, np.zeros(1, np.uint8)])
    data = (flat[0::2] | (flat[1::2] << 4)).astype(np.uint8)
    return PackedInt4(data, v.shape, signed)


def unpack_int4(data, shape, signed: bool = True) -> np.ndarray:
    """Inverse of :func:`pack_int4`: uint8 bytes -> int8 (signed) or uint8 values of ``shape``."""
    d = np.asarray(data, dtype=np.uint8).reshape(-1)
    shape = tuple(int(s) for s in shape)
    n = int(np.prod(shape)) if shape else 1
    if d.size != (n + 1) // 2:
        raise KernelError(f"unpack_int4: {d.size} bytes cannot hold shape {shape}")
    nib = np.empty(2 * d.size, np.int16)
    nib[0::2] = d & 0xF
    nib[1::2] = d >> 4
    nib = nib[:n]
    if signed:
        nib = np.where(nib >= 8, nib - 16, nib)
        return nib.astype(np.int8).reshape(shape)
    return nib.astype(np.uint8).reshape(shape)

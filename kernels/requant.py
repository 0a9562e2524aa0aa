"""Requantization of accumulators: one compiled loop that calls the scheme's named function.

:func:`requantize` maps an integer accumulator array to the output integer format with a
:class:`~hwsim.kernels.params.RequantParams`. The per-element arithmetic of every scheme is
one short function in :mod:`hwsim.kernels.fixedpoint`; this module only selects it, adds
the output zero point and clamps to ``[act_min, act_max]``.

Examples
--------
>>> import numpy as np
>>> from hwsim.bits import IntFormat
>>> from hwsim.kernels import RequantParams, requantize
>>> rp = RequantParams.create("onnxruntime", 0.5, 0.5, 1.0, IntFormat(8, signed=False), 128)
>>> y, stats = requantize(np.array([[2, 6, -1000]]), rp)
>>> y.tolist(), stats.out_clamped
([[128, 130, 0]], 1)
"""
from __future__ import annotations

import numpy as np

from hwsim.errors import KernelError

from . import fixedpoint as fp
from ._config import njit
from .params import SCHEME_CODE, KernelStats, RequantParams
from .schemes import Requant

__all__ = ["requantize", "requantize_value"]


@njit
def requantize_value(acc, code, mult, m0, shift, bias_term, zy, act_min, act_max, rounding):
    """One accumulator -> one output integer (zero point added, clamped to [act_min, act_max]).

    Returns ``(value, clamped)``: ``clamped`` is 1 when the value before the clamp lay outside
    the range (float schemes: the scaled float before rounding; integer schemes: the rounded integer).
    ``code`` is :data:`hwsim.kernels.params.SCHEME_CODE` of the scheme.
    """
    if code == 7:
        # onnx.reference adds the zero point before rounding
        return fp.scale_f64_rne(acc, mult, zy, np.float64(act_min), np.float64(act_max))
    if code == 0 or code == 6 or code == 2:
        # float schemes clamp in float before rounding (as ORT/fbgemm do); the bounds are
        # integers, so this equals an integer clamp after rounding
        lo = act_min - zy
        hi = act_max - zy
        if code == 0:
            r, k = fp.scale_f32_rne(acc, mult, lo, hi)
        elif code == 6:
            r, k = fp.scale_fbgemm_f32_rne(acc, bias_term, mult, lo, hi)
        else:
            r, k = fp.scale_f64_away(acc, mult, np.float64(lo), np.float64(hi))
        return r + zy, k
    if code == 1:
        r = fp.multiply_by_quantized_multiplier_double_rounding(acc, m0, shift)
        r = fp.wrap_int32(r + zy)
    elif code == 3:
        r = fp.multiply_by_quantized_multiplier_ruy_x86(acc, m0, shift)
        r = fp.wrap_int32(r + zy)
    elif code == 4:
        r = fp.multiply_by_quantized_multiplier_single_rounding(acc, m0, shift)
        r = fp.wrap_int32(r + zy)
    elif code == 5:
        r = fp.multiply_by_quantized_multiplier_16x8(acc, m0, shift)
        r = fp.wrap_int32(r + zy)
    else:
        r = fp.shift_round(acc, shift, rounding) + zy
    if r < act_min:
        return np.int64(act_min), 1
    if r > act_max:
        return np.int64(act_max), 1
    return r, 0


@njit
def _requantize_2d(acc, code, mult, m0, shift, bias_term, zy, act_min, act_max, rounding, out):
    """acc (M, C) int64, per-channel params of length C (or 1) -> out (M, C) int64; returns clamp count."""
    M, C = acc.shape
    per_ch = m0.shape[0] > 1
    clamped = 0
    if code == 0:
        # the common ONNX Runtime case, written out so that it vectorises
        lo = act_min - zy
        hi = act_max - zy
        mf = np.empty(C, np.float32)
        for c in range(C):
            mf[c] = np.float32(mult[c if per_ch else 0])
        for m in range(M):
            for c in range(C):
                r, k = fp.scale_f32_rne(acc[m, c], mf[c], lo, hi)
                out[m, c] = r + zy
                clamped += k
        return clamped
    for m in range(M):
        for c in range(C):
            i = c if per_ch else 0
            v, k = requantize_value(acc[m, c], code, mult[i], m0[i], shift[i], bias_term[i], zy, act_min, act_max,
                                    rounding)
            out[m, c] = v
            clamped += k
    return clamped


def requantize_2d(acc2d: np.ndarray, p: RequantParams) -> tuple[np.ndarray, int]:
    """Internal: acc (M, C) int64 C-contiguous, channels last -> (int64 values, clamp count)."""
    out = np.empty(acc2d.shape, np.int64)
    clamped = _requantize_2d(acc2d, SCHEME_CODE[p.scheme], p.multiplier, p.m0, p.shift, p.bias_term,
                             p.out_zero_point, p.act_min, p.act_max, fp.ROUNDING_CODE[p.rounding], out)
    return out, int(clamped)


def requantize(acc, p: RequantParams, axis: int = -1) -> tuple[np.ndarray, KernelStats]:
    """Requantize an integer accumulator array with ``p``; per-channel entries run along ``axis``.

    Returns ``(y, KernelStats)`` with ``y`` in ``p.out_fmt.storage_dtype``; ``out_clamped``
    counts outputs clamped to ``[act_min, act_max]``.
    """
    if not isinstance(p, RequantParams):
        raise KernelError(f"requantize: p must be RequantParams, got {type(p).__name__}")
    a = np.asarray(acc)
    if not np.issubdtype(a.dtype, np.integer):
        raise KernelError(f"requantize: accumulator must be an integer array, got {a.dtype}")
    if a.ndim == 0:
        a = a.reshape(1)
    ax = axis % a.ndim
    C = a.shape[ax]
    if p.channels not in (1, C):
        raise KernelError(f"requantize: {p.channels} per-channel multipliers for {C} channels on axis {axis}")
    if p.scheme is not Requant.FBGEMM and p.scheme is not Requant.TFLITE_16X8 and a.dtype == np.uint64:
        raise KernelError("requantize: uint64 accumulators are not supported")
    moved = np.moveaxis(a.astype(np.int64, copy=False), ax, -1)
    acc2d = np.ascontiguousarray(moved.reshape(-1, C))
    out, clamped = requantize_2d(acc2d, p)
    y = np.moveaxis(out.reshape(moved.shape), -1, ax).astype(p.out_fmt.storage_dtype)
    return y, KernelStats(out_clamped=clamped)

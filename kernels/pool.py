"""Integer pooling (NCHW): max pool, average pool with the runtime's rounding, global average.

Same quantization in and out (TFLite int8 AVERAGE_POOL_2D / MAX_POOL_2D, ONNX pooling on
quantized tensors), so pooling is pure integer arithmetic:

* max pool: the maximum over the window; padded positions are ignored.
* ONNX Runtime's com.microsoft QLinearAveragePool (:func:`avg_pool_ort`) rescales in float32:
  ``x̂ = f32(sx * f32(x - zx))`` summed in float32 in row-major window order, divided by
  ``f32(count)``, then ``rne(f32(f32(sum / sy) + zy))``; QLinearGlobalAveragePool
  (:func:`global_avg_pool_ort`) sums integers, then ``rne(clamp(f32(acc) * m))`` with
  ``m = f32(sx / f32(sy * f32(H*W)))`` and ``acc = Σx - zx*H*W``.
* average pool: ``acc = Σ x`` over the window in int64, divided by the window count with the
  chosen tie rule. TFLite (reference and optimized): padded positions are excluded from
  both sum and count, ``(acc ± n/2) / n`` with C division, i.e. ties away from zero
  (``Rounding.HALF_AWAY``). ``count_include_pad=True`` (ONNX ``count_include_pad=1``): padded
  positions contribute the zero point (a real 0) and the count is the full window.

Example
-------
>>> import numpy as np
>>> from hwsim.kernels.pool import avg_pool
>>> x = np.array([[[[1, 2], [3, 5]]]], np.int8)
>>> avg_pool(x, (2, 2), (1, 1)).tolist()        # 11/4 = 2.75 -> 3
[[[[3]]]]
"""
from __future__ import annotations

import numpy as np

from hwsim.errors import KernelError

from ._config import njit
from .fixedpoint import ROUNDING_CODE
from .schemes import Rounding

__all__ = ["max_pool", "avg_pool", "global_avg_pool", "same_pads", "pool_output_size",
           "divide_round", "avg_pool_ort", "global_avg_pool_ort"]


def pool_output_size(size: int, k: int, s: int, pad_before: int, pad_after: int) -> int:
    """Output length of a pooling window sweep (floor mode)."""
    return (size + pad_before + pad_after - k) // s + 1


def same_pads(in_hw, kernel, stride) -> tuple[int, int, int, int]:
    """TFLite ``SAME`` padding as (top, left, bottom, right): output ``ceil(in/stride)``,
    total ``max((out-1)*stride + k - in, 0)``, the smaller half before."""
    pads = []
    for size, k, s in zip(in_hw, kernel, stride):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
    return pads[0][0], pads[1][0], pads[0][1], pads[1][1]


@njit
def divide_round(acc, n, mode):
    """Integer ``acc / n`` (n > 0) rounded by ``mode`` (fixedpoint.ROUNDING_CODE):
    0 half-even, 1 half-away (TFLite ``(acc ± n/2)/n``), 2 half-up, 3 floor."""
    q = acc // n                 # floor
    r = acc - q * n              # 0 <= r < n
    if mode == 3:
        return q
    twice = 2 * r
    if twice > n:
        return q + 1
    if twice < n:
        return q
    # exact tie (only when n is even)
    if mode == 0:
        return q + (q & 1)
    if mode == 1:
        return q + 1 if acc > 0 else q
    return q + 1                  # half up


@njit
def _avg_pool_kernel(x, out, kh, kw, sh, sw, pt, pl, include_pad, zp, mode, lo, hi):
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = out.shape[2], out.shape[3]
    for n in range(n_):
        for c in range(c_):
            for oy in range(oh_):
                y0 = oy * sh - pt
                for ox in range(ow_):
                    x0 = ox * sw - pl
                    acc = np.int64(0)
                    cnt = 0
                    for dy in range(kh):
                        iy = y0 + dy
                        for dx in range(kw):
                            ix = x0 + dx
                            if iy < 0 or iy >= h_ or ix < 0 or ix >= w_:
                                if include_pad:
                                    acc += zp
                                    cnt += 1
                            else:
                                acc += np.int64(x[n, c, iy, ix])
                                cnt += 1
                    if cnt == 0:
                        v = np.int64(zp)
                    else:
                        v = divide_round(acc, np.int64(cnt), mode)
                    out[n, c, oy, ox] = min(max(v, lo), hi)


@njit
def _max_pool_kernel(x, out, kh, kw, sh, sw, pt, pl, lo, hi):
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = out.shape[2], out.shape[3]
    for n in range(n_):
        for c in range(c_):
            for oy in range(oh_):
                y0 = oy * sh - pt
                for ox in range(ow_):
                    x0 = ox * sw - pl
                    m = np.int64(-(1 << 62))
                    for dy in range(kh):
                        iy = y0 + dy
                        if iy < 0 or iy >= h_:
                            continue
                        for dx in range(kw):
                            ix = x0 + dx
                            if ix < 0 or ix >= w_:
                                continue
                            v = np.int64(x[n, c, iy, ix])
                            if v > m:
                                m = v
                    out[n, c, oy, ox] = min(max(m, lo), hi)


def _check(x, kernel, stride, pads):
    x = np.asarray(x)
    if x.ndim != 4:
        raise KernelError(f"pool: input must be NCHW (4-D), got shape {x.shape}")
    if x.dtype.kind not in "iu":
        raise KernelError(f"pool: input must be an integer array, got {x.dtype}")
    kh, kw = (int(v) for v in kernel)
    sh, sw = (int(v) for v in stride)
    pt, pl, pb, pr = (int(v) for v in (pads or (0, 0, 0, 0)))
    if min(kh, kw, sh, sw) < 1 or min(pt, pl, pb, pr) < 0:
        raise KernelError(f"pool: bad kernel {kernel} / stride {stride} / pads {pads}")
    oh = pool_output_size(x.shape[2], kh, sh, pt, pb)
    ow = pool_output_size(x.shape[3], kw, sw, pl, pr)
    if oh < 1 or ow < 1:
        raise KernelError(f"pool: window {kernel} larger than padded input {x.shape[2:]}")
    info = np.iinfo(x.dtype)
    return x, (kh, kw), (sh, sw), (pt, pl), (oh, ow), (int(info.min), int(info.max))


def _bounds(rng, act_min, act_max):
    lo, hi = rng
    return (lo if act_min is None else max(lo, int(act_min)),
            hi if act_max is None else min(hi, int(act_max)))


def avg_pool(x, kernel, stride, pads=None, *, count_include_pad=False, zero_point=0,
             rounding=Rounding.HALF_AWAY, act_min=None, act_max=None) -> np.ndarray:
    """Integer average pool: int64 sum, one integer division rounded by ``rounding``
    (TFLite: half away from zero), clamp to the type / activation range; cannot overflow.

    Parameters
    ----------
    x : (N, C, H, W) integer array. kernel, stride : (h, w). pads : (top, left, bottom, right).
    count_include_pad : padded positions count and contribute ``zero_point`` (ONNX style);
        False (TFLite) excludes them from sum and count.
    rounding : :class:`~hwsim.kernels.schemes.Rounding` (or its string value).
    """
    x, (kh, kw), (sh, sw), (pt, pl), (oh, ow), rng = _check(x, kernel, stride, pads)
    lo, hi = _bounds(rng, act_min, act_max)
    mode = ROUNDING_CODE[Rounding(getattr(rounding, "value", rounding))]
    out = np.empty((x.shape[0], x.shape[1], oh, ow), np.int64)
    _avg_pool_kernel(x.astype(np.int64), out, kh, kw, sh, sw, pt, pl,
                     bool(count_include_pad), int(zero_point), mode, lo, hi)
    return out.astype(x.dtype)


def max_pool(x, kernel, stride, pads=None, *, act_min=None, act_max=None) -> np.ndarray:
    """Integer max pool (exact; padded positions ignored), then clamp to the activation range."""
    x, (kh, kw), (sh, sw), (pt, pl), (oh, ow), rng = _check(x, kernel, stride, pads)
    lo, hi = _bounds(rng, act_min, act_max)
    out = np.empty((x.shape[0], x.shape[1], oh, ow), np.int64)
    _max_pool_kernel(x.astype(np.int64), out, kh, kw, sh, sw, pt, pl, lo, hi)
    return out.astype(x.dtype)


def global_avg_pool(x, *, rounding=Rounding.HALF_AWAY, act_min=None, act_max=None) -> np.ndarray:
    """Average over H and W (output (N, C, 1, 1)), same integer division as :func:`avg_pool`."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise KernelError(f"global_avg_pool: input must be NCHW (4-D), got shape {x.shape}")
    return avg_pool(x, x.shape[2:], (1, 1), None, rounding=rounding, act_min=act_min,
                    act_max=act_max)


@njit
def _avg_pool_ort_kernel(x, out, kh, kw, sh, sw, pt, pl, include_pad, sx, zx, sy, zy, lo, hi):
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = out.shape[2], out.shape[3]
    fsx = np.float32(sx)
    fsy = np.float32(sy)
    fzy = np.float32(zy)
    for n in range(n_):
        for c in range(c_):
            for oy in range(oh_):
                hs = oy * sh - pt
                he = min(hs + kh, h_)
                hs = max(hs, 0)
                for ox in range(ow_):
                    ws = ox * sw - pl
                    we = min(ws + kw, w_)
                    ws = max(ws, 0)
                    acc = np.float32(0.0)
                    for iy in range(hs, he):
                        for ix in range(ws, we):
                            acc = np.float32(acc + np.float32(fsx * np.float32(np.int64(x[n, c, iy, ix]) - zx)))
                    cnt = kh * kw if include_pad else (he - hs) * (we - ws)
                    y = np.float32(acc / np.float32(cnt))
                    v = np.float32(np.float32(y / fsy) + fzy)
                    if not (v > -2147483648.5 and v < 2147483647.5):
                        q = np.int64(-(1 << 31))
                    else:
                        q = np.int64(np.rint(v))
                    out[n, c, oy, ox] = min(max(q, lo), hi)


def avg_pool_ort(x, kernel, stride, pads, x_scale, x_zp, y_scale, y_zp, *,
                 count_include_pad=False) -> np.ndarray:
    """ONNX Runtime com.microsoft QLinearAveragePool (NCHW): float32 dequantize, float32 sum in
    window order, float32 division by the count, ``rne(f32(sum/sy) + zy)``, saturate.

    Padded positions never contribute to the sum; ``count_include_pad`` only changes the count."""
    x, (kh, kw), (sh, sw), (pt, pl), (oh, ow), (lo, hi) = _check(x, kernel, stride, pads)
    out = np.empty((x.shape[0], x.shape[1], oh, ow), np.int64)
    _avg_pool_ort_kernel(x.astype(np.int64), out, kh, kw, sh, sw, pt, pl,
                         bool(count_include_pad), float(np.float32(x_scale)), int(x_zp),
                         float(np.float32(y_scale)), int(y_zp), lo, hi)
    return out.astype(x.dtype)


@njit
def _gap_ort_kernel(x, out, m, zx, zy, lo, hi):
    n_, c_, h_, w_ = x.shape
    fm = np.float32(m)
    flo = np.float32(lo - zy)
    fhi = np.float32(hi - zy)
    bias = -zx * h_ * w_
    for n in range(n_):
        for c in range(c_):
            acc = np.int64(bias)
            for iy in range(h_):
                for ix in range(w_):
                    acc += np.int64(x[n, c, iy, ix])
            v = np.float32(np.float32(acc) * fm)
            v = min(max(v, flo), fhi)
            out[n, c, 0, 0] = np.int64(np.rint(v)) + zy


def global_avg_pool_ort(x, x_scale, x_zp, y_scale, y_zp) -> np.ndarray:
    """ONNX Runtime com.microsoft QLinearGlobalAveragePool (MLAS, NCHW): integer sum minus
    ``zx*H*W``, times ``m = f32(sx / f32(sy * f32(H*W)))`` in float32, clamped in float to the
    output range, rounded half to even, ``+ zy``."""
    x = np.asarray(x)
    if x.ndim != 4 or x.dtype.kind not in "iu":
        raise KernelError(f"global_avg_pool_ort: integer NCHW input expected, got {x.dtype} {x.shape}")
    info = np.iinfo(x.dtype)
    hw = x.shape[2] * x.shape[3]
    m = np.float32(np.float32(x_scale) / np.float32(np.float32(y_scale) * np.float32(hw)))
    out = np.empty((x.shape[0], x.shape[1], 1, 1), np.int64)
    _gap_ort_kernel(x.astype(np.int64), out, float(m), int(x_zp), int(y_zp),
                    int(info.min), int(info.max))
    return out.astype(x.dtype)

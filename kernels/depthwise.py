"""Direct depthwise convolution (groups == Cin, one input channel per group), exact int64 sums.

Used by :func:`hwsim.kernels.qconv2d` when no running sum can leave the accumulator
(``KH·KW·max|x-zx|·max|w-zw| + max|bias| <= acc_max``): then the accumulator semantics of
:mod:`hwsim.kernels.params` reduce to the exact sum, which this kernel computes without an
im2col. Other cases (narrow accumulators that may overflow, pair-saturation emulation) go
through the im2col + GEMM engine, which follows the per-MAC semantics.

Each output element still adds its taps in the canonical (kernel row, kernel column) order.
"""
from __future__ import annotations

import numpy as np

from ._config import njit

__all__ = ["depthwise_acc_exact"]


@njit
def _depthwise_direct(x, w, mult, sh, sw, dh, dw, pt, pl, OH, OW, bias, out):
    """x (N, C, H, W) int32 centred; w (Cout, KH, KW) int32 centred; out (N*OH*OW, Cout) int64."""
    NB, C, H, W = x.shape
    Cout, KH, KW = w.shape
    buf = np.empty((OH, OW), np.int64)
    for b in range(NB):
        for co in range(Cout):
            c = co // mult
            buf[:, :] = bias[co]
            for kh in range(KH):
                for kw in range(KW):
                    wv = np.int64(w[co, kh, kw])
                    # output columns whose input column is inside the image (others read padding = 0)
                    off = kw * dw - pl
                    ow_lo = 0 if off >= 0 else (-off + sw - 1) // sw
                    ow_hi = min(OW, (W - 1 - off) // sw + 1) if W - 1 - off >= 0 else 0
                    for oh in range(OH):
                        ih = oh * sh - pt + kh * dh
                        if ih < 0 or ih >= H:
                            continue
                        xrow = x[b, c, ih]
                        brow = buf[oh]
                        for ow in range(ow_lo, ow_hi):
                            brow[ow] += np.int64(xrow[ow * sw + off]) * wv
            base = b * OH * OW
            for oh in range(OH):
                for ow in range(OW):
                    out[base + oh * OW + ow, co] = buf[oh, ow]


def depthwise_acc_exact(xc: np.ndarray, wc: np.ndarray, bias: np.ndarray, p, OH: int, OW: int) -> np.ndarray:
    """Exact depthwise accumulators (N*OH*OW, Cout) int64 from centred int32 ``xc`` (N, C, H, W)
    and ``wc`` (Cout, KH, KW); ``p`` is the ConvParams (geometry only)."""
    NB, C = xc.shape[:2]
    Cout = wc.shape[0]
    out = np.empty((NB * OH * OW, Cout), np.int64)
    (sh, sw), (dh, dw) = p.strides, p.dilations
    _depthwise_direct(xc, wc, Cout // C, sh, sw, dh, dw, p.pads[0], p.pads[1], OH, OW, bias, out)
    return out

"""Float Conv (1-D and 2-D): im2col + ``np.matmul`` for grouped/dense, a vectorised
kernel-position loop for depthwise.

Normalised attributes (set by the importer): ``kernel_shape``, ``strides``, ``dilations``,
``pads`` (all begins then all ends: ``(top, left, bottom, right)`` in 2-D), ``group`` and
``depthwise`` (group == input channels > 1, one input channel per group).
Weights are ``(M, C/group, kH, kW)``; bias ``(M,)`` optional.
"""
from __future__ import annotations

import numpy as np

from ._util import out_size, pad_spatial

__all__ = ["conv", "conv2d"]


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, strides, dilations, pads, group: int) -> np.ndarray:
    """NCHW convolution. ``pads`` = (top, left, bottom, right).

    >>> import numpy as np
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> conv2d(x, np.ones((1, 1, 2, 2), np.float32), None, (2, 2), (1, 1), (0, 0, 0, 0), 1)[0, 0]
    array([[10., 18.],
           [42., 50.]], dtype=float32)
    """
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    sh, sw = strides
    dh, dw = dilations
    pt, pl, pb, pr = pads
    oh = out_size(h, kh, sh, dh, pt, pb)
    ow = out_size(wd, kw, sw, dw, pl, pr)
    dtype = np.result_type(x.dtype, w.dtype)
    xp = pad_spatial(x, (pt, pl), (pb, pr))
    hspan, wspan = (oh - 1) * sh + 1, (ow - 1) * sw + 1
    if group == c and cg == 1 and group > 1:
        mult = m // c
        y = np.zeros((n, m, oh, ow), dtype=dtype)
        tmp = np.empty_like(y)
        for i in range(kh):
            for j in range(kw):
                xs = xp[:, :, i * dh:i * dh + hspan:sh, j * dw:j * dw + wspan:sw]
                if mult > 1:
                    xs = np.repeat(xs, mult, axis=1)
                np.multiply(xs, w[:, 0, i, j].reshape(1, m, 1, 1), out=tmp)
                y += tmp
    else:
        if kh == kw == 1:
            cols = xp[:, :, :hspan:sh, :wspan:sw] if (sh, sw) != (1, 1) else xp
        else:
            cols = np.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
            for i in range(kh):
                for j in range(kw):
                    cols[:, :, i, j] = xp[:, :, i * dh:i * dh + hspan:sh, j * dw:j * dw + wspan:sw]
        k = cg * kh * kw
        cols = cols.reshape(n, group, k, oh * ow)
        wg = w.reshape(group, m // group, k)
        if group == 1:
            y = np.einsum("mk,nkp->nmp", wg[0], cols[:, 0], optimize=True)
        else:
            y = np.empty((n, m, oh * ow), dtype=dtype)
            mg = m // group
            for g in range(group):
                y[:, g * mg:(g + 1) * mg] = np.einsum("mk,nkp->nmp", wg[g], cols[:, g], optimize=True)
        y = np.ascontiguousarray(y, dtype=dtype).reshape(n, m, oh, ow)
    if b is not None:
        y += b.reshape(1, m, 1, 1).astype(dtype, copy=False)
    return y


def conv(node, inputs, ctx=None):
    """Registry entry for ``Conv``."""
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    a = node.attrs
    if x.ndim == 3:  # 1-D: run as 2-D with a unit height
        (s,), (d,), (p0, p1) = a["strides"], a["dilations"], a["pads"]
        y = conv2d(x[:, :, None, :], w[:, :, None, :], b, (1, s), (1, d), (0, p0, 0, p1), a["group"])
        return (y[:, :, 0, :],)
    return (conv2d(x, w, b, a["strides"], a["dilations"], a["pads"], a["group"]),)

"""Float pooling: MaxPool, AveragePool (pads, ceil_mode, dilations, count_include_pad) and
GlobalAveragePool, for 1-D and 2-D spatial inputs (NC[H]W).

Normalised attributes: ``kernel_shape``, ``strides``, ``dilations``, ``pads`` (all begins
then all ends), ``ceil_mode`` (0/1), and for AveragePool ``count_include_pad`` (0/1).
With ``count_include_pad`` the divisor counts the explicit padding but never the extra
cells a ``ceil_mode`` window overhangs (onnxruntime's rule).
"""
from __future__ import annotations

import numpy as np

from ._util import out_size

__all__ = ["max_pool", "average_pool", "global_average_pool", "global_max_pool"]


def _windows(x, attrs, fill):
    """Yield strided views of the padded input, one per kernel position, plus geometry."""
    nd = x.ndim - 2
    k, s, d = attrs["kernel_shape"], attrs["strides"], attrs["dilations"]
    pads = attrs["pads"]
    begins, ends = pads[:nd], pads[nd:]
    ceil = bool(attrs.get("ceil_mode", 0))
    outs = [out_size(x.shape[2 + i], k[i], s[i], d[i], begins[i], ends[i], ceil) for i in range(nd)]
    # extra end padding so that every (ceil-mode) window lies inside the array
    extra = [max(0, (outs[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1 - (x.shape[2 + i] + begins[i] + ends[i]))
             for i in range(nd)]
    widths = [(0, 0), (0, 0)] + [(begins[i], ends[i] + extra[i]) for i in range(nd)]
    xp = np.pad(x, widths, mode="constant", constant_values=fill) if any(map(any, widths)) else x
    return xp, outs, k, s, d, begins, ends, extra


def _positions(k):
    if len(k) == 1:
        return [(i,) for i in range(k[0])]
    return [(i, j) for i in range(k[0]) for j in range(k[1])]


def _slice(xp, pos, outs, s, d):
    idx = [slice(None), slice(None)]
    for ax, p in enumerate(pos):
        start = p * d[ax]
        idx.append(slice(start, start + (outs[ax] - 1) * s[ax] + 1, s[ax]))
    return xp[tuple(idx)]


def max_pool(node, inputs, ctx=None):
    x = inputs[0]
    fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    xp, outs, k, s, d, *_ = _windows(x, node.attrs, fill)
    y = None
    for pos in _positions(k):
        v = _slice(xp, pos, outs, s, d)
        y = v.copy() if y is None else np.maximum(y, v, out=y)
    return (y,)


def average_pool(node, inputs, ctx=None):
    x = inputs[0]
    xp, outs, k, s, d, begins, ends, extra = _windows(x, node.attrs, 0)
    nd = x.ndim - 2
    include = bool(node.attrs.get("count_include_pad", 0))
    # divisor: window-sum of a mask that is 1 on the input (and on explicit pads if included)
    mask = np.ones(x.shape[2:], dtype=np.float64)
    mask = np.pad(mask, [(begins[i], ends[i]) for i in range(nd)], mode="constant",
                  constant_values=1.0 if include else 0.0)
    mask = np.pad(mask, [(0, extra[i]) for i in range(nd)], mode="constant", constant_values=0.0)
    mask = mask.reshape((1, 1) + mask.shape)
    acc = np.zeros(x.shape[:2] + tuple(outs), dtype=x.dtype)
    cnt = np.zeros((1, 1) + tuple(outs), dtype=np.float64)
    for pos in _positions(k):
        acc += _slice(xp, pos, outs, s, d)
        cnt += _slice(mask, pos, outs, s, d)
    with np.errstate(divide="ignore", invalid="ignore"):
        return ((acc / cnt.astype(x.dtype)).astype(x.dtype, copy=False),)


def global_average_pool(node, inputs, ctx=None):
    x = inputs[0]
    return (x.mean(axis=tuple(range(2, x.ndim)), keepdims=True, dtype=np.float64).astype(x.dtype),)


def global_max_pool(node, inputs, ctx=None):
    x = inputs[0]
    return (x.max(axis=tuple(range(2, x.ndim)), keepdims=True),)

"""Float reference of ONNX QuantizeLinear / DequantizeLinear (per-tensor or per-axis).

Normalised attributes: ``axis`` (non-negative; used only when the scale is 1-D with more
than one element) and ``saturate``. Rounding is half-to-even, as ONNX specifies.
"""
from __future__ import annotations

import numpy as np

__all__ = ["quantize_linear", "dequantize_linear"]


def _bcast(p, x, axis):
    p = np.asarray(p)
    if p.ndim == 1 and p.size > 1:
        shape = [1] * x.ndim
        shape[axis] = p.size
        return p.reshape(shape)
    return p


def quantize_linear(node, inputs, ctx=None):
    x, scale = inputs[0], inputs[1]
    zp = inputs[2] if len(inputs) > 2 and inputs[2] is not None else np.zeros((), np.uint8)
    axis = node.attrs.get("axis", 1)
    q = np.rint(x.astype(np.float32) / _bcast(scale, x, axis).astype(np.float32)) + _bcast(zp, x, axis).astype(np.float32)
    info = np.iinfo(zp.dtype)
    return (np.clip(q, info.min, info.max).astype(zp.dtype),)


def dequantize_linear(node, inputs, ctx=None):
    x, scale = inputs[0], inputs[1]
    zp = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
    axis = node.attrs.get("axis", 1)
    xi = x.astype(np.int64) if x.dtype.kind in "iu" else x.astype(np.float32)
    if zp is not None:
        xi = xi - _bcast(zp, x, axis).astype(xi.dtype)
    return ((xi.astype(np.float32) * _bcast(scale, x, axis).astype(np.float32)).astype(scale.dtype),)

"""Float reductions and normalisations: ReduceMean, Softmax, BatchNormalization (when not
folded into a Conv/Gemm), LayerNormalization.

Normalised attributes: ReduceMean ``axes`` (non-negative tuple, never empty) and
``keepdims``; Softmax ``axes`` (non-negative tuple: the opset < 13 "coerce to 2-D"
semantics become the trailing axes from ``axis``); BatchNormalization ``epsilon`` with the
channel axis 1; LayerNormalization ``axis`` (non-negative) and ``epsilon``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["reduce_mean", "reduce_sum", "reduce_max", "softmax", "batch_normalization", "layer_normalization"]


def reduce_mean(node, inputs, ctx=None):
    x = inputs[0]
    y = x.mean(axis=tuple(node.attrs["axes"]), keepdims=bool(node.attrs.get("keepdims", 1)), dtype=np.float64)
    return (np.asarray(y).astype(x.dtype),)


def reduce_sum(node, inputs, ctx=None):
    x = inputs[0]
    y = x.sum(axis=tuple(node.attrs["axes"]), keepdims=bool(node.attrs.get("keepdims", 1)),
              dtype=np.float64 if x.dtype.kind == "f" else None)
    return (np.asarray(y).astype(x.dtype),)


def reduce_max(node, inputs, ctx=None):
    x = inputs[0]
    return (np.asarray(x.max(axis=tuple(node.attrs["axes"]), keepdims=bool(node.attrs.get("keepdims", 1)))),)


def softmax(node, inputs, ctx=None):
    """Softmax taken jointly over ``attrs['axes']``.

    >>> import numpy as np
    >>> from hwsim.graph import Node
    >>> softmax(Node("s", "Softmax", ("x",), ("y",), {"axes": (1,)}), [np.zeros((1, 4), np.float32)])[0]
    array([[0.25, 0.25, 0.25, 0.25]], dtype=float32)
    """
    x = inputs[0]
    axes = tuple(node.attrs["axes"])
    m = x.max(axis=axes, keepdims=True)
    e = np.exp(x - m)
    return ((e / e.sum(axis=axes, keepdims=True)).astype(x.dtype, copy=False),)


def batch_normalization(node, inputs, ctx=None):
    x, scale, bias, mean, var = inputs[:5]
    eps = node.attrs.get("epsilon", 1e-5)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    s = (scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps))
    b = bias.astype(np.float64) - mean.astype(np.float64) * s
    return ((x * s.astype(x.dtype).reshape(shape) + b.astype(x.dtype).reshape(shape)),)


def layer_normalization(node, inputs, ctx=None):
    x, scale = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    axis = node.attrs["axis"]
    eps = node.attrs.get("epsilon", 1e-5)
    axes = tuple(range(axis, x.ndim))
    xd = x.astype(np.float64)
    mu = xd.mean(axis=axes, keepdims=True)
    var = ((xd - mu) ** 2).mean(axis=axes, keepdims=True)
    y = (xd - mu) / np.sqrt(var + eps) * scale
    if bias is not None:
        y = y + bias
    return (y.astype(x.dtype),)

"""Float element-wise ops with NumPy broadcasting (ONNX multidirectional broadcasting).

Computation stays in the inputs' dtype (float32 in, float32 out) to match onnxruntime.
Normalised attributes: ``Clip`` has ``min``/``max`` floats (``-inf``/``inf`` when absent;
opset-11+ inputs are moved into attributes at import); ``HardSigmoid`` has ``alpha``/``beta``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["add", "sub", "mul", "div", "pow_", "relu", "clip", "hard_sigmoid", "hard_swish",
           "sigmoid", "tanh", "erf", "sqrt", "erf_array", "leaky_relu", "prelu", "neg", "exp", "equal",
           "where", "cast", "gelu"]


def _same(y, like):
    return y.astype(like.dtype, copy=False) if y.dtype != like.dtype else y


def add(node, inputs, ctx=None):
    return (np.add(inputs[0], inputs[1]),)


def sub(node, inputs, ctx=None):
    return (np.subtract(inputs[0], inputs[1]),)


def mul(node, inputs, ctx=None):
    return (np.multiply(inputs[0], inputs[1]),)


def div(node, inputs, ctx=None):
    a, b = inputs
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":   # ONNX integer division truncates toward zero
        with np.errstate(divide="ignore", invalid="ignore"):
            return (_same(np.trunc(np.true_divide(a, b)), a),)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.divide(a, b),)


def pow_(node, inputs, ctx=None):
    a, b = inputs
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        if a.dtype.kind == "f":
            return (_same(np.power(a, b.astype(a.dtype, copy=False)), a),)
        return (_same(np.power(a, b), a),)


def relu(node, inputs, ctx=None):
    x = inputs[0]
    return (np.maximum(x, x.dtype.type(0)),)


def clip(node, inputs, ctx=None):
    """``min(max(x, min), max)`` with the normalised ``min``/``max`` attributes."""
    x = inputs[0]
    lo, hi = node.attrs.get("min", -np.inf), node.attrs.get("max", np.inf)
    has_lo = lo is not None and lo != -np.inf
    has_hi = hi is not None and hi != np.inf
    if has_lo:
        y = np.maximum(x, np.asarray(lo).astype(x.dtype))
        if has_hi:
            np.minimum(y, np.asarray(hi).astype(x.dtype), out=y)
        return (y,)
    if has_hi:
        return (np.minimum(x, np.asarray(hi).astype(x.dtype)),)
    return (x.copy(),)


def hard_sigmoid(node, inputs, ctx=None):
    x = inputs[0]
    t = x.dtype.type
    alpha, beta = t(node.attrs.get("alpha", 0.2)), t(node.attrs.get("beta", 0.5))
    return (np.clip(alpha * x + beta, t(0), t(1)),)


def hard_swish(node, inputs, ctx=None):
    x = inputs[0]
    t = x.dtype.type
    return (x * np.clip(x * t(1.0 / 6.0) + t(0.5), t(0), t(1)),)


def sigmoid(node, inputs, ctx=None):
    x = inputs[0]
    with np.errstate(over="ignore"):
        return (_same(1.0 / (1.0 + np.exp(-x)), x),)


def tanh(node, inputs, ctx=None):
    return (np.tanh(inputs[0]),)


def erf_array(x: np.ndarray) -> np.ndarray:
    """Error function, float64 accuracy ~1.2e-7 (Numerical Recipes ``erfc`` Chebyshev fit).

    >>> import numpy as np
    >>> bool(abs(erf_array(np.array([0.5]))[0] - 0.5204998778) < 1e-6)
    True
    """
    z = np.abs(x.astype(np.float64))
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    erfc = t * np.exp(poly)
    return _same(np.where(x >= 0, 1.0 - erfc, erfc - 1.0), x)


def erf(node, inputs, ctx=None):
    return (erf_array(inputs[0]),)


def sqrt(node, inputs, ctx=None):
    with np.errstate(invalid="ignore"):
        return (np.sqrt(inputs[0]),)


def leaky_relu(node, inputs, ctx=None):
    x = inputs[0]
    return (np.where(x >= 0, x, x * x.dtype.type(node.attrs.get("alpha", 0.01))),)


def prelu(node, inputs, ctx=None):
    """``x`` where ``x >= 0`` else ``slope * x`` (slope broadcast to ``x``)."""
    x, slope = inputs
    return (np.where(x >= 0, x, x * slope.astype(x.dtype, copy=False)),)


def neg(node, inputs, ctx=None):
    return (np.negative(inputs[0]),)


def exp(node, inputs, ctx=None):
    with np.errstate(over="ignore"):
        return (np.exp(inputs[0]),)


def equal(node, inputs, ctx=None):
    return (np.equal(inputs[0], inputs[1]),)


def where(node, inputs, ctx=None):
    c, a, b = inputs
    return (np.where(c, a, b),)


def cast(node, inputs, ctx=None):
    """Cast to ``attrs['to']`` (a NumPy dtype name)."""
    x = inputs[0]
    to = np.dtype(node.attrs["to"])
    if to == np.bool_:
        return (x != 0,)
    if x.dtype.kind == "f" and to.kind in "iu":
        with np.errstate(invalid="ignore"):
            return (np.trunc(x).astype(to),)
    return (x.astype(to),)


def gelu(node, inputs, ctx=None):
    """GELU (ONNX opset 20): exact ``0.5 x (1 + erf(x / sqrt 2))`` or the ``tanh`` approximation."""
    x = inputs[0]
    xd = x.astype(np.float64)
    if node.attrs.get("approximate", "none") == "tanh":
        y = 0.5 * xd * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (xd + 0.044715 * xd ** 3)))
    else:
        y = 0.5 * xd * (1.0 + erf_array(xd / np.sqrt(2.0)))
    return (y.astype(x.dtype),)

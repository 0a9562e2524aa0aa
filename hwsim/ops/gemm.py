"""Float Gemm and MatMul.

Gemm after import: ``Y = alpha * A' @ B' + beta * C`` with explicit ``alpha``, ``beta``,
``transA``, ``transB``. When B is a constant the importer rewrites it to the canonical
layout ``W`` of shape ``(N, K)`` (like ``torch.nn.Linear.weight``; per-output-channel
axis 0) with ``transA=0, transB=1, alpha=1, beta=1`` and C a ``(N,)`` bias when possible,
so ``Y = A @ W.T + bias``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["gemm", "matmul"]


def gemm(node, inputs, ctx=None):
    """Registry entry for ``Gemm``.

    >>> import numpy as np
    >>> from hwsim.graph import Node
    >>> n = Node("g", "Gemm", ("a", "w"), ("y",), {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 1})
    >>> gemm(n, [np.ones((1, 3), np.float32), np.ones((2, 3), np.float32)])[0]
    array([[3., 3.]], dtype=float32)
    """
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    at = node.attrs
    if at.get("transA", 0):
        a = a.T
    if at.get("transB", 0):
        b = b.T
    y = a @ b
    alpha, beta = at.get("alpha", 1.0), at.get("beta", 1.0)
    if alpha != 1.0:
        y = y * y.dtype.type(alpha)
    if c is not None:
        y = y + (c if beta == 1.0 else c * c.dtype.type(beta))
    return (y.astype(np.result_type(inputs[0].dtype, inputs[1].dtype), copy=False),)


def matmul(node, inputs, ctx=None):
    """Registry entry for ``MatMul`` (NumPy ``matmul`` semantics, as ONNX)."""
    return (np.matmul(inputs[0], inputs[1]),)

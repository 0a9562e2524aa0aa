"""Where the public kernels ask for a fast path.

The portable Numba kernels (gemm.py, conv.py, depthwise.py) are correct everywhere. A fast
path (Intel AMX tiles, :mod:`hwsim.kernels.amx`, or explicit AVX-512 VNNI,
:mod:`hwsim.kernels.vnni`) is offered here when the CPU has the instructions
(:func:`hwsim.kernels.cpu.kernel_path`; ``HWSIM_KERNEL_PATH=vnni`` leaves AMX out,
``HWSIM_KERNEL_PATH=portable`` turns both off) and the problem is one the fast path computes bit for bit like the portable
path (no accumulator overflow possible, no pair-saturation emulation, weights that fit the
instruction's operand). Otherwise :func:`fast_path` returns None and the caller runs the
portable kernel.

Example
-------
>>> import numpy as np
>>> from hwsim.kernels import GemmParams, dispatch
>>> x = np.zeros((4, 8), np.uint8); w = np.zeros((8, 3), np.int8)
>>> fn = dispatch.fast_path("gemm", x=x, w=w, bias=None, params=GemmParams())
>>> fn is None or callable(fn)
True
"""
from __future__ import annotations

from . import cpu, vnni

__all__ = ["fast_path", "plan_for", "last_plan"]


def fast_path(kind: str, **problem):
    """Return a callable computing the same result as the portable ``kind`` kernel for
    ``problem`` (``x``, ``w``, ``bias``, ``params``), or None when no faster path exists on
    this CPU for it.

    ``kind`` is one of ``"gemm"``, ``"conv"``, ``"depthwise"``. The callable is invoked as
    ``fn(x_q, w_q, bias_q, params)`` and returns ``(array, KernelStats)``. Plans for read-only
    weights (constants) are remembered (:func:`hwsim.kernels.vnni.memo_plan`).
    """
    return plan_for(kind, problem.get("x"), problem.get("w"), problem.get("bias"), problem.get("params"))


def plan_for(kind: str, x, w, bias, params):
    """:func:`fast_path` with the problem given positionally (the kernels' per-call route)."""
    path = cpu.kernel_path()
    if path == "portable":
        return None
    args = (x, w, bias, params)
    if kind == "gemm":
        return vnni.memo_plan(kind, path, args, lambda: vnni.gemm_plan(*args, amx=path == "amx"))
    if kind == "conv":
        return vnni.memo_plan(kind, path, args, lambda: vnni.conv_plan(*args, amx=path == "amx"))
    if kind == "depthwise":
        return vnni.memo_plan(kind, path, args, lambda: vnni.depthwise_plan(*args))
    return None


def last_plan(kind: str, x, w, bias, params):
    """The plan :func:`plan_for` returned for the previous ``kind`` call when this one has the
    very same weights, bias and params objects and activation shape and dtype, else None (the
    kernels' first check: :func:`hwsim.kernels.vnni.last_plan`)."""
    path = cpu.kernel_path()
    if path == "portable":
        return None
    return vnni.last_plan(kind, path, x, w, bias, params)

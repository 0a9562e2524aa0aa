"""Where the public kernels ask for a fast path.

The portable Numba kernels (gemm.py, conv.py, depthwise.py) are correct everywhere. A fast
path (explicit AVX-512 VNNI, kernels/vnni.py) registers here by CPU feature; the public
functions call :func:`fast_path` and fall back to the portable kernel when it returns None.
Every fast path must be bit-exact with the portable one (tests compare them).
"""
from __future__ import annotations

__all__ = ["fast_path"]


def fast_path(kind: str, **problem):
    """Return a callable computing the same result as the portable ``kind`` kernel for
    ``problem`` (dtypes, pair, accumulator/overflow settings), or None when no faster
    path exists on this CPU for it.

    ``kind`` is one of ``"gemm"``, ``"conv"``, ``"depthwise"``.
    """
    return None

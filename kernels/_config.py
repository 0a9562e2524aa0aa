"""Numba compilation flags, in one place.

* ``cache=True``: compiled kernels are written to ``__pycache__`` and a new process loads
  them in milliseconds. No kernel is generated with ``exec`` (those cannot be cached).
* ``fastmath=False``: no reassociation and no FMA contraction, so the float32 / float64
  requantization chains round exactly as the runtimes they imitate.
* ``error_model="numpy"``: no Python-style ZeroDivisionError checks in inner loops.
* ``boundscheck=False``: the public wrappers validate shapes before calling a kernel.
"""
from __future__ import annotations

import numba

__all__ = ["NJIT", "njit"]

NJIT = dict(cache=True, nogil=True, fastmath=False, error_model="numpy", boundscheck=False)


def njit(fn):
    """``numba.njit`` with the project's flags (lazy compilation, cached on disk)."""
    return numba.njit(**NJIT)(fn)

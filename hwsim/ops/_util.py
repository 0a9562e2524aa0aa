"""Small helpers shared by the float op implementations (not public API)."""
from __future__ import annotations

import numpy as np

__all__ = ["out_size", "pad_spatial"]


def out_size(size: int, k: int, stride: int, dilation: int, pad_begin: int, pad_end: int,
             ceil_mode: bool = False) -> int:
    """Output length of a sliding window (conv or pool) along one spatial axis.

    With ``ceil_mode`` the last window may overhang the padded input, but it must start
    inside the input or its leading padding (the ONNX / onnxruntime rule).

    >>> out_size(7, 3, 2, 1, 0, 0), out_size(8, 3, 2, 1, 0, 0, ceil_mode=True)
    (3, 4)
    """
    span = (k - 1) * dilation + 1
    num = size + pad_begin + pad_end - span
    if ceil_mode:
        out = -(-num // stride) + 1
        if (out - 1) * stride >= size + pad_begin:
            out -= 1
    else:
        out = num // stride + 1
    return max(int(out), 0)


def pad_spatial(x: np.ndarray, begins, ends, value=0.0) -> np.ndarray:
    """Pad the trailing ``len(begins)`` axes of ``x`` (NC... layout) with a constant."""
    if not any(begins) and not any(ends):
        return x
    widths = [(0, 0)] * (x.ndim - len(begins)) + [(int(b), int(e)) for b, e in zip(begins, ends)]
    return np.pad(x, widths, mode="constant", constant_values=value)

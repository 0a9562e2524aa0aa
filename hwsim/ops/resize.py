"""Float Resize (and Upsample, imported as Resize): nearest and linear interpolation of the
spatial axes, every ONNX coordinate transformation except ``tf_crop_and_resize``.

Normalised attributes: ``mode`` (``nearest`` | ``linear``), ``coordinate_transformation_mode``,
``nearest_mode``, ``scales`` (one float per axis, 1.0 for axes that are not resized) and
``sizes`` (one int per axis: the output length of a resized axis, 0 = keep the input's).
Linear interpolation is separable (applied axis by axis), as bilinear is.
"""
from __future__ import annotations

import numpy as np

__all__ = ["resize", "source_coords"]


def source_coords(out_len: int, in_len: int, scale: float, mode: str) -> np.ndarray:
    """Input coordinate of every output index along one axis (ONNX ``coordinate_transformation_mode``).

    >>> source_coords(4, 2, 2.0, "asymmetric").tolist()
    [0.0, 0.5, 1.0, 1.5]
    """
    x = np.arange(out_len, dtype=np.float64)
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if out_len > 1 else np.zeros_like(x)
    if mode == "align_corners":
        return x * (in_len - 1) / (out_len - 1) if out_len > 1 else np.zeros_like(x)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_half_pixel_for_nn":
        return (x + 0.5) / scale
    if mode == "half_pixel_symmetric":
        adjustment = out_len / (scale * in_len)
        offset = in_len / 2.0 * (1.0 - adjustment)
        return offset + (x + 0.5) / scale - 0.5
    raise ValueError(f"coordinate_transformation_mode {mode!r}")


def _nearest_index(c: np.ndarray, mode: str, in_len: int) -> np.ndarray:
    if mode == "round_prefer_floor":
        i = np.ceil(c - 0.5)
    elif mode == "round_prefer_ceil":
        i = np.floor(c + 0.5)
    elif mode == "floor":
        i = np.floor(c)
    else:
        i = np.ceil(c)
    return np.clip(i, 0, in_len - 1).astype(np.int64)


def resize(node, inputs, ctx=None):
    x = inputs[0]
    a = node.attrs
    y = x
    for ax, (scale, size) in enumerate(zip(a["scales"], a["sizes"])):
        in_len = x.shape[ax]
        if not size and scale == 1.0:
            continue
        out_len = int(size) if size else int(np.floor(in_len * scale))
        c = source_coords(out_len, in_len, float(scale), a["coordinate_transformation_mode"])
        if a["mode"] == "nearest":
            y = np.take(y, _nearest_index(c, a.get("nearest_mode", "round_prefer_floor"), in_len), axis=ax)
            continue
        c = np.clip(c, 0, in_len - 1)
        i0 = np.floor(c).astype(np.int64)
        i1 = np.minimum(i0 + 1, in_len - 1)
        w = (c - i0).astype(x.dtype)
        shape = [1] * y.ndim
        shape[ax] = out_len
        w = w.reshape(shape)
        y = np.take(y, i0, axis=ax) * (1 - w) + np.take(y, i1, axis=ax) * w
    return (np.ascontiguousarray(y.astype(x.dtype, copy=False)),)

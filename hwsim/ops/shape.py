"""Data-movement ops: Reshape, Flatten, Transpose, Squeeze, Unsqueeze, Concat, Pad, Slice,
Gather, Identity. They never change values, only their arrangement.

Normalised attributes (the importer moves opset-dependent inputs into attributes):
Reshape ``shape`` (0 copies the input dimension unless ``allowzero``; -1 is inferred);
Flatten ``axis``; Transpose ``perm``; Squeeze/Unsqueeze ``axes`` (non-negative; Unsqueeze
axes index the output); Concat ``axis``; Pad ``pads`` (begins then ends, every axis),
``mode`` and ``value``; Slice ``starts``/``ends``/``axes``/``steps``; Gather ``axis``; Expand ``shape``; Split ``axis`` and ``split`` (the size of every output).
"""
from __future__ import annotations

import numpy as np

__all__ = ["reshape", "flatten", "transpose", "squeeze", "unsqueeze", "concat", "pad", "slice_",
           "gather", "identity", "expand", "split", "reshape_target", "onnx_slice"]


def reshape_target(in_shape, shape, allowzero=False) -> tuple[int, ...]:
    """Resolve ONNX Reshape 0 entries (copy the input dim) against ``in_shape``.

    >>> reshape_target((5, 3, 4), (0, -1))
    (5, -1)
    """
    if allowzero:
        return tuple(int(s) for s in shape)
    return tuple(int(in_shape[i]) if s == 0 else int(s) for i, s in enumerate(shape))


def reshape(node, inputs, ctx=None):
    x = inputs[0]
    return (x.reshape(reshape_target(x.shape, node.attrs["shape"], node.attrs.get("allowzero", 0))),)


def flatten(node, inputs, ctx=None):
    x = inputs[0]
    axis = node.attrs["axis"]
    lead = int(np.prod(x.shape[:axis], dtype=np.int64))
    return (x.reshape(lead, -1) if x.size else x.reshape(lead, int(np.prod(x.shape[axis:]))),)


def transpose(node, inputs, ctx=None):
    return (np.ascontiguousarray(np.transpose(inputs[0], node.attrs["perm"])),)


def squeeze(node, inputs, ctx=None):
    return (np.squeeze(inputs[0], axis=tuple(node.attrs["axes"])),)


def unsqueeze(node, inputs, ctx=None):
    return (np.expand_dims(inputs[0], tuple(node.attrs["axes"])),)


def concat(node, inputs, ctx=None):
    arrs = [a for a in inputs if a is not None]
    return (np.concatenate(arrs, axis=node.attrs["axis"]),)


def pad(node, inputs, ctx=None):
    x = inputs[0]
    pads = node.attrs["pads"]
    nd = x.ndim
    begins, ends = pads[:nd], pads[nd:]
    mode = node.attrs.get("mode", "constant")
    # negative pads crop
    crop = tuple(slice(max(0, -b), x.shape[i] - max(0, -e)) for i, (b, e) in enumerate(zip(begins, ends)))
    x = x[crop]
    widths = [(max(0, int(b)), max(0, int(e))) for b, e in zip(begins, ends)]
    if mode == "constant":
        return (np.pad(x, widths, mode="constant", constant_values=np.asarray(node.attrs.get("value", 0)).astype(x.dtype)),)
    np_mode = {"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode]
    return (np.pad(x, widths, mode=np_mode),)


def onnx_slice(x, starts, ends, axes, steps):
    """Index ``x`` with ONNX Slice semantics (clamping, negative steps)."""
    idx = [slice(None)] * x.ndim
    for st, en, ax, sp in zip(starts, ends, axes, steps):
        dim = x.shape[ax]
        st = st + dim if st < 0 else st
        en = en + dim if en < 0 else en
        if sp > 0:
            st = min(max(st, 0), dim)
            en = min(max(en, 0), dim)
            idx[ax] = slice(st, en, sp)
        else:
            st = min(max(st, 0), dim - 1)
            en = min(max(en, -1), dim - 1)
            idx[ax] = slice(st, en if en >= 0 else None, sp)
    return x[tuple(idx)]


def slice_(node, inputs, ctx=None):
    a = node.attrs
    return (np.ascontiguousarray(onnx_slice(inputs[0], a["starts"], a["ends"], a["axes"], a["steps"])),)


def gather(node, inputs, ctx=None):
    data, idx = inputs[0], inputs[1]
    axis = node.attrs.get("axis", 0)
    idx = np.where(idx < 0, idx + data.shape[axis], idx)
    return (np.take(data, idx, axis=axis),)


def identity(node, inputs, ctx=None):
    return (inputs[0],)


def expand(node, inputs, ctx=None):
    """Broadcast to ``attrs['shape']`` (ONNX Expand: bidirectional broadcasting)."""
    x = inputs[0]
    return (np.array(np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(node.attrs["shape"])))),)


def split(node, inputs, ctx=None):
    """Split along ``attrs['axis']`` into pieces of ``attrs['split']`` sizes (one per output)."""
    x = inputs[0]
    bounds = np.cumsum(node.attrs["split"])[:-1]
    return tuple(np.ascontiguousarray(p) for p in np.split(x, bounds, axis=node.attrs["axis"]))

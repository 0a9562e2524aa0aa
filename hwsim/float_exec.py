"""Float (NumPy, float32) execution of an imported graph: the reference the quantized
executors are compared with. Matches onnxruntime to ~1e-6 relative on float models.

Examples
--------
>>> import numpy as np
>>> from onnx import helper, TensorProto
>>> from hwsim.onnx_import import load_model
>>> from hwsim.float_exec import run_float
>>> x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])
>>> y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
>>> g = load_model(helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])))
>>> run_float(g, {"x": np.array([[-1.0, 3.0]])})["y"]
array([[0., 3.]], dtype=float32)
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, MutableMapping

import numpy as np

from .errors import DataError
from .execute import run_graph
from .graph import Graph
from .ops import FLOAT_OPS

__all__ = ["run_float", "prepare_feeds"]


def prepare_feeds(graph: Graph, feeds: Mapping[str, Any], source: str = "input") -> dict[str, np.ndarray]:
    """Validate one batch of inputs and cast it to the input dtypes; the one input check of
    every executor (float, fake-quant, integer) and of calibration.

    Checks names, numeric dtype, finiteness, rank, static dimensions and emptiness. Float
    inputs are returned as float32 (integer data converts exactly); float data for an
    integer input is refused. Raises :class:`~hwsim.errors.DataError` (one line) naming
    ``source`` and the input.
    """
    if not isinstance(feeds, Mapping):
        raise DataError(f"{source}: expected a mapping of input name to array, got {type(feeds).__name__}")
    names = graph.input_names
    missing = [n for n in names if n not in feeds]
    extra = [n for n in feeds if n not in names]
    if missing or extra:
        raise DataError(f"{source}: inputs {sorted(feeds)} do not match the model inputs {list(names)} "
                        f"(missing: {missing or 'none'}, unexpected: {extra or 'none'})")
    out = {}
    for info in graph.inputs:
        a = np.asarray(feeds[info.name])
        if a.dtype.kind not in "fiub":
            raise DataError(f"{source}: input '{info.name}' has dtype {a.dtype}; expected a numeric array")
        want = np.dtype(info.dtype) if info.dtype else np.dtype(np.float32)
        if want.kind == "f":
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                bad = int(a.size - np.count_nonzero(np.isfinite(a)))
                raise DataError(f"{source}: input '{info.name}' has {bad} NaN/Inf value(s)")
        elif want.kind in "iu" and a.dtype.kind == "f":
            raise DataError(f"{source}: input '{info.name}' has dtype {a.dtype}; the model expects integers ({want})")
        a = a.astype(want, copy=False)
        if info.shape is not None and len(info.shape) != a.ndim:
            raise DataError(f"{source}: input '{info.name}' has shape {a.shape}; the model expects rank "
                            f"{len(info.shape)} {_fmt(info.shape)}")
        if info.shape is not None:
            for i, (d, n) in enumerate(zip(info.shape, a.shape)):
                if d is not None and d != n:
                    raise DataError(f"{source}: input '{info.name}' has shape {a.shape}; the model expects "
                                    f"{_fmt(info.shape)} (axis {i})")
        if a.size == 0:
            raise DataError(f"{source}: input '{info.name}' is empty (shape {a.shape})")
        out[info.name] = a
    return out


def _fmt(shape) -> str:
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"


def run_float(graph: Graph, feeds: Mapping[str, np.ndarray], keep: str | Iterable[str] = "outputs", *,
              values: MutableMapping[str, np.ndarray] | None = None,
              after_node: Callable | None = None) -> dict[str, np.ndarray]:
    """Run ``graph`` in float with :data:`hwsim.ops.FLOAT_OPS`.

    Parameters
    ----------
    feeds : input name -> array (cast to the input's dtype, e.g. float64 -> float32).
    keep : ``"outputs"``, ``"all"`` or tensor names to return (see :func:`hwsim.execute.run_graph`).
    values : optional cache of precomputed tensors (updated in place).
    """
    return run_graph(graph, prepare_feeds(graph, feeds), FLOAT_OPS, None, values=values, keep=keep,
                     after_node=after_node)

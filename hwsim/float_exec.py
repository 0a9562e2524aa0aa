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

from typing import Callable, Iterable, Mapping, MutableMapping

import numpy as np

from .errors import DataError
from .execute import run_graph
from .graph import Graph
from .ops import FLOAT_OPS

__all__ = ["run_float", "prepare_feeds"]


def prepare_feeds(graph: Graph, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Check names, ranks and static dimensions of ``feeds`` and cast them to the input dtypes.

    Raises :class:`~hwsim.errors.DataError` (one line) on a mismatch.
    """
    out = {}
    names = list(graph.input_names)
    unknown = [k for k in feeds if k not in names]
    if unknown:
        raise DataError(f"unknown input name(s) {unknown}; the model's inputs are {names}")
    for info in graph.inputs:
        if info.name not in feeds:
            raise DataError(f"missing input '{info.name}'; the model's inputs are {names}")
        a = np.asarray(feeds[info.name])
        if a.ndim != len(info.shape):
            raise DataError(f"input '{info.name}': expected rank {len(info.shape)} "
                            f"(shape {_fmt(info.shape)}), got shape {a.shape}")
        for i, (d, s) in enumerate(zip(info.shape, a.shape)):
            if d is not None and d != s:
                raise DataError(f"input '{info.name}': dimension {i} must be {d} (shape {_fmt(info.shape)}), "
                                f"got shape {a.shape}")
        want = np.dtype(info.dtype)
        if a.dtype != want:
            if a.dtype.kind == "f" and want.kind in "iu":
                raise DataError(f"input '{info.name}': expected {want.name} values, got {a.dtype.name}")
            a = a.astype(want)
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

"""The one interpreter. Float, fake-quant and integer execution differ only in the
dispatch table (op type -> implementation) and the context object they pass along.

An implementation has the signature ``impl(node, inputs, ctx) -> tuple[np.ndarray, ...]``
where ``inputs`` holds one array (or None for an omitted optional input) per
``node.inputs`` entry, constants included.

Examples
--------
>>> import numpy as np
>>> from hwsim.graph import Graph, Node, TensorInfo
>>> from hwsim.execute import run_graph
>>> g = Graph("g", (TensorInfo("x", (None, 2)),), ("y",), (Node("r", "Relu", ("x",), ("y",)),), {})
>>> run_graph(g, {"x": np.array([[-1.0, 2.0]])}, {"Relu": lambda n, i, c: (np.maximum(i[0], 0),)})["y"]
array([[0., 2.]])
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, MutableMapping

import numpy as np

from .errors import DataError, UnsupportedOpError
from .graph import Graph, Node

__all__ = ["OpImpl", "run_graph"]

OpImpl = Callable[[Node, list, Any], tuple]


def run_graph(
    graph: Graph,
    feeds: Mapping[str, np.ndarray],
    dispatch: Mapping[str, OpImpl],
    ctx: Any = None,
    *,
    values: MutableMapping[str, np.ndarray] | None = None,
    keep: str | Iterable[str] = "outputs",
    after_node: Callable[[Node, tuple], None] | None = None,
) -> dict[str, np.ndarray]:
    """Execute ``graph`` in topological order.

    Parameters
    ----------
    feeds : input name -> array (every graph input must be present).
    dispatch : op type -> implementation.
    ctx : passed unchanged to every implementation (quantization parameters, counters ...).
    values : precomputed tensors (e.g. cached activations of an unchanged prefix); a node
        whose outputs are all present is skipped. Updated in place when given.
    keep : ``"outputs"`` returns only the graph outputs; ``"all"`` every tensor; or an
        iterable of tensor names to return (graph outputs are always included).
    after_node : called with (node, outputs) after each executed node.
    """
    missing = [n for n in graph.input_names if n not in feeds and (values is None or n not in values)]
    if missing:
        raise DataError(f"missing input(s) {missing}; the model's inputs are {list(graph.input_names)}")
    env: MutableMapping[str, np.ndarray] = values if values is not None else {}
    env.update(feeds)
    keep_all = keep == "all"
    wanted = set(graph.outputs) | (set() if isinstance(keep, str) else set(keep))
    # last use of each tensor, to free memory when not keeping everything
    last_use: dict[str, int] = {}
    if not keep_all and values is None:
        for i, n in enumerate(graph.nodes):
            for t in n.inputs:
                last_use[t] = i
    consts = graph.constants
    for i, node in enumerate(graph.nodes):
        if all((t == "" or t in env) for t in node.outputs):
            continue
        impl = dispatch.get(node.op)
        if impl is None:
            raise UnsupportedOpError(node.name, node.op, dispatch.keys(), "no implementation in this executor")
        args = [None if t == "" else (env[t] if t in env else consts[t]) for t in node.inputs]
        outs = impl(node, args, ctx)
        for t, v in zip(node.outputs, outs):
            if t:
                env[t] = v
        if after_node is not None:
            after_node(node, outs)
        if last_use:
            for t in node.inputs:
                if last_use.get(t) == i and t not in wanted and t in env and t not in feeds:
                    del env[t]
    if keep_all:
        return dict(env)
    return {t: env[t] for t in graph.outputs} | {t: env[t] for t in wanted if t in env}

"""The one graph data structure: nodes in topological order, named tensors, constants.

A :class:`Graph` is immutable in spirit: passes build a new one with :meth:`Graph.replace`.
Op types are ONNX op names with *normalised* attributes (the importer resolves defaults,
``auto_pad`` and opset differences), so executors and the cost model never look at
opset versions.

Examples
--------
>>> import numpy as np
>>> from hwsim.graph import Graph, Node, TensorInfo
>>> g = Graph(name="g", inputs=(TensorInfo("x", (None, 4), "float32"),), outputs=("y",),
...           nodes=(Node("relu", "Relu", ("x",), ("y",)),), constants={},
...           shapes={"x": (1, 4), "y": (1, 4)})
>>> [n.name for n in g.consumers("x")]
['relu']
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

from .errors import ModelError

__all__ = ["Node", "TensorInfo", "Graph"]


@dataclass(frozen=True)
class Node:
    """One operation. ``inputs`` may contain ``""`` for an omitted optional input."""

    name: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    def replace(self, **changes) -> "Node":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output: name, shape (``None`` for a dynamic dimension) and dtype name."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"


@dataclass(frozen=True)
class Graph:
    """A model: nodes in topological order over named tensors.

    Attributes
    ----------
    inputs : runtime inputs (constants are not inputs).
    outputs : names of the graph outputs, in model order.
    nodes : topologically ordered.
    constants : name -> array for initializers and folded constants.
    shapes : name -> static shape of every tensor for a batch of 1 (dynamic dims set to 1);
        used by the cost model. Execution accepts any batch size.
    dtypes : name -> NumPy dtype name of every tensor, where known.
    """

    name: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[str, ...]
    nodes: tuple[Node, ...]
    constants: Mapping[str, np.ndarray]
    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    dtypes: Mapping[str, str] = field(default_factory=dict)
    opset: int = 17
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        producers: dict[str, Node] = {}
        consumers: dict[str, list[Node]] = {}
        by_name: dict[str, Node] = {}
        known = {t.name for t in self.inputs} | set(self.constants)
        for n in self.nodes:
            if n.name in by_name:
                raise ModelError(f"graph '{self.name}': duplicate node name '{n.name}'")
            by_name[n.name] = n
            for t in n.inputs:
                if t == "":
                    continue
                if t not in known:
                    raise ModelError(f"graph '{self.name}': node '{n.name}' ({n.op}) reads tensor '{t}' "
                                     "before it is produced (graph not in topological order or tensor missing)")
                consumers.setdefault(t, []).append(n)
            for t in n.outputs:
                if t == "":
                    continue
                if t in producers or t in self.constants or any(t == i.name for i in self.inputs):
                    raise ModelError(f"graph '{self.name}': tensor '{t}' is produced twice (by node '{n.name}')")
                producers[t] = n
                known.add(t)
        for o in self.outputs:
            if o not in known:
                raise ModelError(f"graph '{self.name}': output '{o}' is never produced")
        object.__setattr__(self, "_producers", producers)
        object.__setattr__(self, "_consumers", {k: tuple(v) for k, v in consumers.items()})
        object.__setattr__(self, "_by_name", by_name)

    # -- queries ---------------------------------------------------------------------------
    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    def node(self, name: str) -> Node:
        try:
            return self._by_name[name]
        except KeyError:
            raise ModelError(f"graph '{self.name}' has no node named '{name}'") from None

    def has_node(self, name: str) -> bool:
        return name in self._by_name

    def producer(self, tensor: str) -> Node | None:
        """The node that produces ``tensor``, or None for inputs and constants."""
        return self._producers.get(tensor)

    def consumers(self, tensor: str) -> tuple[Node, ...]:
        """The nodes that read ``tensor``, in topological order."""
        return self._consumers.get(tensor, ())

    def is_constant(self, tensor: str) -> bool:
        return tensor in self.constants

    def shape(self, tensor: str) -> tuple[int, ...]:
        try:
            return tuple(self.shapes[tensor])
        except KeyError:
            raise ModelError(f"graph '{self.name}': no static shape known for tensor '{tensor}'") from None

    def tensors(self) -> Iterable[str]:
        """Every runtime tensor name: inputs, then node outputs in topological order."""
        yield from self.input_names
        for n in self.nodes:
            yield from (t for t in n.outputs if t)

    def replace(self, **changes) -> "Graph":
        """A new graph with fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        return f"Graph({self.name!r}, {len(self.nodes)} nodes, inputs={list(self.input_names)}, outputs={list(self.outputs)})"

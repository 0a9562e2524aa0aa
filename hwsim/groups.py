"""Quantizer groups: which quantizers must share one bit-width pair.

The group graph is a :class:`networkx.Graph` whose nodes are *quantizers* — one per
activation tensor (``act:<tensor>``) and one per weight (``w:<constant>``) — and whose
edges are "must use the same bit-widths" constraints, each labelled with its reason:

``kernel``
    a node's input activation and its weight run on one kernel, at one pair;
``node-inputs``
    all activation inputs of one node (Add, Concat, Mul, MatMul ...): a precision config
    gives a node one activation width (and the profile may also demand one shared scale
    — then the reason reads ``shared-scale``);
``pass-through``
    input and output of an op whose :class:`~hwsim.opset.OpSpec` is ``passthrough``
    (Reshape, Flatten, Transpose, MaxPool, ReLU, Clip ...): it reuses its input's quantizer;
    likewise the output of a shared-scale op of class ``DATA_MOVEMENT`` (Concat), labelled
    ``shared-scale``.

"All consumers of a tensor" needs no edge: the tensor has one quantizer node that every
consumer's constraints attach to. Everything is derived from :data:`hwsim.opset.OPS`
properties (``passthrough``, ``weight_inputs``, ``op_class``), the profile's
``shares_scale(op)``, :func:`hwsim.quant.config.config_nodes` and
:func:`hwsim.quant.qgraph.data_inputs` (which inputs carry activations) — never from a list
of op names — so the groups agree with the quantizer sets of :mod:`hwsim.quant.qgraph`.

Connected components that contain at least one configurable node (a node a
:class:`~hwsim.quant.config.PrecisionConfig` assigns a pair to) are the *groups*. A
group's candidates are the intersection of the profile's pairs (``candidates_for(op)``,
per-op overrides included) over its nodes, ordered **highest first by the profile's
precision order**: w×a bits, then activation bits, then weight bits (W8A16 > W8A8 > W4A8).
A group without weights (only activations, e.g. the inputs of an Add or a pooling op)
keeps one pair per activation width — the highest such pair — because pairs that differ
only in weight bits are the same configuration for it. An empty intersection raises
:class:`~hwsim.errors.GroupError` naming the members and each node's allowed pairs.

Examples
--------
>>> import numpy as np
>>> from hwsim.graph import Graph, Node, TensorInfo
>>> from hwsim.groups import build_groups
>>> g = Graph("g", (TensorInfo("x", (1, 4)),), ("z",),
...           (Node("fc1", "Gemm", ("x", "w1"), ("y",), {"transB": 1}), Node("r", "Relu", ("y",), ("yr",)),
...            Node("fc2", "Gemm", ("yr", "w2"), ("z",), {"transB": 1})),
...           {"w1": np.ones((4, 4), np.float32), "w2": np.ones((2, 4), np.float32)})
>>> class P:  # any object with candidates_for(op) and shares_scale(op)
...     def candidates_for(self, op): return ("W4A8", "W8A8", "W8A16")
...     def shares_scale(self, op): return False
>>> groups = build_groups(g, P())
>>> [(q.name, q.members, [str(c) for c in q.candidates]) for q in groups]
[('fc1', ('act:x', 'w:w1'), ['W8A16', 'W8A8', 'W4A8']), ('fc2', ('act:y', 'act:yr', 'w:w2'), ['W8A16', 'W8A8', 'W4A8'])]
>>> {k: str(v) for k, v in groups.config_for((0, 2)).items()}
{'fc1': 'W8A16', 'fc2': 'W4A8'}
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import networkx as nx

from .bits import BitPair
from .errors import GroupError
from .graph import Graph
from .opset import OPS, OpClass

__all__ = ["QuantizerGroup", "QuantizerGroups", "build_groups", "precision_key"]


def precision_key(p: BitPair) -> tuple[int, int, int]:
    """Sort key of the precision order (larger = more precise): (w×a, a, w)."""
    return (p.w * p.a, p.a, p.w)


@dataclass(frozen=True)
class QuantizerGroup:
    """One group: quantizers that share a pair, the nodes it configures, its candidates.

    Attributes
    ----------
    index : position in :class:`QuantizerGroups` (graph order of its first node).
    name : the name of its first configured node (unique).
    members : quantizer names (``act:<tensor>``, ``w:<constant>``), sorted.
    ops : configured node names (config keys), in graph order.
    candidates : allowed pairs, highest first.
    first_node : topological index of the first node whose result can change with this
        group's pair (producer of one of its activations, or one of its ops); every node
        before it is unaffected, so its outputs can be reused (prefix cache).
    """

    index: int
    name: str
    members: tuple[str, ...]
    ops: tuple[str, ...]
    candidates: tuple[BitPair, ...]
    first_node: int
    has_weights: bool

    @property
    def activations(self) -> tuple[str, ...]:
        return tuple(m[4:] for m in self.members if m.startswith("act:"))

    @property
    def weights(self) -> tuple[str, ...]:
        return tuple(m[2:] for m in self.members if m.startswith("w:"))

    def to_dict(self) -> dict:
        return {"index": self.index, "name": self.name, "members": list(self.members), "ops": list(self.ops),
                "candidates": [str(c) for c in self.candidates], "first_node": self.first_node,
                "has_weights": self.has_weights}


class QuantizerGroups(Sequence):
    """The groups of one model under one profile (a sequence of :class:`QuantizerGroup`).

    ``nx_graph`` is the quantizer graph; ``unconfigured`` lists components without any
    configurable node (e.g. a graph output after a pass-through op), which take their
    precision from their producer and are not searched.
    """

    def __init__(self, model: Graph, nx_graph: nx.Graph, groups: Sequence[QuantizerGroup],
                 unconfigured: Sequence[tuple[str, ...]]):
        self.model = model
        self.nx_graph = nx_graph
        self.groups = tuple(groups)
        self.unconfigured = tuple(unconfigured)
        self._by_op = {op: g.index for g in self.groups for op in g.ops}

    def __getitem__(self, i):
        return self.groups[i]

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self) -> Iterator[QuantizerGroup]:
        return iter(self.groups)

    def group_of(self, node_name: str) -> QuantizerGroup:
        try:
            return self.groups[self._by_op[node_name]]
        except KeyError:
            raise GroupError(f"node '{node_name}' is not configured by any quantizer group") from None

    def config_for(self, choice: Sequence[int]) -> dict[str, BitPair]:
        """The precision config (node -> pair) for one candidate index per group, in graph order."""
        if len(choice) != len(self.groups):
            raise GroupError(f"a choice needs {len(self.groups)} candidate indices, got {len(choice)}")
        cfg = {}
        for g, i in zip(self.groups, choice):
            if not 0 <= int(i) < len(g.candidates):
                raise GroupError(f"group {g.name}: candidate index {i} out of range (it has "
                                 f"{len(g.candidates)}: {', '.join(map(str, g.candidates))})")
            for op in g.ops:
                cfg[op] = g.candidates[i]
        order = {n.name: k for k, n in enumerate(self.model.nodes)}
        return dict(sorted(cfg.items(), key=lambda kv: order[kv[0]]))

    def choice_for_config(self, cfg: Mapping[str, BitPair]) -> tuple[int, ...]:
        """Inverse of :meth:`config_for`; raises GroupError when a group's nodes disagree."""
        out = []
        for g in self.groups:
            pairs = {BitPair.parse(cfg[op]) for op in g.ops if op in cfg}
            if len(pairs) != 1:
                raise GroupError(f"group {g.name}: nodes {', '.join(g.ops)} must share one pair, "
                                 f"config gives {', '.join(sorted(map(str, pairs))) or 'none'}")
            p = pairs.pop()
            if not g.has_weights:
                p = next((c for c in g.candidates if c.a == p.a), p)
            if p not in g.candidates:
                raise GroupError(f"group {g.name}: pair {p} is not among its candidates "
                                 f"{', '.join(map(str, g.candidates))}")
            out.append(g.candidates.index(p))
        return tuple(out)

    def uniform_choice(self, pair) -> tuple[tuple[int, ...], bool]:
        """Every group at ``pair`` where allowed; otherwise its most precise candidate not above it
        (else its lowest). Returns (choice, exact) — exact is False if any group deviated."""
        pair = BitPair.parse(pair)
        choice, exact = [], True
        for g in self.groups:
            if pair in g.candidates:
                choice.append(g.candidates.index(pair))
                continue
            if not g.has_weights:
                same_a = [i for i, c in enumerate(g.candidates) if c.a == pair.a]
                if same_a:
                    choice.append(same_a[0])
                    continue
            exact = False
            below = [i for i, c in enumerate(g.candidates) if precision_key(c) <= precision_key(pair)]
            choice.append(below[0] if below else len(g.candidates) - 1)
        return tuple(choice), exact

    def to_dict(self) -> dict:
        return {"model": self.model.name, "groups": [g.to_dict() for g in self.groups],
                "unconfigured": [list(m) for m in self.unconfigured],
                "num_quantizers": self.nx_graph.number_of_nodes(),
                "num_constraints": self.nx_graph.number_of_edges()}

    def graphml(self) -> str:
        """GraphML text of the quantizer graph (node attribute ``group`` = group name)."""
        g = self.nx_graph.copy()
        for grp in self.groups:
            for m in grp.members:
                g.nodes[m]["group"] = grp.name
                g.nodes[m]["candidates"] = ",".join(map(str, grp.candidates))
        for m in g.nodes:
            g.nodes[m].setdefault("group", "")
            g.nodes[m].setdefault("candidates", "")
        return "\n".join(nx.generate_graphml(g))

    def write_graphml(self, path) -> Path:
        from .io import atomic_write_text
        return atomic_write_text(path, self.graphml() + "\n")


def _config_nodes(graph: Graph) -> tuple[str, ...]:
    from .quant.config import config_nodes
    return config_nodes(graph)


def build_groups(graph: Graph, profile) -> QuantizerGroups:
    """Build the quantizer graph and its groups for ``graph`` under ``profile``.

    ``profile`` needs ``candidates_for(op_type)`` (pairs) and ``shares_scale(op_type)``.
    """
    configured = set(_config_nodes(graph))
    g = nx.Graph()
    index = {n.name: i for i, n in enumerate(graph.nodes)}

    def act(t):
        q = f"act:{t}"
        if q not in g:
            g.add_node(q, kind="activation", tensor=t)
        return q

    from .quant.qgraph import data_inputs   # quant-A's definition of which inputs carry activations

    def runtime_inputs(node):
        return [t for t in node.inputs if t and not graph.is_constant(t)]

    def activation_inputs(node):
        return [node.inputs[i] for i in data_inputs(graph, node)
                if i < len(node.inputs) and node.inputs[i] and not graph.is_constant(node.inputs[i])]

    for node in graph.nodes:
        spec = OPS.get(node.op)
        if spec is None:
            continue
        ins = runtime_inputs(node)
        if spec.passthrough:
            if ins:
                a = act(ins[0])
                for t in node.outputs:
                    if t:
                        g.add_edge(a, act(t), reason="pass-through", node=node.name)
            continue
        if node.name not in configured:
            continue
        acts = [act(t) for t in activation_inputs(node)]
        for q in acts:
            g.nodes[q].setdefault("consumers", "")
            g.nodes[q]["consumers"] = ",".join(filter(None, [g.nodes[q]["consumers"], node.name]))
        for a, b in zip(acts, acts[1:]):
            if a != b:
                reason = "shared-scale" if profile.shares_scale(node.op) else "node-inputs"
                g.add_edge(a, b, reason=reason, node=node.name)
        if acts and spec.op_class is OpClass.DATA_MOVEMENT and profile.shares_scale(node.op):
            # pure data movement at one shared scale (Concat): the output is in the inputs' quantizer
            for t in node.outputs:
                if t:
                    g.add_edge(acts[0], act(t), reason="shared-scale", node=node.name)
        for pos in spec.weight_inputs:
            if pos < len(node.inputs) and node.inputs[pos] and graph.is_constant(node.inputs[pos]):
                w = f"w:{node.inputs[pos]}"
                g.add_node(w, kind="weight", tensor=node.inputs[pos])
                if acts:
                    g.add_edge(acts[0], w, reason="kernel", node=node.name)

    groups_raw, unconfigured = [], []
    for comp in nx.connected_components(g):
        members = tuple(sorted(comp))
        ops = set()
        first = len(graph.nodes)
        for m in members:
            t = g.nodes[m]["tensor"]
            if g.nodes[m]["kind"] == "activation":
                prod = graph.producer(t)
                first = min(first, index[prod.name] if prod is not None else 0)
                for c in graph.consumers(t):
                    if c.name in configured:
                        ops.add(c.name)
        for op in ops:
            first = min(first, index[op])
        if not ops:
            unconfigured.append(members)
            continue
        ops_sorted = tuple(sorted(ops, key=index.__getitem__))
        groups_raw.append((index[ops_sorted[0]], members, ops_sorted, first))
    groups_raw.sort()
    groups = []
    for i, (_, members, ops, first) in enumerate(groups_raw):
        has_w = any(m.startswith("w:") for m in members)
        allowed = {op: tuple(BitPair.parse(p) for p in profile.candidates_for(graph.node(op).op)) for op in ops}
        common = set.intersection(*(set(v) for v in allowed.values()))
        if not common:
            detail = "; ".join(f"{op} ({graph.node(op).op}): {', '.join(map(str, v))}" for op, v in allowed.items())
            raise GroupError(f"quantizer group of {', '.join(ops)} (members {', '.join(members)}) has no bit-width "
                             f"pair allowed by every node; allowed pairs: {detail}")
        cands = sorted(common, key=precision_key, reverse=True)
        if not has_w:
            seen, kept = set(), []
            for c in cands:
                if c.a not in seen:
                    seen.add(c.a)
                    kept.append(c)
            cands = kept
        groups.append(QuantizerGroup(i, ops[0], members, ops, tuple(cands), first, has_w))
    return QuantizerGroups(graph, g, groups, unconfigured)

"""Cost model: MACs, BOPs, bytes, roofline latency, energy and memory of a graph on a profile.

Pure functions over ``(Graph, HardwareProfile, per-node BitPair mapping)``. Shape-derived
quantities are computed once per (graph, profile) in :class:`CostModel`; each
:meth:`CostModel.evaluate` call then only looks up per-node costs (memoised per node,
pair and neighbouring activation widths), so the mixed-precision search can call it
thousands of times.

Counting rules (see ``hw_profiles/README.md``, section "Cost model"):

* **MACs.** Conv: output elements × (C_in / group) × kernel elements. Gemm / MatMul:
  output elements × K. Ops of class *elementwise* count one operation per output element
  as their "MACs", except pooling (output elements × kernel window) and
  GlobalAveragePool / ReduceMean (one per input element). Data-movement ops have 0.
* **BOPs** = MACs × the profile's ``bops_per_mac[pair]`` (w × a unless the profile says
  otherwise); reported relative to the profile's metric reference (a candidate pair, or
  FP32 counted as 32 × 32). A node without weights (Add, Softmax, pooling, MatMul of two
  activations) is costed at the highest candidate with its activation width: its weight
  bits mean nothing, so lowering them saves nothing.
* **Weight bytes** = weight inputs packed at w bits (two int4 per byte: ``ceil(n·w/8)``)
  + bias inputs at the profile's bias bits + other float constant inputs of compute ops
  (e.g. an Add's constant operand) at the activation bits.
* **Activation bytes** = non-constant inputs at the node's activation bits + outputs at
  the node's output bits (a node's output has its own activation width; pass-through and
  data-movement ops keep the width of their input).
* **Latency** = max(MACs / (MACs/cycle[pair, class] × utilisation × clock),
  max over memory levels of bytes from that level / its bandwidth) + overhead; a
  measured table entry replaces this whole sum. Reshape, Flatten, Squeeze, Unsqueeze and
  Identity are free (views: no bytes, no time). A Relu or Clip that is the only consumer
  of a compute node's output is fused into that node (no cost of its own, bound ``fused``).
* **Energy** = MACs × pJ/MAC[pair] + Σ bytes × pJ/byte of the level they come from.
* **Precision conversion**: wherever a node with an explicit pair reads a tensor whose
  producer ran at a different activation width, the tensor's elements are converted at
  the profile's per-element cost; network latency = Σ nodes + Σ conversions.
* **Memory** = packed weight bytes + peak live activation bytes over the topological
  schedule (free ops alias their input's buffer).

Examples
--------
>>> import numpy as np
>>> from hwsim.graph import Graph, Node, TensorInfo
>>> from hwsim.profile import shipped_profile
>>> from hwsim.cost import CostModel
>>> g = Graph("fc", (TensorInfo("x", (1, 64)),), ("y",),
...           (Node("fc", "Gemm", ("x", "W", "b"), ("y",), {"transB": 1}),),
...           {"W": np.zeros((10, 64), np.float32), "b": np.zeros(10, np.float32)},
...           shapes={"x": (1, 64), "W": (10, 64), "b": (10,), "y": (1, 10)})
>>> cm = CostModel(g, shipped_profile("cpu_onnxruntime"))
>>> r = cm.evaluate({"fc": "W4A8"})
>>> r.nodes[0].macs, r.nodes[0].bops, r.nodes[0].weight_bytes
(640, 20480.0, 360)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Mapping

import numpy as np

from .bits import BitPair
from .errors import ConfigError, ModelError
from .graph import Graph, Node
from .opset import OPS, OpClass, op_class_of
from .profile import FP32, HardwareProfile, Metric, MetricName

__all__ = ["FREE_OPS", "FUSED_ACTIVATIONS", "NodeCost", "Conversion", "CostTotals", "CostReport", "CostModel",
           "node_macs", "evaluate_cost", "metric_value"]

FREE_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})
"""Ops that only relabel a buffer: no bytes moved, no time, no energy."""

FUSED_ACTIVATIONS = frozenset({"Relu", "Clip"})
"""Activation clamps fused into the producing compute node's requantization (no cost of their
own) when they are that node's only consumer; every runtime and accelerator modelled does this."""

_POOL_OPS = ("MaxPool", "AveragePool")
_REDUCE_OPS = ("GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceSum", "ReduceMax")


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _packed_bytes(elements: int, bits: int) -> int:
    return (elements * bits + 7) // 8


@dataclass(frozen=True)
class NodeCost:
    """Cost of one node. Times in seconds, energy in joules (None when the profile has no energy data)."""

    name: str
    op: str
    op_class: str
    pair: str | None
    input_shapes: tuple
    output_shapes: tuple
    macs: int
    bops: float
    weight_bytes: int
    activation_in_bytes: int
    activation_out_bytes: int
    compute_s: float
    memory_s: float
    latency_s: float
    energy_j: float | None
    bound: str
    """``compute`` or ``memory`` (roofline), ``measured`` (table entry), ``fused`` (Relu/Clip folded
    into its producer), ``none`` (free op)."""

    @property
    def bytes(self) -> int:
        """Bytes moved: weights + activations in + activations out."""
        return self.weight_bytes + self.activation_in_bytes + self.activation_out_bytes

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["input_shapes"] = [list(s) for s in self.input_shapes]
        d["output_shapes"] = [list(s) for s in self.output_shapes]
        d["bytes"] = self.bytes
        return d


@dataclass(frozen=True)
class Conversion:
    """A precision conversion of one tensor before ``consumer`` reads it."""

    tensor: str
    consumer: str
    from_bits: int
    to_bits: int
    elements: int
    latency_s: float
    energy_j: float | None

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class CostTotals:
    """Network totals. ``relative_*`` are against ``reference`` (a pair, or ``fp32``)."""

    macs: int
    bops: float
    reference: str
    reference_bops: float
    relative_bops: float
    weight_bytes: int
    activation_bytes: int
    peak_activation_bytes: int
    memory_bytes: int
    node_latency_s: float
    conversion_latency_s: float
    latency_s: float
    energy_j: float | None
    conversion_energy_j: float | None
    conversions: int
    compute_bound_nodes: int
    memory_bound_nodes: int

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class CostReport:
    """Per-node costs, precision conversions and totals of one bit-width assignment."""

    model: str
    profile: str
    nodes: tuple[NodeCost, ...]
    conversions: tuple[Conversion, ...]
    totals: CostTotals

    def node(self, name: str) -> NodeCost:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def to_dict(self) -> dict:
        return {"model": self.model, "profile": self.profile,
                "nodes": [n.to_dict() for n in self.nodes],
                "conversions": [c.to_dict() for c in self.conversions],
                "totals": self.totals.to_dict()}


def _dequantized_constant(graph: Graph, tensor: str) -> bool:
    """Whether ``tensor`` is DequantizeLinear(constant): a QDQ model's weight or bias."""
    p = graph.producer(tensor)
    return p is not None and p.op == "DequantizeLinear" and bool(p.inputs) and graph.is_constant(p.inputs[0])


def node_macs(graph: Graph, node: Node) -> int:
    """MACs (or elementwise operations) of one node at batch 1, from ``graph.shapes``."""
    cls = op_class_of(node)
    if cls is OpClass.DATA_MOVEMENT:
        return 0
    out = graph.shape(node.outputs[0])
    if node.op == "Conv":
        w = graph.shape(node.inputs[1])
        return _prod(out) * _prod(w[1:])
    if node.op == "Gemm":
        a = graph.shape(node.inputs[0])
        k = a[0] if int(node.attrs.get("transA", 0)) else a[-1]
        return _prod(out) * int(k)
    if node.op == "MatMul":
        a = graph.shape(node.inputs[0])
        return _prod(out) * int(a[-1])
    if node.op in _POOL_OPS:
        k = node.attrs.get("kernel_shape")
        if not k:
            raise ModelError(f"node '{node.name}' ({node.op}) has no kernel_shape attribute")
        return _prod(out) * _prod(k)
    if node.op in _REDUCE_OPS:
        return _prod(graph.shape(node.inputs[0]))
    return _prod(out)


@dataclass(frozen=True)
class _Static:
    """Shape-derived facts of one node, computed once per graph."""

    index: int
    node: Node
    cls: OpClass
    free: bool
    explicit_ok: bool           # a node that takes a pair from the precision config
    fused: bool                 # a Relu/Clip folded into its producer
    macs: int
    act_inputs: tuple           # (tensor, elements) of non-constant inputs
    weight_elems: int
    bias_elems: int
    const_elems: int            # other float constants of compute ops (at activation bits)
    out_elems: tuple            # (tensor, elements)
    in_shapes: tuple
    out_shapes: tuple
    meas_shape: tuple | None
    meas_wshape: tuple | None


class CostModel:
    """Precomputed cost model of one graph on one profile; :meth:`evaluate` is cheap.

    Parameters
    ----------
    graph : Graph with static ``shapes`` for every tensor a node reads or writes.
    profile : HardwareProfile.

    Notes
    -----
    Pairs: a node named in the mapping given to :meth:`evaluate` uses that pair. Other
    nodes (pass-through and data-movement ops, or compute nodes left out) inherit the pair
    of their first input's producer, else use the highest pair allowed for their op type
    whose activation bits equal their input's width, else ``default`` (the profile's
    highest candidate unless given).
    """

    def __init__(self, graph: Graph, profile: HardwareProfile):
        self.graph = graph
        self.profile = profile
        cm = profile.cost_model
        self._clock_util = cm.clock_hz * cm.utilization
        self._bw = {lv.name: lv.bandwidth_bytes_per_s for lv in cm.memory_levels}
        self._epb = {lv.name: lv.energy_pj_per_byte for lv in cm.memory_levels}
        self._measured = {(m.op, m.input_shape, m.pair, m.weight_shape): m.seconds for m in cm.measured_latency}
        self._has_energy = cm.has_energy
        statics = []
        for i, n in enumerate(graph.nodes):
            statics.append(self._static(i, n))
        self._statics = tuple(statics)
        self._index = {s.node.name: s.index for s in statics}
        self._cache: dict = {}
        self._weightless = {}
        for p in profile.candidates:          # cheapest first: the last one per width wins
            self._weightless[p.a] = p
        self._cand_set = frozenset(profile.candidates)
        self._parsed: dict = {}
        self._allowed = {op: frozenset(profile.candidates_for(op)) for op in {n.op for n in graph.nodes}}
        # buffer liveness for the peak-activation computation
        self._alias = {}
        for s in statics:
            if (s.free or s.fused) and s.act_inputs:
                src = s.act_inputs[0][0]
                self._alias[s.node.outputs[0]] = self._alias.get(src, src)
        last_use = {}
        for s in statics:
            for t, _ in s.act_inputs:
                last_use[self._alias.get(t, t)] = s.index
        for o in graph.outputs:
            last_use[self._alias.get(o, o)] = len(statics)
        self._last_use = last_use
        self._input_buffers = tuple((t, _prod(graph.shape(t))) for t in graph.input_names)
        self._input_sizes = dict(self._input_buffers)
        freed_at: dict[int, list] = {}
        for t, _ in self._input_buffers:
            freed_at.setdefault(max(last_use.get(t, -1), 0), []).append(t)
        schedule = []
        for s in statics:
            if s.free and not s.act_inputs:
                allocs = ()          # a folded constant (DequantizeLinear of a weight): no activation buffer
            else:
                allocs = tuple((t, el) for t, el in s.out_elems if t not in self._alias)
            for t, _ in allocs:
                freed_at.setdefault(max(last_use.get(t, -1), s.index), []).append(t)
            schedule.append(allocs)
        self._schedule = tuple((allocs, tuple(freed_at.get(i, ()))) for i, allocs in enumerate(schedule))
        self._input_first_consumers = {t.name: self._reachable_explicit(t.name) for t in graph.inputs}

    # -- precomputation -----------------------------------------------------------------------
    def _static(self, i: int, n: Node) -> _Static:
        g = self.graph
        if n.op not in OPS:
            raise ModelError(f"node '{n.name}': op {n.op} has no cost class (not in hwsim.opset.OPS)")
        spec = OPS[n.op]
        cls = op_class_of(n)
        free = n.op in FREE_OPS
        act, weight, bias, const = [], 0, 0, 0
        if n.op == "DequantizeLinear" and n.inputs and g.is_constant(n.inputs[0]):
            free = True      # dequantizes a constant (QDQ weights): folded, costed at its consumer
        for pos, t in enumerate(n.inputs):
            if t == "":
                continue
            shape = g.shape(t)
            if g.is_constant(t) or _dequantized_constant(g, t):
                if pos in spec.weight_inputs:
                    weight += _prod(shape)
                elif pos in spec.bias_inputs:
                    bias += _prod(shape)
                elif cls is not OpClass.DATA_MOVEMENT and not spec.passthrough and g.is_constant(t) \
                        and np.asarray(g.constants[t]).dtype.kind == "f":
                    const += _prod(shape)
            else:
                act.append((t, _prod(shape)))
        outs = tuple((t, _prod(g.shape(t))) for t in n.outputs if t)
        in_shapes = tuple(tuple(g.shape(t)) for t in n.inputs if t)
        out_shapes = tuple(tuple(g.shape(t)) for t in n.outputs if t)
        meas_shape = tuple(g.shape(act[0][0])) if act else None
        meas_w = None
        if spec.weight_inputs and len(n.inputs) > spec.weight_inputs[0] and n.inputs[spec.weight_inputs[0]]:
            meas_w = tuple(g.shape(n.inputs[spec.weight_inputs[0]]))
        # same rule as hwsim.quant.config.config_nodes (not imported: it would load the kernels)
        configurable = (not spec.passthrough and n.op not in ("QuantizeLinear", "DequantizeLinear")
                        and bool(act))
        fused = False
        if n.op in FUSED_ACTIVATIONS and act:
            src = act[0][0]
            prod = g.producer(src)
            fused = (prod is not None and op_class_of(prod).is_compute and prod.op not in FUSED_ACTIVATIONS
                     and len(g.consumers(src)) == 1 and src not in g.outputs)
        return _Static(i, n, cls, free, configurable, fused, 0 if fused else node_macs(g, n),
                       tuple(act), weight, bias, const, outs, in_shapes, out_shapes, meas_shape, meas_w)

    def _reachable_explicit(self, tensor: str) -> tuple[str, ...]:
        """Nodes that may set a graph input's width: consumers, through pass-through chains."""
        out, stack, seen = [], [tensor], set()
        while stack:
            t = stack.pop()
            for c in self.graph.consumers(t):
                if c.name in seen:
                    continue
                seen.add(c.name)
                out.append(c.name)
                stack.extend(o for o in c.outputs if o)
        order = self._index
        return tuple(sorted(out, key=lambda nm: order[nm]))

    # -- evaluation ---------------------------------------------------------------------------
    def _parse_pairs(self, pairs) -> dict[str, BitPair]:
        if pairs is None:
            return {}
        if isinstance(pairs, (str, BitPair)):
            return self.uniform_pairs(BitPair.parse(pairs))
        out = {}
        cands = self._cand_set
        parsed = self._parsed
        index = self._index
        for name, p in pairs.items():
            if name not in index:
                raise ConfigError(f"cost: no node named '{name}' in model '{self.graph.name}'")
            if p.__class__ is not BitPair:
                q = parsed.get(p)
                if q is None:
                    try:
                        q = parsed[p] = BitPair.parse(p)
                    except ValueError as e:
                        raise ConfigError(f"cost: node '{name}': {e}") from None
                p = q
            if p not in cands:
                raise ConfigError(f"cost: node '{name}': pair {p} is not supported by profile "
                                  f"'{self.profile.name}'; allowed: {', '.join(map(str, self.profile.candidates))}")
            out[name] = p
        return out

    def uniform_pairs(self, pair) -> dict[str, BitPair]:
        """``pair`` for every node that takes a pair, or its op's highest allowed pair where ``pair``
        is not allowed for that op type (profile ``op_overrides``)."""
        pair = BitPair.parse(pair)
        out = {}
        for s in self._statics:
            if s.explicit_ok:
                allowed = self.profile.candidates_for(s.node.op)
                out[s.node.name] = pair if pair in allowed else allowed[-1]
        return out

    def _derived_pair(self, op: str, a_bits: int, default: BitPair) -> BitPair:
        allowed = self.profile.candidates_for(op)
        for p in reversed(allowed):
            if p.a == a_bits:
                return p
        for p in reversed(self.profile.candidates):
            if p.a == a_bits:
                return p
        return default

    def evaluate(self, pairs=None, *, default=None) -> CostReport:
        """Cost of the graph with the given per-node pairs.

        Parameters
        ----------
        pairs : mapping node name -> BitPair (or "W8A8"), or one pair for every node
            (see :meth:`uniform_pairs`), or None (every node at ``default``).
        default : pair for nodes the mapping leaves out and whose input width is unknown;
            the profile's highest candidate if None.
        """
        prof = self.profile
        default = prof.highest_candidate if default is None else BitPair.parse(default)
        explicit = self._parse_pairs(pairs)
        if pairs is None:
            explicit = self.uniform_pairs(default)
        tbits: dict[str, int] = {}
        for t, consumers in self._input_first_consumers.items():
            bits = None
            for c in consumers:
                if c in explicit:
                    bits = explicit[c].a
                    break
            tbits[t] = default.a if bits is None else bits
        nodes, conversions = [], []
        tpair: dict[str, BitPair] = {}
        pc = prof.cost_model.precision_conversion
        for s in self._statics:
            name = s.node.name
            pair = explicit.get(name)
            if pair is not None:
                in_bits = tuple(pair.a for _ in s.act_inputs)
                out_bits = pair.a
                for t, n_el in s.act_inputs:
                    have = tbits.get(t, pair.a)
                    if have != pair.a:
                        e = None if pc.energy_pj_per_element is None else n_el * pc.energy_pj_per_element * 1e-12
                        conversions.append(Conversion(t, name, have, pair.a, n_el, n_el * pc.seconds_per_element, e))
            else:
                in_bits = tuple(tbits.get(t, default.a) for t, _ in s.act_inputs)
                a = in_bits[0] if in_bits else default.a
                pair = tpair.get(s.act_inputs[0][0]) if s.act_inputs else None
                if pair is None or pair.a != a or pair not in self._allowed[s.node.op]:
                    pair = self._derived_pair(s.node.op, a, default)
                out_bits = a
            for t, _ in s.out_elems:
                tbits[t] = out_bits
                tpair[t] = pair
            key = (s.index, pair, in_bits, out_bits)
            nc = self._cache.get(key)
            if nc is None:
                nc = self._node_cost(s, pair, in_bits, out_bits)
                self._cache[key] = nc
            nodes.append(nc)
        return self._report(nodes, conversions, tbits)

    def _node_cost(self, s: _Static, pair: BitPair, in_bits, out_bits: int) -> NodeCost:
        prof = self.profile
        cm = prof.cost_model
        n = s.node
        pair_label = str(pair) if (s.cls.is_compute or not s.free) else None
        if s.free or s.fused:
            return NodeCost(n.name, n.op, s.cls.value, str(pair) if s.fused else None, s.in_shapes, s.out_shapes,
                            0, 0.0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0 if self._has_energy else None,
                            "fused" if s.fused else "none")
        if not s.weight_elems:
            # no weights: only the activation width matters; cost it as the highest candidate
            # with that width so that "lowering" w of a weightless op saves nothing
            pair = self._weightless.get(pair.a, pair)
        w_bytes = _packed_bytes(s.weight_elems, pair.w) if s.weight_elems else 0
        if s.bias_elems:
            w_bytes += _packed_bytes(s.bias_elems, prof.bias_bits_for(pair))
        if s.const_elems:
            w_bytes += _packed_bytes(s.const_elems, pair.a)
        a_in = sum(_packed_bytes(el, b) for (_, el), b in zip(s.act_inputs, in_bits))
        a_out = sum(_packed_bytes(el, out_bits) for _, el in s.out_elems)
        per_level = {}
        per_level[cm.weights_from] = per_level.get(cm.weights_from, 0) + w_bytes
        per_level[cm.activations_from] = per_level.get(cm.activations_from, 0) + a_in + a_out
        memory_s = max((b / self._bw[lv] for lv, b in per_level.items()), default=0.0)
        if s.cls.is_compute and s.macs:
            compute_s = s.macs / (cm.macs_per_cycle[pair][s.cls] * self._clock_util)
        else:
            compute_s = 0.0
        measured = None
        if s.meas_shape is not None and self._measured:
            measured = self._measured.get((n.op, s.meas_shape, pair, s.meas_wshape))
            if measured is None:
                measured = self._measured.get((n.op, s.meas_shape, pair, None))
        if measured is not None:
            latency, bound = measured, "measured"
        else:
            latency = max(compute_s, memory_s) + cm.overhead_s
            bound = "compute" if compute_s >= memory_s and compute_s > 0 else "memory"
        bops = float(s.macs * cm.bops_per_mac[pair])
        energy = None
        if self._has_energy:
            energy = s.macs * cm.energy_pj_per_mac[pair]
            for lv, b in per_level.items():
                energy += b * self._epb[lv]
            energy *= 1e-12
        return NodeCost(n.name, n.op, s.cls.value, pair_label, s.in_shapes, s.out_shapes, s.macs, bops, w_bytes,
                        a_in, a_out, compute_s, memory_s, latency, energy, bound)

    def _peak_activation_bytes(self, tbits: Mapping[str, int]) -> int:
        """Peak of live activation bytes over the topological schedule (precomputed in __init__)."""
        cur = 0
        for t, el in self._input_buffers:
            cur += (el * tbits.get(t, 8) + 7) // 8
        peak = cur
        size = {}
        for allocs, frees in self._schedule:
            for t, el in allocs:
                b = size[t] = (el * tbits[t] + 7) // 8
                cur += b
            if cur > peak:
                peak = cur
            for t in frees:
                cur -= size[t] if t in size else (self._input_sizes[t] * tbits.get(t, 8) + 7) // 8
        return peak

    def _report(self, nodes, conversions, tbits) -> CostReport:
        prof = self.profile
        ref = prof.metric.reference
        macs = sum(n.macs for n in nodes)
        bops = sum(n.bops for n in nodes)
        ref_per_mac = 1024.0 if ref == FP32 else prof.cost_model.bops_per_mac[ref]
        ref_bops = macs * ref_per_mac
        w_bytes = sum(n.weight_bytes for n in nodes)
        a_bytes = sum(n.activation_in_bytes + n.activation_out_bytes for n in nodes)
        peak = self._peak_activation_bytes(tbits)
        node_lat = math.fsum(n.latency_s for n in nodes)
        conv_lat = math.fsum(c.latency_s for c in conversions)
        if self._has_energy:
            conv_e = math.fsum(c.energy_j or 0.0 for c in conversions)
            energy = math.fsum(n.energy_j for n in nodes) + conv_e
        else:
            conv_e = energy = None
        totals = CostTotals(
            macs=macs, bops=bops, reference=prof.metric.reference_label, reference_bops=ref_bops,
            relative_bops=bops / ref_bops if ref_bops else 0.0,
            weight_bytes=w_bytes, activation_bytes=a_bytes, peak_activation_bytes=peak,
            memory_bytes=w_bytes + peak, node_latency_s=node_lat, conversion_latency_s=conv_lat,
            latency_s=node_lat + conv_lat, energy_j=energy, conversion_energy_j=conv_e,
            conversions=len(conversions),
            compute_bound_nodes=sum(1 for n in nodes if n.bound == "compute"),
            memory_bound_nodes=sum(1 for n in nodes if n.bound == "memory"),
        )
        return CostReport(self.graph.name, prof.name, tuple(nodes), tuple(conversions), totals)

    # -- metric -------------------------------------------------------------------------------
    def metric(self, pairs=None, metric: Metric | None = None) -> float:
        """Value of the profile's metric (or ``metric``) for ``pairs``: seconds, BOPs, joules or bytes."""
        return metric_value(self.evaluate(pairs), metric or self.profile.metric)

    def reference_value(self, metric: Metric | None = None) -> float:
        """The metric at its reference point: every node at the reference pair, or FP32
        (32-bit weights and activations; bops and memory only)."""
        metric = metric or self.profile.metric
        ref = metric.reference
        if ref == FP32:
            if metric.name is MetricName.BOPS:
                return float(sum(s.macs for s in self._statics) * 1024)
            if metric.name is MetricName.MEMORY:
                g = self.graph
                weights = sum(4 * (s.weight_elems + s.bias_elems + s.const_elems) for s in self._statics)
                tb = {t: 32 for t in g.tensors()}
                return float(weights + self._peak_activation_bytes(tb))
            raise ConfigError(f"metric {metric.name.value} has no fp32 reference")
        return self.metric(self.uniform_pairs(ref), metric)

    def relative_metric(self, pairs=None, metric: Metric | None = None) -> float:
        """Metric value divided by :meth:`reference_value`."""
        metric = metric or self.profile.metric
        ref = self.reference_value(metric)
        return self.metric(pairs, metric) / ref if ref else 0.0


def metric_value(report: CostReport, metric) -> float:
    """The value of ``metric`` (a :class:`~hwsim.profile.Metric` or its name) in ``report``.

    latency -> seconds, bops -> BOPs, energy -> joules, memory -> bytes (weights + peak activations).
    """
    name = metric.name if isinstance(metric, Metric) else MetricName(str(metric))
    t = report.totals
    if name is MetricName.LATENCY:
        return float(t.latency_s)
    if name is MetricName.BOPS:
        return float(t.bops)
    if name is MetricName.ENERGY:
        if t.energy_j is None:
            raise ConfigError(f"profile '{report.profile}' has no energy data; the energy metric is unavailable")
        return float(t.energy_j)
    return float(t.memory_bytes)


def evaluate_cost(graph: Graph, profile: HardwareProfile, pairs=None, *, default=None) -> CostReport:
    """One-shot :meth:`CostModel.evaluate` (build a :class:`CostModel` to evaluate many times)."""
    return CostModel(graph, profile).evaluate(pairs, default=default)

"""Graph -> QuantizedGraph: quantization parameters of every tensor for one precision config.

:func:`quantize_graph` turns a float :class:`~hwsim.graph.Graph`, a
:class:`~hwsim.profile.HardwareProfile`, calibration statistics and a precision config
(uniform :class:`~hwsim.bits.BitPair` or per-layer dict) into an immutable
:class:`QuantizedGraph` that the fake-quant and integer executors run.

How tensors share quantizers
----------------------------
Activation tensors are grouped into *quantizer sets* (one :class:`QuantParams` per set):

* a pass-through op (Reshape, Flatten, Transpose, MaxPool, Pad, Slice, ReLU, Clip …) outputs
  in its input's quantizer (pure integer data movement or clamping);
* ReLU / ReLU6 / Clip directly after a Conv / Gemm / MatMul (its only consumer) is *folded*
  into that node's output clamp: the node's output takes the post-activation range (so it is
  unsigned under ``signedness: auto``) and the activation node becomes a no-op;
* inputs of ops the profile lists in ``shared_scale_ops`` share one quantizer (Concat's
  output too, so Concat is pure data movement); otherwise Add/Sub/Mul rescale each input
  inside the kernel and Concat requantizes inputs to its output scale;
* ops with a fixed output range in the profile (Sigmoid, Softmax, Tanh …) use it.

A set's range is the union of its members' observer ranges (the pre-activation tensor of a
folded ReLU does not count). Its bit-width is the activation bits ``a`` of the nodes that
read it (all must agree) or, for a graph output, of the node producing it.

Cost
----
:class:`Quantizer` does the config-independent work once (set building, checks) and caches
per-bit-width results (activation parameters, quantized weights, quantized biases), so
calling :meth:`Quantizer.quantize` for many configs — as the mixed-precision search does —
costs little more than assembling dictionaries. :func:`quantize_graph` keeps one
:class:`Quantizer` per (graph, profile, observer) inside the :class:`CalibrationStats`
object it is given (no global state).

Examples
--------
>>> import numpy as np
>>> from hwsim.graph import Graph, Node, TensorInfo
>>> from hwsim.profile import shipped_profile
>>> from hwsim.quant import calibrate, quantize_graph
>>> w = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
>>> g = Graph("g", (TensorInfo("x", (None, 4)),), ("z",),
...           (Node("fc", "Gemm", ("x", "w"), ("y",), {"transB": 1}), Node("r", "Relu", ("y",), ("z",))),
...           {"w": w}, shapes={"x": (1, 4), "y": (1, 3), "z": (1, 3)})
>>> stats = calibrate(g, np.random.default_rng(1).normal(size=(16, 4)).astype(np.float32), progress=False)
>>> qg = quantize_graph(g, shipped_profile("cpu_onnxruntime"), stats, "W8A8")
>>> qg.plans["fc"].kind, qg.plans["fc"].fused_activation, qg.plans["r"].kind
('int', 'relu', 'fused')
>>> qg.params("z") is qg.params("y"), str(qg.params("z").fmt)
(True, 'uint8')
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from hwsim.bits import BitPair
from hwsim.errors import ConfigError, DataError, UnsupportedOpError
from hwsim.graph import Graph, Node
from hwsim.opset import OPS

from .calibrate import CalibrationStats
from .config import config_nodes, validate_config
from .qparams import QuantParams, round_half

__all__ = ["INTEGER_OPS", "NodePlan", "QuantizedGraph", "Quantizer", "quantize_graph", "data_inputs",
           "resolve_config"]

INTEGER_OPS: dict[str, str] = {
    # integer kernels (hwsim.kernels): GEMM/conv with requantization, elementwise add/mul
    "Conv": "int", "Gemm": "int", "MatMul": "int",
    "Add": "int", "Mul": "int",
    "AveragePool": "int", "GlobalAveragePool": "int", "ReduceMean": "int", "ReduceSum": "int",
    # integer clamp / pure data movement on integer codes
    "Relu": "move", "Clip": "move", "MaxPool": "move", "Concat": "move", "Reshape": "move",
    "Flatten": "move", "Transpose": "move", "Squeeze": "move", "Unsqueeze": "move", "Identity": "move",
    "Pad": "move", "Slice": "move", "Gather": "move", "GlobalMaxPool": "move", "ReduceMax": "move",
    "Expand": "move", "Split": "move",
    # integer lookup tables (one entry per input code)
    "Sigmoid": "lut", "Tanh": "lut", "HardSwish": "lut", "HardSigmoid": "lut", "Erf": "lut", "Sqrt": "lut",
    "Gelu": "lut", "LeakyRelu": "lut", "Exp": "lut", "Neg": "lut",
    # no integer formulation in the kernels: dequantize -> float op -> quantize, reported as float islands
    "Softmax": "float_island", "LayerNormalization": "float_island", "PRelu": "float_island",
    "Resize": "float_island", "Equal": "float_island", "Where": "float_island", "Cast": "float_island",
    "Sub": "float_island", "Div": "float_island", "Pow": "float_island", "BatchNormalization": "float_island",
}
"""How each op runs in the integer executor: ``int`` (integer kernel), ``move`` (integer data
movement / clamp, same scale in and out unless requantized), ``lut`` (integer lookup table),
``float_island`` (dequantize, float op, quantize; flagged in every report)."""

_FUSE_INTO = {"Conv", "Gemm", "MatMul"}
_MULTI_DATA = {"Add", "Sub", "Mul", "Div", "Pow", "Concat", "Equal"}
_LUT_MAX_BITS = 16


def data_inputs(graph: Graph, node: Node) -> tuple[int, ...]:
    """Input positions of ``node`` that carry quantized activations (not weights, bias, shapes).

    Constant inputs of Add/Sub/Mul/Div/Pow/Concat are data (quantized like activations).
    """
    ins = node.inputs
    if node.op in ("Conv", "Gemm"):
        return (0,)
    if node.op == "MatMul":
        return (0,) if graph.is_constant(ins[1]) else (0, 1)
    if node.op in _MULTI_DATA:
        return tuple(i for i, t in enumerate(ins) if t)
    if node.op == "Where":
        return (1, 2)
    return (0,)


def _weight_input(graph: Graph, node: Node) -> int | None:
    if node.op in ("Conv", "Gemm") and len(node.inputs) > 1 and graph.is_constant(node.inputs[1]):
        return 1
    if node.op == "MatMul" and graph.is_constant(node.inputs[1]):
        return 1
    return None


def _weight_axis(graph: Graph, node: Node) -> int:
    w = graph.constants[node.inputs[1]]
    if node.op == "Conv":
        return 0
    if node.op == "Gemm":
        return 0 if node.attrs.get("transB", 0) else 1
    return w.ndim - 1


def _clip_bounds(node: Node) -> tuple[float, float]:
    if node.op == "Relu":
        return 0.0, np.inf
    lo, hi = node.attrs.get("min", -np.inf), node.attrs.get("max", np.inf)
    return (-np.inf if lo is None else float(lo)), (np.inf if hi is None else float(hi))


class _UF:
    def __init__(self):
        self.parent: dict[str, str] = {}

    def add(self, t):
        self.parent.setdefault(t, t)

    def find(self, t):
        p = self.parent
        while p[t] != t:
            p[t] = p[p[t]]
            t = p[t]
        return t

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


@dataclass(frozen=True, eq=False)
class NodePlan:
    """How one node executes in the quantized graph.

    Attributes
    ----------
    name, op : the node.
    kind : ``int`` | ``move`` | ``lut`` | ``float_island`` | ``fused`` (activation folded into
        the producer: a no-op) | ``dynamic`` (dynamic quantization: per-batch input range,
        integer accumulation, float output) | ``float`` (dynamic mode: runs in float).
    pair : the node's bit-width pair (None for pass-through nodes).
    inputs : per node input: the activation :class:`QuantParams`, or None (weights, bias,
        shape constants, and every input in dynamic mode).
    outputs : per node output: the activation :class:`QuantParams` (None in dynamic mode).
    weight_params, weight_q : weight quantizer and its integer codes (nodes with weights).
    bias_q : integer bias at scale ``s_x * s_w`` (int32, or int64 when the profile's bias
        is wider), or None; ``bias_float`` keeps the float bias (fbgemm keeps it out of the
        accumulator; dynamic mode adds it in float).
    const_q : input position -> integer codes of a constant data input (e.g. ``Add(x, c)``).
    as_op : the op the node executes as (``Div(x, c)`` runs as ``Mul(x, 1/c)`` and
        ``Sub(x, c)`` as ``Add(x, -c)``, the constant quantized in its new form), or None.
    fused_activation : ``"relu"``, ``"relu6"`` or ``(lo, hi)`` float bounds folded into the
        output clamp, or None; ``fused_node`` names the folded node.
    requant, accumulator_bits, overflow, pairwise_int16, rounding : the profile's arithmetic
        for ``pair``.
    note : why a node runs the way it does (float islands say so).
    """

    name: str
    op: str
    kind: str
    pair: BitPair | None
    inputs: tuple
    outputs: tuple
    weight_params: QuantParams | None = None
    weight_q: np.ndarray | None = None
    bias_q: np.ndarray | None = None
    bias_float: np.ndarray | None = None
    const_q: Mapping[int, np.ndarray] = field(default_factory=dict)
    as_op: str | None = None
    fused_activation: Any = None
    fused_node: str | None = None
    requant: Any = None
    accumulator_bits: int | None = None
    overflow: Any = None
    pairwise_int16: bool = False
    rounding: Any = None
    note: str = ""
    _cache: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        d = {"op": self.op, "kind": self.kind, "pair": None if self.pair is None else str(self.pair)}
        if self.fused_activation is not None:
            d["fused_activation"] = (self.fused_activation if isinstance(self.fused_activation, str)
                                     else list(self.fused_activation))
            d["fused_node"] = self.fused_node
        if self.requant is not None:
            d["requant"] = getattr(self.requant, "value", str(self.requant))
            d["accumulator_bits"] = self.accumulator_bits
        if self.note:
            d["note"] = self.note
        return d


@dataclass(frozen=True, eq=False)
class QuantizedGraph:
    """A float graph plus everything integer execution needs, for one precision config.

    Attributes
    ----------
    graph : the float model.
    profile : the hardware profile.
    config : node name -> :class:`BitPair` for every configured node (:func:`config_nodes`).
    act : activation tensor name -> :class:`QuantParams` (graph inputs, node outputs and
        quantized constants; empty in dynamic mode).
    plans : node name -> :class:`NodePlan`, in graph order.
    tensor_bits : activation tensor -> bits.
    observer : the calibration observer the ranges came from.
    dynamic : dynamic quantization (activation ranges per batch at run time).
    """

    graph: Graph
    profile: Any
    config: Mapping[str, BitPair]
    act: Mapping[str, QuantParams]
    plans: Mapping[str, NodePlan]
    tensor_bits: Mapping[str, int]
    observer: str = "minmax"
    dynamic: bool = False
    _cache: dict = field(default_factory=dict, repr=False)

    def params(self, tensor: str) -> QuantParams:
        """The activation quantizer of ``tensor``."""
        try:
            return self.act[tensor]
        except KeyError:
            raise KeyError(f"tensor '{tensor}' has no activation quantizer"
                           + (" (dynamic quantization)" if self.dynamic else "")) from None

    @property
    def float_islands(self) -> tuple[str, ...]:
        """Nodes that run dequantize -> float op -> quantize in the integer executor."""
        return tuple(n for n, p in self.plans.items() if p.kind in ("float_island", "float"))

    def tensor_keys(self) -> dict[str, int]:
        """Tensor -> hash of everything that determines its integer value under this config.

        Two quantized graphs of the same model/profile/stats give a tensor the same key
        exactly when its value (for the same inputs) is identical, so a cache of
        intermediate tensors from one run can seed ``values=`` of another
        (:func:`hwsim.quant.reusable_values`).
        """
        got = self._cache.get("keys")
        if got is not None:
            return got
        g = self.graph
        keys: dict[str, int] = {}
        for t in g.input_names:
            keys[t] = hash(("in", t, self.tensor_bits.get(t), self.dynamic))
        for n in g.nodes:
            p = self.plans[n.name]
            ins = tuple(keys.get(t, hash(("c", t, self.tensor_bits.get(t)))) for t in n.inputs if t)
            outs_bits = tuple(self.tensor_bits.get(t) for t in n.outputs)
            k = hash((n.name, None if p.pair is None else (p.pair.w, p.pair.a), outs_bits,
                      p.fused_activation if isinstance(p.fused_activation, (str, type(None))) else
                      tuple(p.fused_activation), ins))
            for t in n.outputs:
                if t:
                    keys[t] = hash((k, t))
        self._cache["keys"] = keys
        return keys

    def to_dict(self) -> dict:
        return {
            "model": self.graph.name, "profile": getattr(self.profile, "name", None), "observer": self.observer,
            "dynamic": self.dynamic,
            "config": {k: str(v) for k, v in self.config.items()},
            "nodes": {k: p.to_dict() for k, p in self.plans.items()},
            "tensors": {k: v.to_dict() for k, v in self.act.items()},
        }

    def __repr__(self) -> str:
        kinds: dict[str, int] = {}
        for p in self.plans.values():
            kinds[p.kind] = kinds.get(p.kind, 0) + 1
        return (f"QuantizedGraph({self.graph.name!r}, profile={getattr(self.profile, 'name', None)!r}, "
                f"{len(self.plans)} nodes {kinds}, dynamic={self.dynamic})")


def resolve_config(graph: Graph, profile, config, *, source: str = "config") -> dict[str, BitPair]:
    """Normalise ``config`` (None = each node's highest allowed pair, a pair / ``"W8A8"`` =
    uniform, or a dict) into a validated per-node dict."""
    nodes = config_nodes(graph)
    if config is None:
        cfg = {n: profile.highest_for(graph.node(n).op) for n in nodes}
        source = "default config (highest pair per op)"
    elif isinstance(config, (BitPair, str)):
        try:
            pair = BitPair.parse(config)
        except ValueError as e:
            raise ConfigError(f"--bits: {e}") from None
        cfg = {n: pair for n in nodes}
        source = f"--bits {pair}"
    elif isinstance(config, Mapping):
        cfg = {}
        for k, v in config.items():
            try:
                cfg[k] = BitPair.parse(v)
            except ValueError as e:
                raise ConfigError(f"{source}: layer '{k}': {e}") from None
    else:
        raise ConfigError(f"{source}: expected a BitPair, 'W8A8' or a dict of layer -> pair, "
                          f"got {type(config).__name__}")
    validate_config(cfg, graph, profile, source=source)
    return {n: cfg[n] for n in nodes}


class Quantizer:
    """Config-independent quantization state for one (graph, profile, stats): build once,
    call :meth:`quantize` per config. Caches per-bit-width parameters and weights.

    Raises :class:`UnsupportedOpError` (naming the node) when the graph has an op with no
    integer execution, and :class:`DataError` when ``stats`` lack a tensor of the graph.
    """

    def __init__(self, graph: Graph, profile, stats: CalibrationStats | None, *, observer: str | None = None,
                 dynamic: bool = False, weight_observer: str = "minmax"):
        self.graph = graph
        self.profile = profile
        self.stats = stats
        self.dynamic = bool(dynamic)
        self.observer = observer or (stats.observer if stats is not None else "minmax")
        if weight_observer not in ("minmax", "mse"):
            raise ConfigError(f"weight observer must be minmax or mse, got {weight_observer!r}")
        self.weight_observer = weight_observer
        if stats is None and not self.dynamic:
            raise DataError("static quantization needs calibration statistics (run calibrate first)")
        for n in graph.nodes:
            kind = INTEGER_OPS.get(n.op)
            if kind is None:
                raise UnsupportedOpError(n.name, n.op, INTEGER_OPS, "no integer execution for this op")
            if n.op == "Gemm" and (n.attrs.get("transA", 0) or n.attrs.get("alpha", 1.0) != 1.0
                                   or n.attrs.get("beta", 1.0) != 1.0):
                raise UnsupportedOpError(n.name, n.op, INTEGER_OPS,
                                         "integer Gemm needs transA=0, alpha=1, beta=1")
            if n.op in ("Conv", "Gemm") and _weight_input(graph, n) is None:
                raise UnsupportedOpError(n.name, n.op, INTEGER_OPS, "integer Conv/Gemm needs a constant weight")
            if n.op == "MatMul" and graph.is_constant(n.inputs[1]) and graph.constants[n.inputs[1]].ndim != 2:
                raise UnsupportedOpError(n.name, n.op, INTEGER_OPS, "integer MatMul needs a 2-D constant weight")
            if n.op == "Conv" and len(graph.constants[n.inputs[1]].shape) != 4:
                raise UnsupportedOpError(n.name, n.op, INTEGER_OPS, "integer Conv is 2-D (NCHW) only")
        self._build_sets()
        self._act_cache: dict = {}
        self._w_cache: dict = {}
        self._b_cache: dict = {}
        self._c_cache: dict = {}
        self._plan_cache: dict = {}

    # -- config-independent structure ------------------------------------------------------
    def _build_sets(self):
        g, prof = self.graph, self.profile
        uf = _UF()
        non_source: set[str] = set()
        fused: dict[str, str] = {}          # producer node -> folded activation node
        self.data_pos = {n.name: data_inputs(g, n) for n in g.nodes}
        for info in g.inputs:
            if np.dtype(info.dtype or "float32").kind == "f":     # integer inputs (indices) are not quantized
                uf.add(info.name)
        def is_float(t):
            if g.is_constant(t):
                return np.asarray(g.constants[t]).dtype.kind == "f"
            return np.dtype(g.dtypes.get(t) or "float32").kind == "f"

        for n in g.nodes:
            for i in self.data_pos[n.name]:
                if n.inputs[i] and is_float(n.inputs[i]):
                    uf.add(n.inputs[i])
            for t in n.outputs:
                if t and is_float(t):
                    uf.add(t)
        for n in g.nodes:
            spec = OPS.get(n.op)
            if spec is not None and spec.passthrough:
                t_in, t_out = n.inputs[0], n.outputs[0]
                if t_in not in uf.parent or t_out not in uf.parent:
                    continue
                uf.union(t_in, t_out)
                if n.op in ("Relu", "Clip"):
                    p = g.producer(t_in)
                    if (p is not None and p.op in _FUSE_INTO and p.name not in fused
                            and len(g.consumers(t_in)) == 1 and t_in not in g.outputs
                            and not (p.op == "MatMul" and _weight_input(g, p) is None)):
                        fused[p.name] = n.name
                        non_source.add(t_in)
            elif prof.shares_scale(n.op):
                ins = [n.inputs[i] for i in self.data_pos[n.name] if n.inputs[i] in uf.parent]
                for t in ins[1:]:
                    uf.union(ins[0], t)
                if n.op == "Concat" and ins and n.outputs[0] in uf.parent:
                    uf.union(ins[0], n.outputs[0])
        sets: dict[str, list[str]] = {}
        for t in uf.parent:
            sets.setdefault(uf.find(t), []).append(t)
        self.set_of = {t: uf.find(t) for t in uf.parent}
        self.members = sets
        self.non_source = non_source
        self.fused = fused
        self.fused_by = {v: k for k, v in fused.items()}
        # readers of each set: configured nodes reading a member at a data position
        cfg_nodes = set(config_nodes(g))
        readers: dict[str, list[str]] = {s: [] for s in sets}
        for n in g.nodes:
            if n.name in cfg_nodes:
                for i in self.data_pos[n.name]:
                    s = self.set_of.get(n.inputs[i])
                    if s is not None and n.name not in readers[s]:
                        readers[s].append(n.name)
        self.readers = readers
        # the node producing the set (for output sets and fixed ranges)
        self.set_producer: dict[str, Node | None] = {}
        for s, mem in sets.items():
            prod = None
            for t in mem:
                p = g.producer(t)
                if p is not None and not (OPS.get(p.op) and OPS[p.op].passthrough):
                    prod = p
                    break
            self.set_producer[s] = prod
        # every non-constant member must have statistics
        if self.stats is not None and not self.dynamic:
            for t in self.set_of:
                if not g.is_constant(t) and t not in self.stats:
                    raise DataError(f"calibration statistics have no entry for tensor '{t}' (were they "
                                    f"collected on a different model than '{g.name}'?)")

    # -- per-bit-width pieces (cached) -----------------------------------------------------
    def _source_range(self, t: str, bits: int, signed: bool, sym: bool) -> tuple[float, float]:
        g = self.graph
        if g.is_constant(t):
            c = g.constants[t]
            return float(np.min(c)), float(np.max(c))
        return self.stats.range(t, bits=bits, signed=signed, symmetric=sym, observer=self.observer)

    def _nonneg(self, t: str) -> bool:
        g = self.graph
        if g.is_constant(t):
            return bool(np.min(g.constants[t]) >= 0)
        return self.stats[t].nonnegative

    def set_params(self, s: str, bits: int) -> QuantParams:
        key = (s, bits)
        got = self._act_cache.get(key)
        if got is not None:
            return got
        prof = self.profile
        sources = [t for t in self.members[s] if t not in self.non_source]
        prod = self.set_producer.get(s)
        fixed = prof.fixed_output_range(prod.op, bits) if prod is not None else None
        if fixed is not None:
            nonneg = prod.op in ("Softmax", "Sigmoid", "HardSigmoid")
            fmt = prof.activation_format(bits, nonnegative=nonneg)
            got = QuantParams(np.float32(fixed.scale), np.int64(fixed.zero_point), fmt)
        else:
            nonneg = all(self._nonneg(t) for t in sources)
            fmt = prof.activation_format(bits, nonnegative=nonneg)
            sym = prof.activation_symmetric(bits)
            lo, hi = 0.0, 0.0
            for t in sources:
                a, b = self._source_range(t, bits, fmt.signed, sym)
                lo, hi = min(lo, a), max(hi, b)
            got = QuantParams.from_range(lo, hi, fmt, symmetric=sym, power_of_two=prof.power_of_two_scales)
        self._act_cache[key] = got
        return got

    def weight(self, node: Node, bits: int) -> tuple[QuantParams, np.ndarray]:
        wname = node.inputs[1]
        axis = _weight_axis(self.graph, node)
        key = (wname, bits, axis)
        got = self._w_cache.get(key)
        if got is not None:
            return got
        prof = self.profile
        w = np.asarray(self.graph.constants[wname], np.float32)
        fmt = prof.weight_format(bits)
        rules = prof.quantization.weight
        per_channel = rules.per_channel and w.ndim >= 2
        red = tuple(i for i in range(w.ndim) if i != axis) if per_channel else None
        lo, hi = (w.min(axis=red), w.max(axis=red)) if per_channel else (float(w.min()), float(w.max()))

        def make(f):
            return QuantParams.from_range(np.asarray(lo) * f, np.asarray(hi) * f, fmt, symmetric=rules.symmetric,
                                          power_of_two=prof.power_of_two_scales, axis=axis if per_channel else None)

        params = make(1.0)
        if self.weight_observer == "mse":
            params = self._mse_weight(w, params, make, red)
        q = params.quantize(w, rounding=prof.arithmetic.rounding.value)
        q.setflags(write=False)
        got = (params, q)
        self._w_cache[key] = got
        return got

    def weight_for_bias(self, node: Node, pair: BitPair, sx: QuantParams) -> tuple[QuantParams, np.ndarray]:
        """Weight quantizer whose scales keep the integer bias within half the bias range.

        A channel with (nearly) zero weights but a real bias gets a tiny weight scale, and
        ``bias / (s_x * s_w)`` would not fit the bias integer (it would saturate and then
        overflow the accumulator). Such channels get their weight scale raised to
        ``|bias| / (s_x * 2^(bias_bits-2))`` (ONNX Runtime's quantizer makes the same fix).
        """
        params, q = self.weight(node, pair.w)
        if len(node.inputs) < 3 or not node.inputs[2]:
            return params, q
        bits = self.profile.bias_bits_for(pair)
        key = (node.inputs[1], pair.w, float(sx.scale), bits, node.name)
        got = self._w_cache.get(key)
        if got is not None:
            return got
        b = np.abs(np.asarray(self.graph.constants[node.inputs[2]], np.float64).reshape(-1))
        need = b / (float(sx.scale) * 2.0 ** (bits - 2))
        scale = params.scale.astype(np.float64)
        if np.all(scale >= need):
            got = (params, q)
        else:
            factor = np.maximum(need / scale, 1.0) * (1 + 1e-6)
            if not params.per_channel:
                factor = np.float64(factor.max())
            lo, hi = params.real_range()
            rules = self.profile.quantization.weight
            new = QuantParams.from_range(lo * factor, hi * factor, params.fmt, symmetric=rules.symmetric,
                                         power_of_two=self.profile.power_of_two_scales, axis=params.axis)
            w = np.asarray(self.graph.constants[node.inputs[1]], np.float32)
            q = new.quantize(w, rounding=self.profile.arithmetic.rounding.value)
            q.setflags(write=False)
            got = (new, q)
        self._w_cache[key] = got
        return got

    @staticmethod
    def _mse_weight(w, params, make, red):
        """Shrink each channel's range by the factor (of a 1-D grid) with the least squared error."""
        best_err = None
        for f in np.linspace(1.0, 0.3, 36):
            p = make(f)
            err = (p.fake_quantize(w) - w).astype(np.float64) ** 2
            err = err.sum(axis=red) if red is not None else np.asarray(err.sum())
            if best_err is None:
                best_err, scale, zp = err, p.scale.copy(), p.zero_point.copy()
                continue
            better = err < best_err
            best_err = np.where(better, err, best_err)
            scale = np.where(better, p.scale, scale)
            zp = np.where(better, p.zero_point, zp)
        return QuantParams(scale, zp, params.fmt, params.axis)

    def bias(self, node: Node, sx: QuantParams, wp: QuantParams, pair: BitPair) -> np.ndarray | None:
        if len(node.inputs) < 3 or not node.inputs[2]:
            return None
        key = (node.name, float(sx.scale), id(wp), pair)
        got = self._b_cache.get(key)
        if got is not None:
            return got
        b = np.asarray(self.graph.constants[node.inputs[2]], np.float32).reshape(-1)
        bscale = (np.float32(sx.scale) * wp.scale).astype(np.float32)
        q = round_half((b / bscale).astype(np.float32), "half_even")
        bits = self.profile.bias_bits_for(pair)
        lim = float(2 ** (bits - 1))
        # saturate in float64 below 2**(bits-1): in float32 (or for 64 bits) `lim - 1` rounds
        # up to `lim`, whose cast would wrap instead of saturating
        q = np.clip(q.astype(np.float64), -lim, np.nextafter(lim, 0.0)).astype(np.int64 if bits > 32 else np.int32)
        q.setflags(write=False)
        self._b_cache[key] = q
        return q

    def derived_const(self, t: str, op: str, bits: int) -> tuple[QuantParams, np.ndarray]:
        """Quantizer and codes of ``1/c`` (Div) or ``-c`` (Sub) for a constant operand ``c``."""
        key = ("derived", t, op, bits)
        got = self._c_cache.get(key)
        if got is None:
            c = np.asarray(self.graph.constants[t], np.float64)
            v = (1.0 / c if op == "Div" else -c).astype(np.float32)
            prof = self.profile
            fmt = prof.activation_format(bits, nonnegative=bool(np.all(v >= 0)))
            p = QuantParams.from_range(float(v.min()), float(v.max()), fmt, symmetric=prof.activation_symmetric(bits),
                                       power_of_two=prof.power_of_two_scales)
            q = p.quantize(v, rounding=prof.arithmetic.rounding.value)
            q.setflags(write=False)
            got = self._c_cache[key] = (p, q)
        return got

    def const(self, t: str, params: QuantParams) -> np.ndarray:
        key = (t, id(params))
        got = self._c_cache.get(key)
        if got is None:
            got = params.quantize(self.graph.constants[t], rounding=self.profile.arithmetic.rounding.value)
            got.setflags(write=False)
            self._c_cache[key] = (params, got)
            return got
        return got[1]

    # -- assembly --------------------------------------------------------------------------
    def set_bits(self, cfg: Mapping[str, BitPair]) -> dict[str, int]:
        """Bits of every quantizer set under ``cfg`` (ConfigError when readers disagree)."""
        g = self.graph
        out = {}
        for s, mem in self.members.items():
            rd = self.readers[s]
            bits = {cfg[r].a for r in rd}
            if len(bits) > 1:
                detail = ", ".join(f"{r} ({cfg[r]})" for r in rd)
                shown = ", ".join(sorted(m for m in mem if not g.is_constant(m))[:4])
                raise ConfigError(f"tensor(s) {shown} are read at different activation bits by {detail}; all "
                                  "consumers of one tensor (and of tensors sharing a scale) must use the same 'a'")
            if bits:
                out[s] = bits.pop()
            else:
                prod = self.set_producer.get(s)
                if prod is not None and prod.name in cfg:
                    out[s] = cfg[prod.name].a
                else:
                    out[s] = self.profile.highest_candidate.a
        return out

    def quantize(self, config=None) -> QuantizedGraph:
        """The :class:`QuantizedGraph` for ``config`` (None / pair / dict; see :func:`resolve_config`)."""
        g, prof = self.graph, self.profile
        cfg = resolve_config(g, prof, config)
        sbits = self.set_bits(cfg)
        tensor_bits = {t: sbits[s] for t, s in self.set_of.items()}
        act: dict[str, QuantParams] = {}
        if not self.dynamic:
            for t, s in self.set_of.items():
                act[t] = self.set_params(s, sbits[s])
        plans = {}
        arith = prof.arithmetic
        for n in g.nodes:
            plans[n.name] = self._plan(n, cfg, act, tensor_bits, arith)
        return QuantizedGraph(g, prof, cfg, act, plans, tensor_bits, self.observer, self.dynamic)

    def _plan(self, n: Node, cfg, act, tensor_bits, arith) -> NodePlan:
        # a plan depends only on the node, its pair and the bit-widths of the tensors around
        # it (every parameter is a cached function of those): reuse it between configs
        pair = cfg.get(n.name)
        ckey = (n.name, pair, tuple(tensor_bits.get(t) for t in n.inputs),
                tuple(tensor_bits.get(t) for t in n.outputs))
        got = self._plan_cache.get(ckey)
        if got is None:
            got = self._plan_cache[ckey] = self._build_plan(n, pair, act, tensor_bits, arith)
        return got

    def _build_plan(self, n: Node, pair, act, tensor_bits, arith) -> NodePlan:
        g = self.graph
        kind = INTEGER_OPS[n.op]
        note = ""
        if n.name in self.fused_by:
            kind, note = "fused", f"folded into the output clamp of '{self.fused_by[n.name]}'"
        elif kind == "lut" and tensor_bits[n.inputs[0]] > _LUT_MAX_BITS:
            kind, note = "float_island", f"{tensor_bits[n.inputs[0]]}-bit input is too wide for a lookup table"
        elif kind == "float_island":
            note = "no integer kernel for this op: dequantize -> float -> quantize"
        as_op = None
        if (n.op in ("Div", "Sub") and kind == "float_island" and not self.dynamic and len(n.inputs) == 2
                and g.is_constant(n.inputs[1]) and not g.is_constant(n.inputs[0])
                and (n.op == "Sub" or np.all(np.asarray(g.constants[n.inputs[1]]) != 0))):
            as_op, kind = ("Mul", "int") if n.op == "Div" else ("Add", "int")
            note = ("division by a constant: integer Mul by its quantized reciprocal" if n.op == "Div"
                    else "subtraction of a constant: integer Add of its quantized negation")
        if self.dynamic:
            kind = "dynamic" if n.op in ("Conv", "Gemm", "MatMul") and _weight_input(g, n) is not None else "float"
        if kind == "int":
            wide = [tensor_bits[t] for t in n.inputs if t in tensor_bits and tensor_bits[t] > 16]
            if wide:
                raise ConfigError(f"node '{n.name}' ({n.op}): {max(wide)}-bit activations have no integer kernel "
                                  "(8- and 16-bit activations are supported)")
        dpos = set(self.data_pos[n.name])
        ins = tuple(act.get(t) if (i in dpos and t) else None for i, t in enumerate(n.inputs))
        derived = None
        if as_op is not None:
            derived = self.derived_const(n.inputs[1], n.op, tensor_bits[n.inputs[1]])
            ins = (ins[0], derived[0])
        outs = tuple(act.get(t) if t else None for t in n.outputs)
        kw: dict[str, Any] = {}
        wi = _weight_input(g, n)
        if wi is not None and pair is not None:
            if ins[0] is not None:
                wp, wq = self.weight_for_bias(n, pair, ins[0])
            else:
                wp, wq = self.weight(n, pair.w)
            kw.update(weight_params=wp, weight_q=wq, requant=self.profile.requant_for(pair),
                      accumulator_bits=self.profile.accumulator_bits_for(pair), overflow=arith.overflow,
                      pairwise_int16=arith.int16_pair_saturation)
            if len(n.inputs) > 2 and n.inputs[2]:
                kw["bias_float"] = np.asarray(g.constants[n.inputs[2]], np.float32).reshape(-1)
                if ins[0] is not None and getattr(kw["requant"], "value", "") != "fbgemm":
                    kw["bias_q"] = self.bias(n, ins[0], wp, pair)
        elif pair is not None and kind == "int":
            kw.update(requant=self.profile.requant_for(pair), accumulator_bits=self.profile.accumulator_bits_for(pair),
                      overflow=arith.overflow)
        if not self.dynamic:
            cq = {i: self.const(n.inputs[i], ins[i]) for i in dpos
                  if n.inputs[i] and g.is_constant(n.inputs[i]) and ins[i] is not None}
            if derived is not None:
                cq[1] = derived[1]
                kw["as_op"] = as_op
            if cq:
                kw["const_q"] = cq
        act_node = self.fused.get(n.name)
        if act_node is not None:
            an = g.node(act_node)
            lo, hi = _clip_bounds(an)
            if lo == 0.0 and hi == np.inf:
                fa = "relu"
            elif lo == 0.0 and hi == 6.0:
                fa = "relu6"
            else:
                fa = (lo, hi)
            kw.update(fused_activation=fa, fused_node=act_node)
        return NodePlan(n.name, n.op, kind, pair, ins, outs, rounding=arith.rounding, note=note, **kw)


def quantize_graph(graph: Graph, profile, stats: CalibrationStats | None, config=None, *,
                   observer: str | None = None, dynamic: bool = False,
                   weight_observer: str = "minmax") -> QuantizedGraph:
    """Quantize ``graph`` for ``profile`` at ``config`` using calibration ``stats``.

    Parameters
    ----------
    config : None (each node's highest allowed pair), a :class:`BitPair` / ``"W8A8"``
        (uniform), or a dict node name -> pair (every configured node; see
        :func:`hwsim.quant.config.config_nodes`).
    observer : range rule overriding ``stats.observer``.
    dynamic : dynamic quantization: weights static, activation ranges taken per batch at
        run time (``stats`` may be None); Conv/Gemm/MatMul accumulate in integer, other ops
        run in float (ONNX Runtime's dynamic quantization).
    weight_observer : ``minmax`` (default: each channel's min/max) or ``mse`` (each
        channel's range shrunk by the factor in [0.3, 1] minimising the weights' squared
        quantization error; helps 4-bit weights).

    Repeated calls with the same ``stats`` object reuse one cached :class:`Quantizer`.

    Raises
    ------
    ConfigError : unknown layer, pair not allowed by the profile, consumers disagreeing on bits.
    UnsupportedOpError : an op without integer execution (raised here, not during a run).
    """
    key = (id(graph), id(profile), observer, bool(dynamic), weight_observer)
    cache = stats._cache if stats is not None else {}
    entry = cache.get(key)
    if entry is None or entry[0] is not graph or entry[1] is not profile:
        q = Quantizer(graph, profile, stats, observer=observer, dynamic=dynamic, weight_observer=weight_observer)
        entry = (graph, profile, q)
        if stats is not None:
            cache[key] = entry
    return entry[2].quantize(config)

"""Per-layer precision configs: which (weight bits, activation bits) pair each node runs at.

A :data:`PrecisionConfig` is a plain ``dict[node_name, BitPair]`` covering every node that
consumes a quantized activation (:func:`config_nodes`: compute nodes such as Conv, Gemm,
MatMul, Add, Mul, Concat, Softmax, pooling — not pass-through ops like Reshape, ReLU,
MaxPool, which take their neighbours' quantizer). For a node with weights ``w`` is its
weight bits; ``a`` is its input activation bits (for nodes without weights ``w`` is only
checked against the profile).

YAML form (``hwsim run --config``; ``hwsim search`` writes it)::

    default: W8A8          # optional: pair of every node not listed
    layers:
      conv1: W4A8
      conv2: W8A16

Unknown layer names, malformed pairs, layers left uncovered without a default and pairs
the profile does not allow for the node's op type are :class:`~hwsim.errors.ConfigError`
with a one-line message naming the file, the layer and the allowed pairs.

Examples
--------
>>> from hwsim.bits import BitPair
>>> from hwsim.graph import Graph, Node, TensorInfo
>>> from hwsim.quant.config import config_nodes
>>> import numpy as np
>>> g = Graph("g", (TensorInfo("x", (1, 4)),), ("z",),
...           (Node("fc", "Gemm", ("x", "w"), ("y",), {"transB": 1}), Node("r", "Relu", ("y",), ("z",))),
...           {"w": np.ones((3, 4), np.float32)})
>>> config_nodes(g)
('fc',)
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import yaml

from hwsim.bits import BitPair
from hwsim.errors import ConfigError
from hwsim.graph import Graph
from hwsim.opset import OPS

__all__ = ["PrecisionConfig", "config_nodes", "allowed_pairs", "uniform_config", "validate_config",
           "load_config", "parse_config", "save_config", "config_to_yaml"]

PrecisionConfig = dict
"""``dict[str, BitPair]``: node name -> pair (see the module docstring)."""

_NOT_CONFIGURED = {"QuantizeLinear", "DequantizeLinear"}


def config_nodes(graph: Graph) -> tuple[str, ...]:
    """Names of the nodes a precision config assigns a pair to, in graph order.

    A node is configured when it is not a pass-through op (per :data:`hwsim.opset.OPS`), is
    not a Quantize/DequantizeLinear, and reads at least one runtime (non-constant) tensor.
    """
    out = []
    for n in graph.nodes:
        spec = OPS.get(n.op)
        if n.op in _NOT_CONFIGURED or (spec is not None and spec.passthrough):
            continue
        if any(t and not graph.is_constant(t) for t in n.inputs):
            out.append(n.name)
    return tuple(out)


def allowed_pairs(profile, op: str) -> tuple[BitPair, ...]:
    """The pairs the profile allows for ``op`` (its per-op override, else its candidates)."""
    return tuple(BitPair.parse(p) for p in profile.candidates_for(op))


def uniform_config(graph: Graph, pair, profile=None) -> PrecisionConfig:
    """Every configured node at ``pair`` (checked against ``profile`` when given)."""
    pair = BitPair.parse(pair)
    cfg = {n: pair for n in config_nodes(graph)}
    if profile is not None:
        validate_config(cfg, graph, profile, source=f"--bits {pair}")
    return cfg


def validate_config(cfg: Mapping[str, BitPair], graph: Graph, profile=None, *, source: str = "config") -> None:
    """Check names and pairs; raises :class:`ConfigError` (one line, names layer and allowed pairs)."""
    wanted = config_nodes(graph)
    wanted_set = set(wanted)
    for name, pair in cfg.items():
        if name not in wanted_set:
            if graph.has_node(name):
                raise ConfigError(f"{source}: layer '{name}' ({graph.node(name).op}) takes its precision from its "
                                  f"neighbours and cannot be configured")
            close = [w for w in wanted if name.lower() in w.lower() or w.lower() in name.lower()][:3]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"{source}: layer '{name}' does not exist in model '{graph.name}'{hint}")
        if not isinstance(pair, BitPair):
            raise ConfigError(f"{source}: layer '{name}': {pair!r} is not a bit-width pair")
    missing = [n for n in wanted if n not in cfg]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ConfigError(f"{source}: no pair for layer(s) {', '.join(missing[:5])}{more}; list them or give 'default'")
    if profile is not None:
        for name, pair in cfg.items():
            op = graph.node(name).op
            allowed = allowed_pairs(profile, op)
            if pair not in allowed:
                raise ConfigError(f"{source}: layer '{name}' ({op}): pair {pair} is not supported by profile "
                                  f"'{getattr(profile, 'name', '?')}'; allowed: {', '.join(map(str, allowed)) or 'none'}")


def _parse_pair(text, where: str) -> BitPair:
    try:
        return BitPair.parse(text)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where}: {e}") from None


def parse_config(doc, graph: Graph, profile=None, *, source: str = "config") -> PrecisionConfig:
    """Build and validate a config from the YAML document structure (a mapping)."""
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{source}: expected a mapping with 'default' and/or 'layers', got {type(doc).__name__}")
    extra = sorted(set(map(str, doc)) - {"default", "layers", "meta"})
    if extra:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(extra)}; allowed: default, layers, meta")
    default = _parse_pair(doc["default"], f"{source}: default") if doc.get("default") is not None else None
    layers = doc.get("layers") or {}
    if not isinstance(layers, Mapping):
        raise ConfigError(f"{source}: layers: expected a mapping of layer name to pair like W8A8")
    cfg: PrecisionConfig = {}
    for name, text in layers.items():
        cfg[str(name)] = _parse_pair(text, f"{source}: layers.{name}")
    if default is not None:
        order = config_nodes(graph)
        cfg = {n: cfg.get(n, default) for n in order} | {k: v for k, v in cfg.items() if k not in set(order)}
    validate_config(cfg, graph, profile, source=source)
    return {n: cfg[n] for n in config_nodes(graph)}


def load_config(path, graph: Graph, profile=None) -> PrecisionConfig:
    """Read a YAML precision config and validate it against ``graph`` (and ``profile``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} invalid YAML ({getattr(e, 'problem', None) or e})") from None
    return parse_config(doc if doc is not None else {}, graph, profile, source=str(path))


def config_to_yaml(cfg: Mapping[str, BitPair], *, default=None, meta: Mapping | None = None) -> str:
    """YAML text of ``cfg``; with ``default`` only the layers that differ from it are listed."""
    doc: dict = {}
    if meta:
        doc["meta"] = dict(meta)
    if default is not None:
        default = BitPair.parse(default)
        doc["default"] = str(default)
    doc["layers"] = {k: str(v) for k, v in cfg.items() if default is None or v != default}
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def save_config(path, cfg: Mapping[str, BitPair], *, default=None, meta: Mapping | None = None) -> Path:
    """Write ``cfg`` as YAML atomically (readable by :func:`load_config`)."""
    from hwsim.io import atomic_write_text
    return atomic_write_text(path, config_to_yaml(cfg, default=default, meta=meta))

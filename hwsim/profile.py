"""Hardware profiles: YAML -> a validated, immutable :class:`HardwareProfile`.

A profile says what an accelerator (or a runtime on a CPU) can compute and what it costs:
the supported bit-width pairs, the quantization rules, the integer arithmetic (accumulator
width, overflow, requantization scheme, rounding) and a roofline cost model. Every field is
documented in ``hw_profiles/README.md``; ``hw_profiles/profile.schema.json`` lets editors
check a file.

Every problem in a profile raises :class:`hwsim.errors.ProfileError` naming the file, the
key path (``cost_model.macs_per_cycle.W8A8.conv``) and what is allowed.

Examples
--------
>>> from hwsim.profile import shipped_profile
>>> p = shipped_profile("cpu_onnxruntime")
>>> [str(c) for c in p.candidates]
['W4A8', 'W8A8', 'W8A16']
>>> str(p.highest_candidate), p.arithmetic.rounding.value
('W8A16', 'half_even')
>>> p.activation_format(8, nonnegative=True).qmax
255
"""
from __future__ import annotations

import difflib
import enum
import functools
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from .bits import BitPair, IntFormat
from .errors import ProfileError
from .kernels.schemes import Overflow, Requant, Rounding
from .opset import OPS, OpClass

__all__ = [
    "FrozenMap", "SourceKind", "Source", "Identity", "WeightRules", "Signedness", "ActivationRules",
    "FixedRange", "QuantRules", "Arithmetic", "MemoryLevel", "MeasuredLatency", "PrecisionConversion",
    "CostModel", "MetricName", "Metric", "HardwareProfile", "COST_CLASSES",
    "load_profile", "parse_profile", "list_shipped_profiles", "shipped_profile", "resolve_profile",
]

COST_CLASSES = (OpClass.CONV, OpClass.DEPTHWISE, OpClass.MATMUL, OpClass.ELEMENTWISE)
"""Op classes that need a MACs/cycle entry for every supported pair."""


# ---------------------------------------------------------------------------------------
# immutable mapping (picklable, hashable) used inside the frozen dataclasses
# ---------------------------------------------------------------------------------------
class FrozenMap(Mapping):
    """A read-only, hashable, picklable mapping.

    >>> m = FrozenMap({"a": 1}); m["a"], len(m), dict(m)
    (1, 1, {'a': 1})
    """

    __slots__ = ("_d", "_h")

    def __init__(self, data=()):
        self._d = dict(data)
        self._h = None

    def __getitem__(self, key):
        return self._d[key]

    def __iter__(self) -> Iterator:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __hash__(self) -> int:
        if self._h is None:
            self._h = hash(frozenset(self._d.items()))
        return self._h

    def __eq__(self, other) -> bool:
        return isinstance(other, Mapping) and dict(self._d) == dict(other)

    def __repr__(self) -> str:
        return f"FrozenMap({self._d!r})"

    def __getstate__(self):
        return self._d

    def __setstate__(self, state):
        self._d = state
        self._h = None


# ---------------------------------------------------------------------------------------
# the dataclass tree
# ---------------------------------------------------------------------------------------
class SourceKind(str, enum.Enum):
    """Where a number in a profile came from."""

    DATASHEET = "datasheet"
    SIMULATOR = "simulator"
    MEASURED = "measured"
    ESTIMATE = "estimate"


@dataclass(frozen=True)
class Source:
    """Provenance of the numbers under one key path of the profile."""

    kind: SourceKind
    reference: str


@dataclass(frozen=True)
class Identity:
    """Name, description, version and provenance (key path -> :class:`Source`)."""

    name: str
    description: str
    version: str
    sources: Mapping[str, Source]


@dataclass(frozen=True)
class WeightRules:
    """How weights are quantized."""

    symmetric: bool = True
    per_channel: bool = True
    narrow_range: bool = True
    signed: bool = True


class Signedness(str, enum.Enum):
    """Activation integer signedness; ``auto`` = unsigned for tensors known to be non-negative."""

    SIGNED = "signed"
    UNSIGNED = "unsigned"
    AUTO = "auto"


@dataclass(frozen=True)
class ActivationRules:
    """How activations are quantized. ``symmetric`` maps activation bits -> bool."""

    signedness: Signedness
    symmetric: Mapping[int, bool]
    narrow_range: bool = False


@dataclass(frozen=True)
class FixedRange:
    """A fixed output quantization (e.g. Sigmoid int8: scale 1/256, zero point -128)."""

    scale: float
    zero_point: int


@dataclass(frozen=True)
class QuantRules:
    weight: WeightRules
    activation: ActivationRules
    power_of_two_scales: bool
    shared_scale_ops: frozenset
    fixed_output_ranges: Mapping[str, Mapping[int, FixedRange]]


@dataclass(frozen=True)
class Arithmetic:
    """Integer arithmetic; per-pair fields are resolved for every candidate pair."""

    accumulator_bits: Mapping[BitPair, int]
    overflow: Overflow
    requant: Mapping[BitPair, Requant]
    rounding: Rounding
    bias_bits: Mapping[BitPair, int]
    int16_pair_saturation: bool = False


@dataclass(frozen=True)
class MemoryLevel:
    name: str
    bandwidth_bytes_per_s: float
    energy_pj_per_byte: float | None = None


@dataclass(frozen=True)
class MeasuredLatency:
    """A measured latency that replaces the roofline for (op, input shape, pair[, weight shape])."""

    op: str
    input_shape: tuple[int, ...]
    pair: BitPair
    seconds: float
    weight_shape: tuple[int, ...] | None = None
    source: str | None = None


@dataclass(frozen=True)
class PrecisionConversion:
    """Cost of converting a tensor between activation bit-widths, per element."""

    seconds_per_element: float
    energy_pj_per_element: float | None = None


@dataclass(frozen=True)
class CostModel:
    """Roofline cost model. ``macs_per_cycle[pair][OpClass]``; energy tables may be None."""

    clock_hz: float
    utilization: float
    macs_per_cycle: Mapping[BitPair, Mapping[OpClass, float]]
    memory_levels: tuple[MemoryLevel, ...]
    weights_from: str
    activations_from: str
    overhead_s: float
    bops_per_mac: Mapping[BitPair, float]
    energy_pj_per_mac: Mapping[BitPair, float] | None
    measured_latency: tuple[MeasuredLatency, ...]
    precision_conversion: PrecisionConversion

    @property
    def has_energy(self) -> bool:
        return self.energy_pj_per_mac is not None

    def level(self, name: str) -> MemoryLevel:
        for lv in self.memory_levels:
            if lv.name == name:
                return lv
        raise KeyError(name)


class MetricName(str, enum.Enum):
    LATENCY = "latency"
    BOPS = "bops"
    ENERGY = "energy"
    MEMORY = "memory"


FP32 = BitPair(32, 32)


@dataclass(frozen=True)
class Metric:
    """The efficiency metric the search minimises and the reference it is reported against.

    ``reference`` is a candidate pair, or ``BitPair(32, 32)`` for FP32 (bops and memory only).
    """

    name: MetricName
    reference: BitPair

    @property
    def reference_is_fp32(self) -> bool:
        return self.reference == FP32

    @property
    def reference_label(self) -> str:
        return "fp32" if self.reference_is_fp32 else str(self.reference)


@dataclass(frozen=True)
class HardwareProfile:
    """A validated hardware profile (see ``hw_profiles/README.md`` for every field).

    ``candidates`` are sorted from cheapest to most precise (by w×a bits, then activation
    bits, then weight bits); :attr:`highest_candidate` is the last.
    """

    identity: Identity
    candidates: tuple[BitPair, ...]
    op_overrides: Mapping[str, tuple[BitPair, ...]]
    quantization: QuantRules
    arithmetic: Arithmetic
    cost_model: CostModel
    metric: Metric
    file: str = "<profile>"

    # -- convenience ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.identity.name

    @property
    def highest_candidate(self) -> BitPair:
        return self.candidates[-1]

    def candidates_for(self, op_type: str) -> tuple[BitPair, ...]:
        """Pairs allowed for an op type (its override, else every candidate), cheapest first."""
        return self.op_overrides.get(op_type, self.candidates)

    def highest_for(self, op_type: str) -> BitPair:
        return self.candidates_for(op_type)[-1]

    def weight_format(self, bits: int) -> IntFormat:
        """Integer format of weights with ``bits`` bits."""
        w = self.quantization.weight
        return IntFormat(bits, signed=w.signed, narrow=w.narrow_range and w.signed)

    def activation_format(self, bits: int, nonnegative: bool = False) -> IntFormat:
        """Integer format of an activation; ``auto`` signedness picks unsigned for non-negative tensors."""
        return _activation_format(self.quantization.activation, bits, nonnegative)

    def activation_symmetric(self, bits: int) -> bool:
        """Whether activations of ``bits`` bits use zero point 0."""
        sym = self.quantization.activation.symmetric
        if bits in sym:
            return sym[bits]
        values = set(sym.values())       # a width no candidate uses: the common rule, if there is one
        return values.pop() if len(values) == 1 else False

    @property
    def per_channel_weights(self) -> bool:
        return self.quantization.weight.per_channel

    @property
    def power_of_two_scales(self) -> bool:
        return self.quantization.power_of_two_scales

    def shares_scale(self, op_type: str) -> bool:
        """Whether all activation inputs of ``op_type`` must share one scale on this hardware."""
        return op_type in self.quantization.shared_scale_ops

    def fixed_output_range(self, op_type: str, bits: int | None = None):
        """The fixed output (scale, zero point) of ``op_type`` at ``bits`` activation bits, or None.

        Without ``bits`` returns the whole ``{bits: FixedRange}`` mapping (or None).
        """
        table = self.quantization.fixed_output_ranges.get(op_type)
        if table is None or bits is None:
            return table
        return table.get(bits)

    def requant_for(self, pair: BitPair) -> Requant:
        return self.arithmetic.requant[self._known(pair)]

    def accumulator_bits_for(self, pair: BitPair) -> int:
        return self.arithmetic.accumulator_bits[self._known(pair)]

    def bias_bits_for(self, pair: BitPair) -> int:
        return self.arithmetic.bias_bits[self._known(pair)]

    def _known(self, pair) -> BitPair:
        pair = BitPair.parse(pair)
        if pair not in self.arithmetic.requant:
            raise ProfileError(self.file, "candidates",
                               f"pair {pair} is not a candidate; allowed: {_pairs_text(self.candidates)}")
        return pair

    def to_dict(self) -> dict:
        """The profile as a YAML/JSON-ready document; ``parse_profile(p.to_dict(), p.file) == p``.

        Per-pair fields are written out for every candidate (no ``default``); ``metric.reference``
        is the resolved pair (or ``fp32``).
        """
        q, a, c = self.quantization, self.arithmetic, self.cost_model
        per = lambda m: {str(p): (x.value if isinstance(x, enum.Enum) else x) for p, x in m.items()}  # noqa: E731
        quant = {
            "weight": {"symmetric": q.weight.symmetric,
                       "granularity": "per_channel" if q.weight.per_channel else "per_tensor",
                       "narrow_range": q.weight.narrow_range, "signed": q.weight.signed},
            "activation": {"signedness": q.activation.signedness.value,
                           "symmetric": dict(q.activation.symmetric), "narrow_range": q.activation.narrow_range},
            "power_of_two_scales": q.power_of_two_scales,
            "shared_scale_ops": sorted(q.shared_scale_ops),
            "fixed_output_ranges": {op: {b: {"scale": r.scale, "zero_point": r.zero_point} for b, r in t.items()}
                                    for op, t in q.fixed_output_ranges.items()},
        }
        cost = {
            "clock_hz": c.clock_hz, "utilization": c.utilization,
            "macs_per_cycle": {str(p): {k.value: x for k, x in t.items()} for p, t in c.macs_per_cycle.items()},
            "memory": {"levels": [{"name": lv.name, "bandwidth_bytes_per_s": lv.bandwidth_bytes_per_s,
                                   **({} if lv.energy_pj_per_byte is None
                                      else {"energy_pj_per_byte": lv.energy_pj_per_byte})}
                                  for lv in c.memory_levels],
                       "weights_from": c.weights_from, "activations_from": c.activations_from},
            "overhead_s": c.overhead_s,
            "bops_per_mac": per(c.bops_per_mac),
        }
        if c.energy_pj_per_mac is not None:
            cost["energy_pj_per_mac"] = per(c.energy_pj_per_mac)
        if c.measured_latency:
            cost["measured_latency"] = [
                {"op": m.op, "input_shape": list(m.input_shape), "pair": str(m.pair), "seconds": m.seconds,
                 **({} if m.weight_shape is None else {"weight_shape": list(m.weight_shape)}),
                 **({} if m.source is None else {"source": m.source})} for m in c.measured_latency]
        pc = {"seconds_per_element": c.precision_conversion.seconds_per_element}
        if c.precision_conversion.energy_pj_per_element is not None:
            pc["energy_pj_per_element"] = c.precision_conversion.energy_pj_per_element
        cost["precision_conversion"] = pc
        doc = {"name": self.identity.name, "description": self.identity.description,
               "version": self.identity.version}
        if self.identity.sources:
            doc["sources"] = {k: {"kind": s.kind.value, "reference": s.reference}
                              for k, s in self.identity.sources.items()}
        doc["candidates"] = [str(p) for p in self.candidates]
        if self.op_overrides:
            doc["op_overrides"] = {op: [str(p) for p in ps] for op, ps in self.op_overrides.items()}
        doc.update({
            "quantization": quant,
            "arithmetic": {"accumulator_bits": per(a.accumulator_bits), "overflow": a.overflow.value,
                           "requant": per(a.requant), "rounding": a.rounding.value, "bias_bits": per(a.bias_bits),
                           "int16_pair_saturation": a.int16_pair_saturation},
            "cost_model": cost,
            "metric": {"name": self.metric.name.value, "reference": self.metric.reference_label},
        })
        return doc

    def summary(self) -> dict:
        """A few headline facts for reports: name, candidates, arithmetic, peak rate, metric."""
        c = self.cost_model
        hi = self.highest_candidate
        return {
            "name": self.name, "description": self.identity.description, "version": self.identity.version,
            "file": self.file,
            "candidates": [str(p) for p in self.candidates],
            "requant": {str(p): r.value for p, r in self.arithmetic.requant.items()},
            "rounding": self.arithmetic.rounding.value,
            "accumulator_bits": {str(p): b for p, b in self.arithmetic.accumulator_bits.items()},
            "clock_hz": c.clock_hz,
            "peak_conv_macs_per_s": {str(p): t[OpClass.CONV] * c.clock_hz for p, t in c.macs_per_cycle.items()},
            "has_energy": c.has_energy,
            "metric": self.metric.name.value, "metric_reference": self.metric.reference_label,
            "highest_candidate": str(hi),
            "source_kinds": sorted({s.kind.value for s in self.identity.sources.values()}),
        }

    def __repr__(self) -> str:
        return (f"HardwareProfile({self.name!r}, candidates=[{_pairs_text(self.candidates)}], "
                f"metric={self.metric.name.value})")


def _activation_format(a: ActivationRules, bits: int, nonnegative: bool) -> IntFormat:
    if a.signedness is Signedness.AUTO:
        signed = not nonnegative
    else:
        signed = a.signedness is Signedness.SIGNED
    return IntFormat(bits, signed=signed, narrow=a.narrow_range and signed)


# ---------------------------------------------------------------------------------------
# YAML reading
# ---------------------------------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and reads ``1e-6`` as a float (YAML 1.2 style)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+][0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


class _DuplicateKey(Exception):
    def __init__(self, key, line):
        self.key, self.line = key, line


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            dup = key in seen
        except TypeError:
            dup = False
        if dup:
            raise _DuplicateKey(key, key_node.start_mark.line + 1)
        try:
            seen.add(key)
        except TypeError:
            pass
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(text: str, file: str):
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except _DuplicateKey as e:
        raise ProfileError(file, "", f"line {e.line}: duplicate key '{e.key}' (each key may appear once)") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown position"
        what = e.problem or e.context or "syntax error"
        if e.context and e.problem and e.context_mark is not None and e.context_mark is not mark:
            what += f" ({e.context} starting at line {e.context_mark.line + 1})"
        raise ProfileError(file, "", f"YAML syntax error at {where}: {what}") from None
    except yaml.YAMLError as e:
        raise ProfileError(file, "", f"YAML syntax error: {e}") from None


# ---------------------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------------------
_MISSING = object()


def _pairs_text(pairs) -> str:
    return ", ".join(str(p) for p in pairs)


def _type_name(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "mapping"
    return type(v).__name__


def _show(v) -> str:
    if isinstance(v, (dict, list)):
        return f"a {_type_name(v)}"
    return f"{_type_name(v)} {v!r}"


def _join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


def _pair_key_order(p: BitPair):
    return (p.w * p.a, p.a, p.w)


class _V:
    """Validation context: knows the file name; every check raises ProfileError."""

    def __init__(self, file: str):
        self.file = file

    def err(self, path: str, msg: str):
        raise ProfileError(self.file, path, msg)

    def mapping(self, obj, path: str, required=(), optional=()) -> dict:
        if not isinstance(obj, dict):
            self.err(path, f"expected a mapping with keys {', '.join((*required, *optional))}; got {_show(obj)}")
        allowed = (*required, *optional)
        for k in obj:
            if k not in allowed:
                close = difflib.get_close_matches(str(k), [str(a) for a in allowed], n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                self.err(_join(path, k), f"unknown key '{k}'{hint}; allowed keys: {', '.join(allowed)}")
        for k in required:
            if k not in obj:
                self.err(_join(path, k), "required key is missing")
        return obj

    def string(self, v, path, nonempty=True) -> str:
        if not isinstance(v, str):
            self.err(path, f"expected a string; got {_show(v)}")
        if nonempty and not v.strip():
            self.err(path, "expected a non-empty string; got ''")
        return v

    def boolean(self, v, path) -> bool:
        if not isinstance(v, bool):
            self.err(path, f"expected true or false; got {_show(v)}")
        return v

    def integer(self, v, path, lo=None, hi=None) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            self.err(path, f"expected an integer; got {_show(v)}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            self.err(path, f"got {v}; allowed: an integer in [{lo}, {hi}]")
        return v

    def number(self, v, path, *, positive=False, nonneg=False) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.err(path, f"expected a number; got {_show(v)}")
        v = float(v)
        if not math.isfinite(v):
            self.err(path, f"got {v}; allowed: a finite number")
        if positive and v <= 0:
            self.err(path, f"got {v:g}; allowed: a number > 0")
        if nonneg and v < 0:
            self.err(path, f"got {v:g}; allowed: a number >= 0")
        return v

    def enum(self, v, path, cls):
        allowed = [m.value for m in cls]
        if not isinstance(v, str) or v not in allowed:
            self.err(path, f"got {_show(v)}; allowed: {', '.join(allowed)}")
        return cls(v)

    def seq(self, v, path) -> list:
        if not isinstance(v, list):
            self.err(path, f"expected a list; got {_show(v)}")
        return v

    def pair(self, v, path) -> BitPair:
        try:
            if not isinstance(v, str):
                raise ValueError
            return BitPair.parse(v)
        except ValueError:
            self.err(path, f"got {_show(v)}; allowed: a bit-width pair like W8A8 "
                           "(bits from 2, 3, 4, 5, 6, 7, 8, 12, 16, 32)")

    def op_type(self, v, path) -> str:
        if not isinstance(v, str) or v not in OPS:
            close = difflib.get_close_matches(str(v), list(OPS), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            self.err(path, f"unknown op type {v!r}{hint}; allowed: ONNX op types hwsim supports "
                           f"({', '.join(sorted(OPS))})")
        return v

    def shape(self, v, path) -> tuple[int, ...]:
        self.seq(v, path)
        return tuple(self.integer(d, f"{path}[{i}]", lo=1) for i, d in enumerate(v))

    def per_pair(self, v, path, candidates, check) -> dict:
        """A scalar for every candidate, or a mapping ``{default: x, W8A16: y}``."""
        if not isinstance(v, dict):
            x = check(v, path)
            return {p: x for p in candidates}
        names = {str(p): p for p in candidates}
        out = {}
        default = _MISSING
        for k, x in v.items():
            kp = _join(path, k)
            if k == "default":
                default = check(x, kp)
                continue
            try:
                p = BitPair.parse(k) if isinstance(k, str) else None
            except ValueError:
                p = None
            if p is None:
                close = difflib.get_close_matches(str(k), ["default", *names], n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                self.err(kp, f"got key {k!r}{hint}; allowed: default, {', '.join(names)}")
            if p not in candidates:
                self.err(kp, f"pair {p} is not a candidate; allowed: default, {', '.join(names)}")
            out[p] = check(x, kp)
        for p in candidates:
            if p not in out:
                if default is _MISSING:
                    self.err(_join(path, str(p)), f"no entry for candidate pair {p} and no 'default'; "
                                                   f"give a value for each of {', '.join(names)} or a default")
                out[p] = default
        return out


# ---------------------------------------------------------------------------------------
# the parser
# ---------------------------------------------------------------------------------------
_TOP_REQUIRED = ("name", "description", "version", "candidates", "quantization", "arithmetic",
                 "cost_model", "metric")
_TOP_OPTIONAL = ("sources", "op_overrides")


def parse_profile(data: Any, source_name: str = "<profile>") -> HardwareProfile:
    """Validate a profile given as a parsed YAML/JSON document; return the frozen model.

    Raises
    ------
    ProfileError
        naming ``source_name``, the key path and what is allowed.

    Examples
    --------
    >>> import yaml
    >>> from hwsim.profile import parse_profile
    >>> from hwsim.errors import ProfileError
    >>> try:
    ...     parse_profile({"name": "x"}, "x.yaml")
    ... except ProfileError as e:
    ...     print(e)
    x.yaml: description: required key is missing
    """
    v = _V(source_name)
    top = v.mapping(data, "", _TOP_REQUIRED, _TOP_OPTIONAL)

    name = v.string(top["name"], "name")
    if not re.match(r"^[A-Za-z0-9_.-]+$", name):
        v.err("name", f"got {name!r}; allowed: letters, digits, '_', '-', '.' (used in file names and tables)")
    description = v.string(top["description"], "description")
    version = top["version"]
    if isinstance(version, (int, float)) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str):
        v.err("version", f"expected a string or number such as \"1.0\"; got {_show(version)}")
    version = v.string(version, "version")

    # candidates
    cands_raw = v.seq(top["candidates"], "candidates")
    if not cands_raw:
        v.err("candidates", "got an empty list; allowed: at least one pair like W8A8")
    cands = []
    for i, c in enumerate(cands_raw):
        p = v.pair(c, f"candidates[{i}]")
        if p in cands:
            v.err(f"candidates[{i}]", f"pair {p} is listed twice")
        cands.append(p)
    candidates = tuple(sorted(cands, key=_pair_key_order))

    # op overrides
    overrides = {}
    if top.get("op_overrides") is not None:
        ov = top["op_overrides"]
        if not isinstance(ov, dict):
            v.err("op_overrides", f"expected a mapping op type -> list of pairs; got {_show(ov)}")
        for op, lst in ov.items():
            path = _join("op_overrides", op)
            v.op_type(op, path)
            v.seq(lst, path)
            if not lst:
                v.err(path, f"got an empty list; allowed: a non-empty subset of the candidates "
                            f"({_pairs_text(candidates)})")
            ps = []
            for i, c in enumerate(lst):
                p = v.pair(c, f"{path}[{i}]")
                if p not in candidates:
                    v.err(f"{path}[{i}]", f"pair {p} is not a candidate; allowed: a subset of "
                                          f"{_pairs_text(candidates)}")
                ps.append(p)
            overrides[op] = tuple(sorted(set(ps), key=_pair_key_order))

    quant = _parse_quant(v, top["quantization"], candidates)
    arith = _parse_arith(v, top["arithmetic"], candidates, quant)
    cost = _parse_cost(v, top["cost_model"], candidates)
    metric = _parse_metric(v, top["metric"], candidates, cost)

    sources = {}
    if top.get("sources") is not None:
        src = top["sources"]
        if not isinstance(src, dict):
            v.err("sources", f"expected a mapping key path -> {{kind, reference}}; got {_show(src)}")
        for key, s in src.items():
            path = _join("sources", key)
            if not isinstance(key, str) or not _key_path_exists(top, key):
                v.err(path, f"key path {key!r} does not exist in this profile; allowed: a dotted path "
                            "to a key of this file, e.g. cost_model.macs_per_cycle")
            v.mapping(s, path, ("kind", "reference"))
            sources[key] = Source(v.enum(s["kind"], _join(path, "kind"), SourceKind),
                                  v.string(s["reference"], _join(path, "reference")))

    return HardwareProfile(
        identity=Identity(name, description.strip(), version, FrozenMap(sources)),
        candidates=candidates,
        op_overrides=FrozenMap(overrides),
        quantization=quant,
        arithmetic=arith,
        cost_model=cost,
        metric=metric,
        file=str(source_name),
    )


def _key_path_exists(doc, key: str) -> bool:
    node = doc
    for part in key.split("."):
        if isinstance(node, dict):
            match = [k for k in node if str(k) == part]
            if not match:
                return False
            node = node[match[0]]
        else:
            return False
    return True


_FIXED_RANGE_OPS = ("Softmax", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Erf", "LayerNormalization")
_NONNEG_OUTPUT_OPS = ("Softmax", "Sigmoid", "HardSigmoid")


def _parse_quant(v: _V, q, candidates) -> QuantRules:
    P = "quantization"
    v.mapping(q, P, ("weight", "activation"),
              ("power_of_two_scales", "shared_scale_ops", "fixed_output_ranges"))
    w = v.mapping(q["weight"], f"{P}.weight", ("symmetric", "granularity"), ("narrow_range", "signed"))
    gran = w["granularity"]
    if gran not in ("per_channel", "per_tensor"):
        v.err(f"{P}.weight.granularity", f"got {_show(gran)}; allowed: per_channel, per_tensor")
    wr = WeightRules(
        symmetric=v.boolean(w["symmetric"], f"{P}.weight.symmetric"),
        per_channel=gran == "per_channel",
        narrow_range=v.boolean(w.get("narrow_range", False), f"{P}.weight.narrow_range"),
        signed=v.boolean(w.get("signed", True), f"{P}.weight.signed"),
    )
    if wr.narrow_range and not wr.signed:
        v.err(f"{P}.weight.narrow_range", "narrow range applies to signed weights only; "
                                          "set signed: true or narrow_range: false")

    a = v.mapping(q["activation"], f"{P}.activation", ("signedness", "symmetric"), ("narrow_range",))
    signedness = v.enum(a["signedness"], f"{P}.activation.signedness", Signedness)
    act_bits = sorted({p.a for p in candidates})
    sym_raw = a["symmetric"]
    if isinstance(sym_raw, dict):
        sym = {}
        for k, x in sym_raw.items():
            kp = f"{P}.activation.symmetric.{k}"
            if isinstance(k, bool) or not isinstance(k, int) or k not in act_bits:
                v.err(kp, f"got key {k!r}; allowed: activation bit-widths of the candidates "
                          f"({', '.join(map(str, act_bits))})")
            sym[k] = v.boolean(x, kp)
        for b in act_bits:
            if b not in sym:
                v.err(f"{P}.activation.symmetric.{b}", f"no entry for {b}-bit activations; give true or false "
                                                      f"for each of {', '.join(map(str, act_bits))}")
    else:
        s = v.boolean(sym_raw, f"{P}.activation.symmetric")
        sym = {b: s for b in act_bits}
    ar = ActivationRules(signedness, FrozenMap(sym),
                         v.boolean(a.get("narrow_range", False), f"{P}.activation.narrow_range"))
    if ar.narrow_range and signedness is Signedness.UNSIGNED:
        v.err(f"{P}.activation.narrow_range", "narrow range applies to signed activations only")

    p2 = v.boolean(q.get("power_of_two_scales", False), f"{P}.power_of_two_scales")

    shared = []
    for i, op in enumerate(v.seq(q.get("shared_scale_ops", []) or [], f"{P}.shared_scale_ops")):
        op = v.op_type(op, f"{P}.shared_scale_ops[{i}]")
        if not OPS[op].multi_input:
            multi = sorted(k for k, s in OPS.items() if s.multi_input)
            v.err(f"{P}.shared_scale_ops[{i}]", f"{op} has a single activation input; allowed: ops with "
                                                f"several inputs ({', '.join(multi)})")
        shared.append(op)

    fixed = {}
    fr = q.get("fixed_output_ranges") or {}
    if not isinstance(fr, dict):
        v.err(f"{P}.fixed_output_ranges", f"expected a mapping op type -> {{bits: {{scale, zero_point}}}}; "
                                          f"got {_show(fr)}")
    for op, table in fr.items():
        path = f"{P}.fixed_output_ranges.{op}"
        if op not in _FIXED_RANGE_OPS:
            v.err(path, f"got op {op!r}; allowed: {', '.join(_FIXED_RANGE_OPS)}")
        if not isinstance(table, dict) or not table:
            v.err(path, f"expected a mapping activation bits -> {{scale, zero_point}}; got {_show(table)}")
        entries = {}
        for bits, e in table.items():
            bp = f"{path}.{bits}"
            if isinstance(bits, bool) or not isinstance(bits, int) or bits not in act_bits:
                v.err(bp, f"got key {bits!r}; allowed: activation bit-widths of the candidates "
                          f"({', '.join(map(str, act_bits))})")
            v.mapping(e, bp, ("scale", "zero_point"))
            scale = v.number(e["scale"], f"{bp}.scale", positive=True)
            zp = v.integer(e["zero_point"], f"{bp}.zero_point")
            fmt = _activation_format(ar, bits, op in _NONNEG_OUTPUT_OPS)
            if not fmt.qmin <= zp <= fmt.qmax:
                v.err(f"{bp}.zero_point", f"got {zp}; allowed: [{fmt.qmin}, {fmt.qmax}] ({fmt} output of {op})")
            if p2 and not _is_pow2(scale):
                v.err(f"{bp}.scale", f"got {scale:g}; allowed: a power of two (power_of_two_scales is true)")
            entries[bits] = FixedRange(scale, zp)
        fixed[op] = FrozenMap(entries)
    return QuantRules(wr, ar, p2, frozenset(shared), FrozenMap(fixed))


def _is_pow2(x: float) -> bool:
    m, _ = math.frexp(x)
    return m == 0.5


def _parse_arith(v: _V, a, candidates, quant: QuantRules) -> Arithmetic:
    P = "arithmetic"
    v.mapping(a, P, ("accumulator_bits", "overflow", "requant", "rounding", "bias_bits"),
              ("int16_pair_saturation",))
    acc = v.per_pair(a["accumulator_bits"], f"{P}.accumulator_bits", candidates,
                     lambda x, p: v.integer(x, p, lo=8, hi=64))
    for pr, bits in acc.items():
        need = pr.w + pr.a
        if bits < need:
            path = f"{P}.accumulator_bits" if not isinstance(a["accumulator_bits"], dict) \
                else f"{P}.accumulator_bits.{pr}"
            v.err(path, f"got {bits} bits for {pr}; one {pr.w}x{pr.a}-bit product needs {need} bits; "
                        f"allowed: >= {need}")
    bias = v.per_pair(a["bias_bits"], f"{P}.bias_bits", candidates,
                      lambda x, p: v.integer(x, p, lo=8, hi=64))
    for pr, bits in bias.items():
        if bits > acc[pr]:
            path = f"{P}.bias_bits" if not isinstance(a["bias_bits"], dict) else f"{P}.bias_bits.{pr}"
            v.err(path, f"got {bits} bits for {pr}, wider than its {acc[pr]}-bit accumulator; "
                        f"allowed: <= {acc[pr]}")
    req = v.per_pair(a["requant"], f"{P}.requant", candidates, lambda x, p: v.enum(x, p, Requant))
    for pr, r in req.items():
        path = f"{P}.requant" if not isinstance(a["requant"], dict) else f"{P}.requant.{pr}"
        if r is Requant.POWER_OF_TWO and not quant.power_of_two_scales:
            v.err(path, "requant power_of_two needs quantization.power_of_two_scales: true")
        if r is Requant.TFLITE_16X8 and pr.a != 16:
            v.err(path, f"tflite_16x8 is the int16-activation scheme but {pr} has {pr.a}-bit activations; "
                        "allowed for A16 pairs only")
        if r is Requant.TFLITE_16X8 and not quant.activation.symmetric.get(16, False):
            v.err(path, "tflite_16x8 needs symmetric 16-bit activations "
                        "(quantization.activation.symmetric must be true for 16)")
    return Arithmetic(
        accumulator_bits=FrozenMap(acc),
        overflow=v.enum(a["overflow"], f"{P}.overflow", Overflow),
        requant=FrozenMap(req),
        rounding=v.enum(a["rounding"], f"{P}.rounding", Rounding),
        bias_bits=FrozenMap(bias),
        int16_pair_saturation=v.boolean(a.get("int16_pair_saturation", False), f"{P}.int16_pair_saturation"),
    )


def _parse_cost(v: _V, c, candidates) -> CostModel:
    P = "cost_model"
    v.mapping(c, P, ("clock_hz", "utilization", "macs_per_cycle", "memory", "overhead_s"),
              ("energy_pj_per_mac", "bops_per_mac", "measured_latency", "precision_conversion"))
    clock = v.number(c["clock_hz"], f"{P}.clock_hz", positive=True)
    util = v.number(c["utilization"], f"{P}.utilization")
    if not 0 < util <= 1:
        v.err(f"{P}.utilization", f"got {util:g}; allowed: a fraction in (0, 1]")
    overhead = v.number(c["overhead_s"], f"{P}.overhead_s", nonneg=True)

    mpc_raw = c["macs_per_cycle"]
    if not isinstance(mpc_raw, dict):
        v.err(f"{P}.macs_per_cycle", f"expected a mapping pair -> {{conv, depthwise, matmul, elementwise}}; "
                                     f"got {_show(mpc_raw)}")
    mpc = {}
    class_names = [k.value for k in COST_CLASSES]
    for k, tbl in mpc_raw.items():
        kp = f"{P}.macs_per_cycle.{k}"
        p = v.pair(k, kp)
        if p not in candidates:
            v.err(kp, f"pair {p} is not a candidate; allowed: {_pairs_text(candidates)}")
        v.mapping(tbl, kp, class_names)
        mpc[p] = FrozenMap({OpClass(n): v.number(tbl[n], f"{kp}.{n}", positive=True) for n in class_names})
    for p in candidates:
        if p not in mpc:
            v.err(f"{P}.macs_per_cycle.{p}", f"supported pair {p} has no cost entry; give conv, depthwise, "
                                             "matmul and elementwise MACs/cycle for every candidate")

    mem = v.mapping(c["memory"], f"{P}.memory", ("levels", "weights_from", "activations_from"))
    levels = []
    for i, lv in enumerate(v.seq(mem["levels"], f"{P}.memory.levels")):
        lp = f"{P}.memory.levels[{i}]"
        v.mapping(lv, lp, ("name", "bandwidth_bytes_per_s"), ("energy_pj_per_byte",))
        nm = v.string(lv["name"], f"{lp}.name")
        if any(l.name == nm for l in levels):
            v.err(f"{lp}.name", f"memory level '{nm}' is defined twice")
        e = lv.get("energy_pj_per_byte")
        levels.append(MemoryLevel(nm, v.number(lv["bandwidth_bytes_per_s"], f"{lp}.bandwidth_bytes_per_s",
                                               positive=True),
                                  None if e is None else v.number(e, f"{lp}.energy_pj_per_byte", nonneg=True)))
    if not levels:
        v.err(f"{P}.memory.levels", "got an empty list; allowed: at least one memory level")
    names = [l.name for l in levels]
    for key in ("weights_from", "activations_from"):
        val = mem[key]
        if val not in names:
            v.err(f"{P}.memory.{key}", f"got {_show(val)}; allowed: a memory level name ({', '.join(names)})")

    energy = None
    if c.get("energy_pj_per_mac") is not None:
        energy = v.per_pair(c["energy_pj_per_mac"], f"{P}.energy_pj_per_mac", candidates,
                            lambda x, p: v.number(x, p, nonneg=True))
        for i, lv in enumerate(levels):
            if lv.energy_pj_per_byte is None and lv.name in (mem["weights_from"], mem["activations_from"]):
                v.err(f"{P}.memory.levels[{i}].energy_pj_per_byte",
                      f"memory level '{lv.name}' has no energy per byte but energy_pj_per_mac is given; "
                      "give both or neither")
        energy = FrozenMap(energy)

    bops = {p: float(p.w * p.a) for p in candidates}
    if c.get("bops_per_mac") is not None:
        tbl = c["bops_per_mac"]
        if not isinstance(tbl, dict):
            v.err(f"{P}.bops_per_mac", f"expected a mapping pair -> BOPs per MAC; got {_show(tbl)}")
        for k, x in tbl.items():
            kp = f"{P}.bops_per_mac.{k}"
            p = v.pair(k, kp)
            if p not in candidates:
                v.err(kp, f"pair {p} is not a candidate; allowed: {_pairs_text(candidates)}")
            bops[p] = v.number(x, kp, positive=True)

    measured = []
    seen = set()
    for i, m in enumerate(v.seq(c.get("measured_latency") or [], f"{P}.measured_latency")):
        mp = f"{P}.measured_latency[{i}]"
        v.mapping(m, mp, ("op", "input_shape", "pair", "seconds"), ("weight_shape", "source"))
        op = v.op_type(m["op"], f"{mp}.op")
        shape = v.shape(m["input_shape"], f"{mp}.input_shape")
        pr = v.pair(m["pair"], f"{mp}.pair")
        if pr not in candidates:
            v.err(f"{mp}.pair", f"pair {pr} is not a candidate; allowed: {_pairs_text(candidates)}")
        ws = None if m.get("weight_shape") is None else v.shape(m["weight_shape"], f"{mp}.weight_shape")
        if m.get("source") is not None:
            v.string(m["source"], f"{mp}.source")
        key = (op, shape, pr, ws)
        if key in seen:
            v.err(mp, f"duplicate entry for ({op}, {list(shape)}, {pr}); each key may appear once")
        seen.add(key)
        measured.append(MeasuredLatency(op, shape, pr, v.number(m["seconds"], f"{mp}.seconds", positive=True), ws,
                                        m.get("source")))

    pc_raw = c.get("precision_conversion")
    if pc_raw is None:
        pc = PrecisionConversion(0.0, 0.0 if energy is not None else None)
    else:
        pp = f"{P}.precision_conversion"
        v.mapping(pc_raw, pp, (), ("cycles_per_element", "seconds_per_element", "energy_pj_per_element"))
        has_c, has_s = "cycles_per_element" in pc_raw, "seconds_per_element" in pc_raw
        if has_c == has_s:
            v.err(pp, "give exactly one of cycles_per_element, seconds_per_element")
        if has_c:
            sec = v.number(pc_raw["cycles_per_element"], f"{pp}.cycles_per_element", nonneg=True) / clock
        else:
            sec = v.number(pc_raw["seconds_per_element"], f"{pp}.seconds_per_element", nonneg=True)
        e = pc_raw.get("energy_pj_per_element")
        if e is None and energy is not None:
            v.err(f"{pp}.energy_pj_per_element", "required when cost_model.energy_pj_per_mac is given")
        pc = PrecisionConversion(sec, None if e is None else v.number(e, f"{pp}.energy_pj_per_element",
                                                                     nonneg=True))

    return CostModel(clock, util, FrozenMap(mpc), tuple(levels), mem["weights_from"], mem["activations_from"],
                     overhead, FrozenMap(bops), energy, tuple(measured), pc)


def _parse_metric(v: _V, m, candidates, cost: CostModel) -> Metric:
    P = "metric"
    v.mapping(m, P, ("name",), ("reference",))
    name = v.enum(m["name"], f"{P}.name", MetricName)
    ref_raw = m.get("reference", "highest")
    allowed = f"highest, fp32 or a candidate pair ({_pairs_text(candidates)})"
    if ref_raw == "highest":
        ref = candidates[-1]
    elif isinstance(ref_raw, str) and ref_raw.lower() == "fp32":
        if name in (MetricName.LATENCY, MetricName.ENERGY):
            v.err(f"{P}.reference", f"fp32 has no {name.value} entries in the cost model; allowed for "
                                    f"{name.value}: highest or a candidate pair ({_pairs_text(candidates)})")
        ref = FP32
    else:
        if not isinstance(ref_raw, str):
            v.err(f"{P}.reference", f"got {_show(ref_raw)}; allowed: {allowed}")
        try:
            ref = BitPair.parse(ref_raw)
        except ValueError:
            v.err(f"{P}.reference", f"got {ref_raw!r}; allowed: {allowed}")
        if ref not in candidates:
            v.err(f"{P}.reference", f"pair {ref} is not a candidate; allowed: {allowed}")
    if name is MetricName.ENERGY and not cost.has_energy:
        v.err(f"{P}.name", "metric energy needs cost_model.energy_pj_per_mac (and energy per byte of the "
                           "memory levels); allowed without them: latency, bops, memory")
    return Metric(name, ref)


# ---------------------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------------------
def load_profile(path) -> HardwareProfile:
    """Read and validate a profile YAML (or JSON) file.

    Raises
    ------
    ProfileError
        for a missing/unreadable file, a YAML syntax error (with its line) or any invalid field.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(str(path), "", "no such file") from None
    except IsADirectoryError:
        raise ProfileError(str(path), "", "is a directory, not a profile file") from None
    except UnicodeDecodeError as e:
        raise ProfileError(str(path), "", f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    data = _read_yaml(text, str(path))
    if data is None:
        raise ProfileError(str(path), "", "the file is empty; a profile needs the keys "
                                          + ", ".join(_TOP_REQUIRED))
    return parse_profile(data, str(path))


def list_shipped_profiles() -> tuple[str, ...]:
    """Names of the profiles shipped in ``hwsim.hw_profiles`` (file stems), sorted."""
    root = resources.files("hwsim.hw_profiles")
    return tuple(sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml")))


def shipped_profile(name: str) -> HardwareProfile:
    """Load a shipped profile by name (``"cpu_onnxruntime"``, with or without ``.yaml``)."""
    stem = name[:-5] if name.endswith(".yaml") else name
    names = list_shipped_profiles()
    if stem not in names:
        close = difflib.get_close_matches(stem, names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ProfileError(name, "", f"no shipped profile of that name{hint}; shipped profiles: {', '.join(names)}")
    return _load_shipped(stem)


@functools.lru_cache(maxsize=None)
def _load_shipped(stem: str) -> HardwareProfile:
    res = resources.files("hwsim.hw_profiles") / f"{stem}.yaml"
    with resources.as_file(res) as p:
        return load_profile(p)


def resolve_profile(spec) -> HardwareProfile:
    """A profile from a path (if it exists or looks like a file) or the name of a shipped profile."""
    if isinstance(spec, HardwareProfile):
        return spec
    s = str(spec)
    p = Path(s)
    if p.exists() or s.endswith((".yaml", ".yml", ".json")) or "/" in s:
        if not p.exists() and Path(s).stem in list_shipped_profiles() and "/" not in s:
            return shipped_profile(Path(s).stem)
        return load_profile(p)
    return shipped_profile(s)

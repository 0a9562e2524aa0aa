"""Small frozen parameter objects the public kernels take.

* :class:`AccumParams` — accumulator width, overflow behaviour, optional x86 pair saturation.
* :class:`RequantParams` — one requantization scheme with its multipliers already derived
  (build it with :meth:`RequantParams.create` from the real scales).
* :class:`GemmParams`, :class:`ConvParams` — zero points, geometry, accumulator, requant.
* :class:`KernelStats` — what happened in one call (overflow / saturation events).
* :class:`PackedInt4` — int4 values stored two per byte.

Accumulator semantics (the definition every kernel path implements)
-------------------------------------------------------------------
For one output element the accumulator starts at the bias and then adds the products
``(x_k - zx)(w_k - zw)`` one at a time, in the canonical reduction order (GEMM: ``k = 0..K-1``;
conv: input channel within the group, then kernel row, then kernel column — the row-major
order of the ``(Cout, Cin/groups, KH, KW)`` weight). After *each* addition (the bias load
included) a result outside ``[-2^(bits-1), 2^(bits-1)-1]`` is either wrapped (two's
complement) or saturated, as hardware does, and counted as one ``acc_overflows`` event.
With ``wrap`` the final value is the exact sum modulo ``2^bits`` whatever the order; with
``saturate`` the order above is part of the definition.

With ``pairwise_int16=True`` and uint8 activations × int8 weights (the only combination
``vpmaddubsw`` handles) the kernel instead follows x86's non-VNNI u8s8 path: raw products
``x_k·w_k`` (no zero points) of adjacent pairs ``(k, k+1)`` (k even; an odd tail pairs with 0)
are summed and saturated to int16 (each clamp counted in ``pair_saturations``); the
accumulator starts at the bias, adds each pair sum in order, and finally adds the exact
zero-point correction ``-zw·Σx_k - zx·Σw_k + K·zx·zw`` as one term (conv padding taps hold
the raw value ``zx``). Overflow checks apply after each addition as above. Other dtype
combinations ignore the flag.

Examples
--------
>>> from hwsim.kernels.params import RequantParams
>>> from hwsim.bits import IntFormat
>>> rp = RequantParams.create("tflite_reference", 0.5, [0.25], 0.125, IntFormat(8), 0)
>>> int(rp.m0[0]), int(rp.shift[0])
(1073741824, 1)
"""
from __future__ import annotations

import dataclasses

from dataclasses import dataclass, field, fields

import numpy as np

from hwsim.bits import IntFormat
from hwsim.errors import KernelError

from . import fixedpoint as fp
from .schemes import Overflow, Requant, Rounding

__all__ = [
    "AccumParams", "RequantParams", "GemmParams", "ConvParams", "KernelStats", "PackedInt4",
    "SCHEME_CODE",
]

#: Integer code of each scheme inside compiled kernels.
SCHEME_CODE = {
    Requant.ONNXRUNTIME: 0,
    Requant.TFLITE_REFERENCE: 1,
    Requant.TFLITE_REFERENCE_FC: 2,
    Requant.TFLITE_OPTIMIZED: 3,
    Requant.TFLITE_SINGLE_ROUNDING: 4,
    Requant.TFLITE_16X8: 5,
    Requant.FBGEMM: 6,
    Requant.ONNX_REFERENCE: 7,
    Requant.POWER_OF_TWO: 8,
}


def _enum(cls, value, what):
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(v.value for v in cls)
        raise KernelError(f"unknown {what} {value!r}; allowed: {allowed}") from None


@dataclass(frozen=True)
class AccumParams:
    """Accumulator of ``bits`` (8..64) with ``overflow`` = wrap | saturate after each MAC.

    ``pairwise_int16`` emulates x86's ``vpmaddubsw`` int16 saturation of adjacent u8×s8
    product pairs (see the module docstring for the exact order of operations).
    """

    bits: int = 32
    overflow: Overflow = Overflow.WRAP
    pairwise_int16: bool = False

    def __post_init__(self):
        if not isinstance(self.bits, (int, np.integer)) or not 8 <= int(self.bits) <= 64:
            raise KernelError(f"accumulator bits must be an integer in 8..64, got {self.bits!r}")
        object.__setattr__(self, "bits", int(self.bits))
        object.__setattr__(self, "overflow", _enum(Overflow, self.overflow, "overflow mode"))
        object.__setattr__(self, "pairwise_int16", bool(self.pairwise_int16))

    @property
    def acc_min(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def acc_max(self) -> int:
        return (1 << (self.bits - 1)) - 1


def _as_i64_tuple(v, what) -> tuple:
    arr = np.atleast_1d(np.asarray(v))
    if arr.ndim != 1 or arr.size == 0:
        raise KernelError(f"{what} must be a scalar or a 1-D sequence, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise KernelError(f"{what} must be integers, got {arr.tolist()!r}")
    return tuple(int(t) for t in arr.tolist())


@dataclass(frozen=True, eq=False)
class RequantParams:
    """A requantization scheme with its per-channel multipliers derived.

    Fields (arrays have one entry per output channel, or one for per-tensor):

    scheme : Requant
    out_fmt : IntFormat — the output integer format (cast saturates to it).
    out_zero_point : int
    act_min, act_max : int — clamp in the output integer domain (fused ReLU/ReLU6), within out_fmt.
    multiplier : float64 array — float schemes: ORT/fbgemm float32 ``m`` (exactly), TFLite FC /
        onnx.reference double ``m``; unused otherwise.
    m0 : int64 array — Q31 ``M0`` (TFLite schemes) or the 15-bit reduced multiplier (tflite_16x8).
    shift : int64 array — TFLite shift (> 0 left), or ``n`` of ``2^-n`` for power_of_two.
    bias_term : float32 array — fbgemm's ``f32(bias / f32(sx*sw))`` added before scaling (else 0).
    rounding : Rounding — tie rule of the power_of_two shift.

    Use :meth:`create`; direct construction is for tests that need exact raw multipliers.
    """

    scheme: Requant
    out_fmt: IntFormat
    out_zero_point: int
    act_min: int
    act_max: int
    multiplier: np.ndarray
    m0: np.ndarray
    shift: np.ndarray
    bias_term: np.ndarray
    rounding: Rounding = Rounding.HALF_EVEN

    def __post_init__(self):
        object.__setattr__(self, "scheme", _enum(Requant, self.scheme, "requantization scheme"))
        object.__setattr__(self, "rounding", _enum(Rounding, self.rounding, "rounding"))
        if not isinstance(self.out_fmt, IntFormat):
            raise KernelError(f"out_fmt must be an IntFormat, got {self.out_fmt!r}")
        if self.out_fmt.bits > 32:
            raise KernelError(f"output format {self.out_fmt} is wider than 32 bits")
        q = self.out_fmt
        zy = int(self.out_zero_point)
        if not q.qmin <= zy <= q.qmax:
            raise KernelError(f"output zero point {zy} outside {q} range [{q.qmin}, {q.qmax}]")
        lo, hi = int(self.act_min), int(self.act_max)
        if not q.qmin <= lo <= hi <= q.qmax:
            raise KernelError(f"activation clamp [{lo}, {hi}] must lie within {q} range [{q.qmin}, {q.qmax}]")
        object.__setattr__(self, "out_zero_point", zy)
        object.__setattr__(self, "act_min", lo)
        object.__setattr__(self, "act_max", hi)
        arrs = {}
        for name, dt in (("multiplier", np.float64), ("m0", np.int64), ("shift", np.int64), ("bias_term", np.float32)):
            a = np.ascontiguousarray(np.atleast_1d(np.asarray(getattr(self, name), dtype=dt)))
            if a.ndim != 1:
                raise KernelError(f"RequantParams.{name} must be 1-D")
            a.setflags(write=False)
            arrs[name] = a
        n = max(a.size for a in arrs.values())
        for name, a in arrs.items():
            if a.size == 1 and n > 1:
                a = np.full(n, a[0], a.dtype)
                a.setflags(write=False)
            elif a.size != n:
                raise KernelError(f"RequantParams.{name} has {a.size} entries, expected 1 or {n}")
            object.__setattr__(self, name, a)
        s = self.scheme
        if s in (Requant.TFLITE_REFERENCE, Requant.TFLITE_OPTIMIZED, Requant.TFLITE_SINGLE_ROUNDING):
            if np.any(self.m0 < 0) or np.any(self.m0 > fp.INT32_MAX) or np.any(self.shift < -31) or np.any(self.shift > 31):
                raise KernelError(f"{s.value}: M0 must be in [0, 2^31) and shift in [-31, 31]")
            if s is Requant.TFLITE_SINGLE_ROUNDING and np.any(self.shift > 30):
                raise KernelError("tflite_single_rounding: shift must be <= 30")
        if s is Requant.TFLITE_16X8:
            if np.any(self.m0 < 0) or np.any(self.m0 > 0x7FFF) or np.any(self.shift < -31) or np.any(self.shift > 14):
                raise KernelError("tflite_16x8: reduced multiplier must be in [0, 2^15) and shift in [-31, 14]")
        if s is Requant.POWER_OF_TWO and (np.any(self.shift < -24) or np.any(self.shift > 62)):
            raise KernelError("power_of_two: exponent n of 2^-n must be in [-24, 62]")

    @property
    def channels(self) -> int:
        """Number of per-channel entries (1 = per-tensor)."""
        return int(self.m0.size)

    @classmethod
    def create(cls, scheme, sx, sw, sy, out_fmt: IntFormat, out_zero_point: int = 0, *,
               activation: str | None = None, act_min: int | None = None, act_max: int | None = None,
               rounding=Rounding.HALF_EVEN, bias_float=None) -> "RequantParams":
        """Derive the scheme's multipliers from the real scales.

        Parameters
        ----------
        scheme : Requant or str
        sx, sy : float — input and output scales (treated as float32, as every runtime stores them).
        sw : float or 1-D array — weight scale(s), one per output channel.
        out_fmt : IntFormat — output format; ``out_zero_point`` its zero point.
        activation : None | "relu" | "relu6" — fused clamp, quantized the TFLite way
            (``zy + away(f32(6/sy))``) and intersected with ``act_min``/``act_max`` if given.
        rounding : Rounding — tie rule for ``power_of_two``.
        bias_float : 1-D float array — ``fbgemm`` only: the float bias (kept out of the accumulator).
        """
        scheme = _enum(Requant, scheme, "requantization scheme")
        zy = int(out_zero_point)
        lo, hi = out_fmt.qmin, out_fmt.qmax
        if activation is not None:
            act = str(activation).lower()
            if act not in ("relu", "relu6"):
                raise KernelError(f"unknown fused activation {activation!r}; allowed: relu, relu6")
            lo = max(lo, zy)
            if act == "relu6":
                hi = min(hi, zy + fp.round_half_away(float(np.float32(6.0) / np.float32(sy))))
        if act_min is not None:
            lo = max(lo, int(act_min))
        if act_max is not None:
            hi = min(hi, int(act_max))
        nch = np.atleast_1d(np.asarray(sw)).size
        mult = np.zeros(nch, np.float64)
        m0 = np.zeros(nch, np.int64)
        shift = np.zeros(nch, np.int64)
        bias_term = np.zeros(nch, np.float32)
        try:
            if scheme in (Requant.ONNXRUNTIME, Requant.FBGEMM):
                mult = fp.ort_multiplier(sx, sw, sy).astype(np.float64)
                if scheme is Requant.FBGEMM and bias_float is not None:
                    bias_term = fp.fbgemm_bias_term(bias_float, sx, sw)
            elif scheme is Requant.ONNX_REFERENCE:
                # onnx.reference computes x_scale * w_scale / y_scale on the float32 scale
                # tensors (a float32 chain, as ORT does) and only the product in float64
                mult = fp.ort_multiplier(sx, sw, sy).astype(np.float64)
            elif scheme is Requant.TFLITE_REFERENCE_FC:
                mult = fp.double_multiplier(sx, sw, sy)
            elif scheme in (Requant.TFLITE_REFERENCE, Requant.TFLITE_OPTIMIZED):
                m0, shift = fp.quantize_multiplier(fp.double_multiplier(sx, sw, sy))
            elif scheme is Requant.TFLITE_SINGLE_ROUNDING:
                m0, shift = fp.quantize_multiplier(fp.double_multiplier(sx, sw, sy), single_rounding=True)
            elif scheme is Requant.TFLITE_16X8:
                m0, shift = fp.quantize_multiplier(fp.double_multiplier(sx, sw, sy))
                m0 = fp.reduce_multiplier_15bit(m0)
            elif scheme is Requant.POWER_OF_TWO:
                shift = fp.power_of_two_exponent(sx, sw, sy)
        except ValueError as e:
            raise KernelError(f"{scheme.value}: {e}") from None
        if bias_float is not None and scheme is not Requant.FBGEMM:
            raise KernelError(f"{scheme.value}: a float bias is only kept out of the accumulator by fbgemm; "
                              "quantize the bias to int32 instead")
        return cls(scheme, out_fmt, zy, lo, hi, mult, m0, shift, bias_term, rounding)


@dataclass(frozen=True, eq=False)
class GemmParams:
    """Parameters of ``y = x @ w`` with ``x`` (..., K) and ``w`` (K, N) (ONNX MatMul layout).

    x_zero_point : int
    w_zero_point : int or one int per output column N
    accum : AccumParams
    requant : RequantParams or None (``None`` only for the accumulate-only entry points)
    """

    x_zero_point: int = 0
    w_zero_point: tuple = (0,)
    accum: AccumParams = field(default_factory=AccumParams)
    requant: RequantParams | None = None

    def __post_init__(self):
        _check_stages(self)

    def replace(self, **kw) -> "GemmParams":
        """A copy with fields replaced (validated again)."""
        return dataclasses.replace(self, **kw)


def _check_stages(p) -> None:
    """Normalise and check what GemmParams and ConvParams share: zero points, accumulator, requantization."""
    object.__setattr__(p, "x_zero_point", int(p.x_zero_point))
    object.__setattr__(p, "w_zero_point", _as_i64_tuple(p.w_zero_point, "w_zero_point"))
    if not isinstance(p.accum, AccumParams):
        raise KernelError(f"accum must be AccumParams, got {type(p.accum).__name__}")
    if p.requant is not None and not isinstance(p.requant, RequantParams):
        raise KernelError(f"requant must be RequantParams or None, got {type(p.requant).__name__}")


def _pair(v, what) -> tuple:
    t = tuple(int(a) for a in (v if isinstance(v, (tuple, list)) else (v, v)))
    if len(t) != 2:
        raise KernelError(f"{what} must have 2 entries (H, W), got {v!r}")
    return t


@dataclass(frozen=True, eq=False)
class ConvParams:
    """Parameters of a 2-D NCHW convolution ``y = conv(x, w)``, ``w`` of shape (Cout, Cin/groups, KH, KW).

    strides, dilations : (H, W)
    pads : (top, left, bottom, right) — ONNX order ``[x1_begin, x2_begin, x1_end, x2_end]``; padded
        taps hold the input zero point (a real 0).
    groups : int (depthwise: groups == Cin)
    x_zero_point, w_zero_point, accum, requant : as :class:`GemmParams` (w_zero_point per Cout).
    """

    strides: tuple = (1, 1)
    pads: tuple = (0, 0, 0, 0)
    dilations: tuple = (1, 1)
    groups: int = 1
    x_zero_point: int = 0
    w_zero_point: tuple = (0,)
    accum: AccumParams = field(default_factory=AccumParams)
    requant: RequantParams | None = None

    def __post_init__(self):
        object.__setattr__(self, "strides", _pair(self.strides, "strides"))
        object.__setattr__(self, "dilations", _pair(self.dilations, "dilations"))
        pads = tuple(int(a) for a in self.pads)
        if len(pads) == 2:
            pads = pads + pads
        if len(pads) != 4 or min(pads) < 0:
            raise KernelError(f"pads must be 4 non-negative ints (top, left, bottom, right), got {self.pads!r}")
        object.__setattr__(self, "pads", pads)
        if min(self.strides) < 1 or min(self.dilations) < 1:
            raise KernelError(f"strides and dilations must be >= 1, got {self.strides}, {self.dilations}")
        object.__setattr__(self, "groups", int(self.groups))
        if self.groups < 1:
            raise KernelError(f"groups must be >= 1, got {self.groups}")
        _check_stages(self)

    def replace(self, **kw) -> "ConvParams":
        """A copy with fields replaced (validated again)."""
        return dataclasses.replace(self, **kw)


@dataclass(frozen=True)
class KernelStats:
    """Events of one kernel call.

    macs : int — multiply-accumulates performed (padding taps included).
    acc_overflows : int — additions after which the accumulator left its range (wrapped or saturated).
    pair_saturations : int — u8×s8 pair sums clamped to int16 (``pairwise_int16`` emulation).
    out_clamped : int — outputs clamped to ``[act_min, act_max]`` by requantization.
    """

    macs: int = 0
    acc_overflows: int = 0
    pair_saturations: int = 0
    out_clamped: int = 0

    def __add__(self, other: "KernelStats") -> "KernelStats":
        return KernelStats(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def to_dict(self) -> dict:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True, eq=False)
class PackedInt4:
    """int4 values packed two per byte (uint8 ``data``), logical ``shape``, ``signed`` or not.

    Nibble order (same as ONNX INT4/UINT4): over the C-order flattened tensor, element ``2i``
    is the low nibble (bits 0-3) of byte ``i`` and element ``2i+1`` the high nibble (bits 4-7);
    an odd count leaves the last high nibble 0. Signed values are two's complement nibbles.
    Build with :func:`hwsim.kernels.pack_int4`; :meth:`unpack` returns int8 (or uint8).
    """

    data: np.ndarray
    shape: tuple
    signed: bool = True

    def __post_init__(self):
        d = np.ascontiguousarray(self.data)
        if d.dtype != np.uint8 or d.ndim != 1:
            raise KernelError("PackedInt4.data must be a 1-D uint8 array")
        shape = tuple(int(s) for s in self.shape)
        n = int(np.prod(shape)) if shape else 1
        if d.size != (n + 1) // 2:
            raise KernelError(f"PackedInt4: {d.size} bytes cannot hold shape {shape} ({(n + 1) // 2} needed)")
        object.__setattr__(self, "data", d)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "signed", bool(self.signed))

    def unpack(self) -> np.ndarray:
        from .quantize import unpack_int4
        return unpack_int4(self.data, self.shape, self.signed)

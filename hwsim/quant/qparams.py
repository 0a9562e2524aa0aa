"""Quantization parameters of one tensor: scale, zero point, integer format, channel axis.

Conventions (ONNX ``QuantizeLinear`` / ``DequantizeLinear``):

* quantize: ``q = clamp(round(f32(x / scale)) + zero_point, qmin, qmax)`` with the
  profile's tie rule (``half_even`` for ONNX / ORT, ``half_away`` for TFLite reference);
* dequantize: ``x = f32(q - zero_point) * scale``.

Scales are float32 (as every runtime stores them), zero points are integers within the
format. Per-channel parameters carry ``axis``; per-tensor ones have ``axis=None`` and
0-d arrays.

Examples
--------
>>> import numpy as np
>>> from hwsim.bits import IntFormat
>>> from hwsim.quant.qparams import QuantParams
>>> p = QuantParams.from_range(-1.0, 1.0, IntFormat(8, signed=True, narrow=True), symmetric=True)
>>> float(p.scale), int(p.zero_point)
(0.007874015718698502, 0)
>>> p.quantize(np.array([-1.0, 0.5, 2.0], np.float32)).tolist()
[-127, 64, 127]
>>> u = QuantParams.from_range(0.0, 6.0, IntFormat(8, signed=False), symmetric=False)
>>> u.quantize(np.array([0.0, 6.0, 7.0], np.float32)).tolist(), u.fmt.storage_dtype
([0, 255, 255], dtype('uint8'))
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwsim.bits import IntFormat

__all__ = ["QuantParams", "round_half", "ROUNDING_MODES"]

ROUNDING_MODES = ("half_even", "half_away", "half_up", "floor")

_MIN_SCALE = np.float32(2.0 ** -60)


def round_half(x: np.ndarray, rounding: str = "half_even") -> np.ndarray:
    """Round to integers (still floating point) with the given tie rule.

    ``half_even`` is NumPy's ``rint``; ``half_away`` rounds ties away from zero;
    ``half_up`` toward +inf; ``floor`` truncates toward -inf.

    >>> round_half(np.array([-2.5, -1.5, 0.5, 1.5]), "half_away").tolist()
    [-3.0, -2.0, 1.0, 2.0]
    """
    rounding = getattr(rounding, "value", rounding)
    if rounding == "half_even":
        return np.rint(x)
    if rounding == "half_away":
        return np.sign(x) * np.floor(np.abs(x) + 0.5)
    if rounding == "half_up":
        return np.floor(x + 0.5)
    if rounding == "floor":
        return np.floor(x)
    raise ValueError(f"rounding must be one of {ROUNDING_MODES}, got {rounding!r}")


def _pow2_ceil(s: np.ndarray) -> np.ndarray:
    return np.exp2(np.ceil(np.log2(s)))


@dataclass(frozen=True, eq=False)
class QuantParams:
    """Scale / zero point of one tensor (per tensor, or per channel along ``axis``).

    Attributes
    ----------
    scale : float32 array, 0-d (per tensor) or 1-d (per channel).
    zero_point : int64 array of the same shape, within ``fmt``'s range.
    fmt : the integer format (bits, signed, narrow).
    axis : channel axis of the tensor for per-channel parameters, else None.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    fmt: IntFormat
    axis: int | None = None
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        s = np.asarray(self.scale, dtype=np.float32)
        z = np.asarray(self.zero_point, dtype=np.int64)
        if z.shape != s.shape:
            z = np.broadcast_to(z, s.shape).copy()
        if s.ndim > 1:
            raise ValueError("scale must be 0-d or 1-d")
        if self.axis is None and s.ndim == 1 and s.size == 1:
            s, z = s.reshape(()), z.reshape(())
        if self.axis is None and s.ndim != 0:
            raise ValueError("per-channel parameters need an axis")
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ValueError(f"scales must be finite and positive, got {s}")
        if np.any(z < self.fmt.qmin) or np.any(z > self.fmt.qmax):
            raise ValueError(f"zero point outside {self.fmt}: {z}")
        s.setflags(write=False)
        z.setflags(write=False)
        object.__setattr__(self, "scale", s)
        object.__setattr__(self, "zero_point", z)

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_range(cls, rmin, rmax, fmt: IntFormat, *, symmetric: bool, power_of_two: bool = False,
                   axis: int | None = None) -> "QuantParams":
        """Parameters that represent ``[rmin, rmax]`` (arrays for per channel) in ``fmt``.

        The range is first widened to contain 0 (so real 0 is exact, as padding needs).
        Symmetric signed: ``scale = max|r| / qmax``, zero point 0. Symmetric unsigned: zero
        point 0 for non-negative ranges, else the mid code. Asymmetric:
        ``scale = (rmax - rmin) / (qmax - qmin)``, ``zp = round(qmin - rmin / scale)``.
        ``power_of_two`` rounds the scale up to a power of two (never clipping more).
        A zero range gets scale 1.
        """
        lo = np.minimum(np.asarray(rmin, np.float64), 0.0)
        hi = np.maximum(np.asarray(rmax, np.float64), 0.0)
        if lo.shape != hi.shape:
            lo, hi = np.broadcast_arrays(lo, hi)
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ValueError("quantization range must be finite")
        qmin, qmax = fmt.qmin, fmt.qmax
        if symmetric:
            amax = np.maximum(-lo, hi)
            if fmt.signed:
                scale = amax / qmax
                zp = np.zeros_like(scale)
            else:
                nonneg = lo >= 0
                mid = (qmax + 1) // 2
                scale = np.where(nonneg, hi / qmax, amax / max(mid - 1, 1))
                zp = np.where(nonneg, 0.0, float(mid))
            scale = np.where(scale > 0, scale, 1.0)
            if power_of_two:
                scale = _pow2_ceil(scale)
        else:
            scale = (hi - lo) / (qmax - qmin)
            scale = np.where(scale > 0, scale, 1.0)
            if power_of_two:
                scale = _pow2_ceil(scale)
            zp = np.clip(np.rint(qmin - lo / scale), qmin, qmax)
        scale = np.maximum(scale.astype(np.float32), _MIN_SCALE)
        return cls(scale, zp.astype(np.int64), fmt, axis if np.ndim(scale) else None)

    # -- queries ---------------------------------------------------------------------------
    @property
    def per_channel(self) -> bool:
        return self.scale.ndim == 1

    @property
    def symmetric(self) -> bool:
        """True when every zero point is 0."""
        return not np.any(self.zero_point)

    def _bcast(self, ndim: int):
        """(scale, zero_point) reshaped to broadcast against an ``ndim``-d tensor."""
        key = ("b", ndim)
        got = self._cache.get(key)
        if got is None:
            if self.per_channel:
                shape = [1] * ndim
                shape[self.axis % ndim] = -1
                got = (self.scale.reshape(shape), self.zero_point.reshape(shape))
            else:
                got = (self.scale, self.zero_point)
            self._cache[key] = got
        return got

    def quantize(self, x: np.ndarray, rounding: str = "half_even") -> np.ndarray:
        """Float -> integer codes (``fmt.storage_dtype``): ``clamp(round(f32(x/s)) + z)``."""
        x = np.asarray(x, dtype=np.float32)
        s, z = self._bcast(x.ndim)
        q = round_half((x / s).astype(np.float32), rounding) + z
        return np.clip(q, self.fmt.qmin, self.fmt.qmax).astype(self.fmt.storage_dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """Integer codes -> float32: ``f32(q - z) * s``."""
        q = np.asarray(q)
        s, z = self._bcast(q.ndim)
        return (q.astype(np.int64) - z).astype(np.float32) * s

    def fake_quantize(self, x: np.ndarray, rounding: str = "half_even") -> np.ndarray:
        """Quantize then dequantize (the fake-quant simulation of this quantizer)."""
        x = np.asarray(x, dtype=np.float32)
        s, z = self._bcast(x.ndim)
        q = np.clip(round_half((x / s).astype(np.float32), rounding) + z, self.fmt.qmin, self.fmt.qmax)
        return ((q - z).astype(np.float32) * s).astype(np.float32)

    def real_range(self) -> tuple[np.ndarray, np.ndarray]:
        """The representable real range ``(s*(qmin-z), s*(qmax-z))``."""
        s = self.scale.astype(np.float64)
        return s * (self.fmt.qmin - self.zero_point), s * (self.fmt.qmax - self.zero_point)

    def with_format(self, fmt: IntFormat) -> "QuantParams":
        return QuantParams(self.scale, self.zero_point, fmt, self.axis)

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale.tolist(), "zero_point": self.zero_point.tolist(),
                "bits": self.fmt.bits, "signed": self.fmt.signed, "narrow": self.fmt.narrow,
                "axis": self.axis}

    def __repr__(self) -> str:
        if self.per_channel:
            return (f"QuantParams({self.fmt}, per-channel axis={self.axis}, {self.scale.size} channels, "
                    f"scale∈[{self.scale.min():.3g}, {self.scale.max():.3g}])")
        return f"QuantParams({self.fmt}, scale={float(self.scale):.6g}, zero_point={int(self.zero_point)})"

"""Bit-width pairs and integer formats: the two value types every layer talks in.

Examples
--------
>>> from hwsim.bits import BitPair, IntFormat
>>> BitPair.parse("W4A8")
BitPair(w=4, a=8)
>>> str(BitPair(8, 16))
'W8A16'
>>> IntFormat(8, signed=True, narrow=True).qmin, IntFormat(8, signed=True).qmax
(-127, 127)
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

__all__ = ["BitPair", "IntFormat"]

_PAIR_RE = re.compile(r"^\s*[Ww](\d+)\s*[Aa](\d+)\s*$")
_ALLOWED_BITS = (2, 3, 4, 5, 6, 7, 8, 12, 16, 32)


@dataclass(frozen=True, order=True)
class BitPair:
    """A (weight bits, activation bits) pair such as W8A8, ordered by (w, a)."""

    w: int
    a: int

    def __post_init__(self):
        for label, v in (("weight", self.w), ("activation", self.a)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v not in _ALLOWED_BITS:
                raise ValueError(f"{label} bits must be one of {_ALLOWED_BITS}, got {v!r}")

    @classmethod
    def parse(cls, text: "str | BitPair") -> "BitPair":
        """Parse ``"W8A16"`` (case-insensitive); a BitPair passes through."""
        if isinstance(text, BitPair):
            return text
        m = _PAIR_RE.match(str(text))
        if not m:
            raise ValueError(f"bit-width pair must look like W8A8, got {text!r}")
        return cls(int(m.group(1)), int(m.group(2)))

    @property
    def bops_per_mac(self) -> int:
        """Default BOPs of one MAC: weight bits × activation bits."""
        return self.w * self.a

    def __str__(self) -> str:
        return f"W{self.w}A{self.a}"


@dataclass(frozen=True)
class IntFormat:
    """An integer storage format: bit count, signedness, narrow range (drops the most negative code)."""

    bits: int
    signed: bool = True
    narrow: bool = False

    def __post_init__(self):
        if not 1 < self.bits <= 64:
            raise ValueError(f"bits must be in 2..64, got {self.bits}")
        if self.narrow and not self.signed:
            raise ValueError("narrow range applies to signed formats only")

    @property
    def qmin(self) -> int:
        if not self.signed:
            return 0
        return -(1 << (self.bits - 1)) + (1 if self.narrow else 0)

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def storage_dtype(self) -> np.dtype:
        """The smallest NumPy integer dtype holding every value (int4 is stored unpacked in int8)."""
        for width in (8, 16, 32, 64):
            if self.bits <= width:
                return np.dtype(f"{'int' if self.signed else 'uint'}{width}")
        raise AssertionError("unreachable")

    def __str__(self) -> str:
        return f"{'' if self.signed else 'u'}int{self.bits}{' narrow' if self.narrow else ''}"

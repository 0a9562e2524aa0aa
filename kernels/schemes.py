"""Names of the integer-arithmetic choices a profile can make, enumerated once.

The string values are what hardware profiles (YAML) say; ``ARITHMETIC.md`` in the
project's shared docs describes what each real runtime computes.
"""
from __future__ import annotations

import enum

__all__ = ["Requant", "Rounding", "Overflow"]


class Requant(str, enum.Enum):
    """How an int32/int64 accumulator becomes the next layer's integer, and how the real
    scale ratio ``sx*sw/sy`` becomes a multiplier."""

    ONNXRUNTIME = "onnxruntime"
    """m = f32(f32(sx*sw)/sy); rne(f32(acc)*m), clamp in float. ORT CPU, XNNPACK, QNNPACK."""
    TFLITE_REFERENCE = "tflite_reference"
    """Q31 M0 from double; gemmlowp SaturatingRoundingDoublingHighMul then RoundingDivideByPOT, both ties away."""
    TFLITE_REFERENCE_FC = "tflite_reference_fc"
    """m = double(sx)*double(sw)/double(sy); away(double(acc)*m). TFLite reference FULLY_CONNECTED."""
    TFLITE_OPTIMIZED = "tflite_optimized"
    """Q31 M0 as reference; two roundings, both ties up (ruy on x86)."""
    TFLITE_SINGLE_ROUNDING = "tflite_single_rounding"
    """Q31 M0 (shift <= 30); one rounding, ties up."""
    TFLITE_16X8 = "tflite_16x8"
    """int16 activations: M0 reduced to 15 bits, int64 accumulator, one rounding ties up."""
    FBGEMM = "fbgemm"
    """m = f32(f32(sx*sw)/sy); rne((f32(acc) + bias/f32(sx*sw)) * m); float bias."""
    ONNX_REFERENCE = "onnx_reference"
    """m = f32(f32(sx*sw)/sy) from the float32 scale tensors; rne(double(acc)*m) in float64
    (onnx.reference evaluator, onnx 1.23: measured, see tests/test_onnx_reference_bitexact.py)."""
    POWER_OF_TWO = "power_of_two"
    """scale ratio is 2^-n; arithmetic shift with the profile's rounding (DPU-style)."""


class Rounding(str, enum.Enum):
    """Tie rule for float->int rounding (quantize) and for shifts that round."""

    HALF_EVEN = "half_even"     # rne: ONNX / ORT QuantizeLinear, TFLite optimized, XNNPACK
    HALF_AWAY = "half_away"     # TFLite reference QUANTIZE
    HALF_UP = "half_up"         # toward +inf on ties
    FLOOR = "floor"             # truncating shift (some DSP/FPGA datapaths)


class Overflow(str, enum.Enum):
    """What an accumulator narrower than its true sum does."""

    WRAP = "wrap"
    SATURATE = "saturate"

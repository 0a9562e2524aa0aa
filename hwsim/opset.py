"""Every op type hwsim understands, enumerated once, with the properties other modules need.

The importer rejects what is not here; the float ops registry (``hwsim.ops``) implements
exactly these (a test checks); the cost model uses :attr:`OpSpec.op_class`; the
quantizer-group builder uses :attr:`OpSpec.passthrough` and :attr:`OpSpec.weight_inputs`.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["OpClass", "OpSpec", "OPS", "NORMALISED_ATTRS", "OPTIONAL_ATTRS", "spec", "op_class_of"]


class OpClass(enum.Enum):
    """Cost-model classes; a profile gives MACs/cycle per (pair, class) for the first four."""

    CONV = "conv"
    DEPTHWISE = "depthwise"
    MATMUL = "matmul"
    ELEMENTWISE = "elementwise"
    DATA_MOVEMENT = "data_movement"   # reshape/transpose/concat/pad: bytes only, no MACs

    @property
    def is_compute(self) -> bool:
        return self in (OpClass.CONV, OpClass.DEPTHWISE, OpClass.MATMUL, OpClass.ELEMENTWISE)


@dataclass(frozen=True)
class OpSpec:
    """Static properties of an op type.

    op_class : cost class (Conv with group == channels is reclassified DEPTHWISE per node).
    weight_inputs : input positions that are weights (quantized with weight bits).
    bias_inputs : input positions that are biases (int32/int64 at scale sx*sw).
    passthrough : output uses the input's quantizer (same scale, same bit-width): the op
        only moves, selects or clamps values.
    shares_input_scale : all activation inputs must share one scale if the profile says so
        (Add, Concat, ...), decided per profile.
    """

    op_class: OpClass
    weight_inputs: tuple[int, ...] = ()
    bias_inputs: tuple[int, ...] = ()
    passthrough: bool = False
    multi_input: bool = False


_E, _D = OpClass.ELEMENTWISE, OpClass.DATA_MOVEMENT

OPS: dict[str, OpSpec] = {
    "Conv": OpSpec(OpClass.CONV, weight_inputs=(1,), bias_inputs=(2,)),
    "Gemm": OpSpec(OpClass.MATMUL, weight_inputs=(1,), bias_inputs=(2,)),
    "MatMul": OpSpec(OpClass.MATMUL, weight_inputs=(1,)),   # input 1 is a weight only when constant
    "Add": OpSpec(_E, multi_input=True),
    "Sub": OpSpec(_E, multi_input=True),
    "Mul": OpSpec(_E, multi_input=True),
    "Div": OpSpec(_E, multi_input=True),
    "Relu": OpSpec(_E, passthrough=True),
    "Clip": OpSpec(_E, passthrough=True),
    "HardSwish": OpSpec(_E),
    "HardSigmoid": OpSpec(_E),
    "Sigmoid": OpSpec(_E),
    "Tanh": OpSpec(_E),
    "Erf": OpSpec(_E),
    "Gelu": OpSpec(_E),
    "Sqrt": OpSpec(_E),
    "Pow": OpSpec(_E),
    "Softmax": OpSpec(_E),
    "BatchNormalization": OpSpec(_E),
    "LayerNormalization": OpSpec(_E),
    "MaxPool": OpSpec(_E, passthrough=True),
    "AveragePool": OpSpec(_E),
    "GlobalAveragePool": OpSpec(_E),
    "ReduceMean": OpSpec(_E),
    "Concat": OpSpec(_D, multi_input=True),
    "Reshape": OpSpec(_D, passthrough=True),
    "Flatten": OpSpec(_D, passthrough=True),
    "Transpose": OpSpec(_D, passthrough=True),
    "Squeeze": OpSpec(_D, passthrough=True),
    "Unsqueeze": OpSpec(_D, passthrough=True),
    "Identity": OpSpec(_D, passthrough=True),
    "Pad": OpSpec(_D, passthrough=True),
    "Slice": OpSpec(_D, passthrough=True),
    "Gather": OpSpec(_D, passthrough=True),
    "LeakyRelu": OpSpec(_E),
    "PRelu": OpSpec(_E, weight_inputs=(1,)),         # the slope is a weight only when constant
    "Neg": OpSpec(_E),
    "Exp": OpSpec(_E),
    "GlobalMaxPool": OpSpec(_E, passthrough=True),
    "ReduceSum": OpSpec(_E),
    "ReduceMax": OpSpec(_E, passthrough=True),
    "Expand": OpSpec(_D, passthrough=True),
    "Split": OpSpec(_D),                              # several outputs, each its own tensor
    "Resize": OpSpec(_E),                             # nearest is value-preserving, linear is not
    # masks and type conversions (attention masks in transformer exports); not quantized
    "Equal": OpSpec(_E, multi_input=True),
    "Where": OpSpec(_E, multi_input=True),
    "Cast": OpSpec(_D),
    "QuantizeLinear": OpSpec(_E),
    "DequantizeLinear": OpSpec(_E),
}
"""Runtime ops. Constant/Shape/ConstantOfShape etc. are folded away at import."""


_WINDOW = ("kernel_shape", "strides", "dilations", "pads")

NORMALISED_ATTRS: dict[str, tuple[str, ...]] = {op: () for op in OPS}
"""The attributes every imported node of an op type carries (explicit, defaults resolved).

Conv/pools: ``pads`` are all begins then all ends, i.e. ``(top, left, bottom, right)`` in 2-D;
Conv ``depthwise`` is True when group == input channels > 1 with one input channel per group.
Gemm: with a constant weight ``W`` is ``(N, K)`` and ``transA=0, transB=1, alpha=beta=1``.
Clip: ``min``/``max`` floats (``-inf``/``inf`` when absent). Softmax: ``axes`` over which it is
taken jointly (opset < 13 semantics included). Axes are non-negative everywhere. Reshape:
``shape`` with ONNX 0 (copy) / -1 (infer) semantics. Cast: ``to`` is a NumPy dtype name.
"""
NORMALISED_ATTRS.update({
    "Conv": _WINDOW + ("group", "depthwise"),
    "Gemm": ("alpha", "beta", "transA", "transB"),
    "Clip": ("min", "max"),
    "HardSigmoid": ("alpha", "beta"),
    "LeakyRelu": ("alpha",),
    "Gelu": ("approximate",),
    "MaxPool": _WINDOW + ("ceil_mode",),
    "AveragePool": _WINDOW + ("ceil_mode", "count_include_pad"),
    "ReduceMean": ("axes", "keepdims"),
    "ReduceSum": ("axes", "keepdims"),
    "ReduceMax": ("axes", "keepdims"),
    "Softmax": ("axes",),
    "BatchNormalization": ("epsilon",),
    "LayerNormalization": ("axis", "epsilon"),
    "Concat": ("axis",),
    "Reshape": ("shape", "allowzero"),
    "Flatten": ("axis",),
    "Transpose": ("perm",),
    "Squeeze": ("axes",),
    "Unsqueeze": ("axes",),
    "Pad": ("pads", "mode", "value"),
    "Slice": ("starts", "ends", "axes", "steps"),
    "Gather": ("axis",),
    "Expand": ("shape",),
    "Split": ("axis", "split"),
    "Resize": ("mode", "coordinate_transformation_mode", "nearest_mode", "scales", "sizes"),
    "Cast": ("to",),
    "QuantizeLinear": ("axis", "saturate"),
    "DequantizeLinear": ("axis", "saturate"),
})

OPTIONAL_ATTRS: dict[str, tuple[str, ...]] = {
    "Conv": ("folded_bn", "fused_pad"),   # provenance: name of the BatchNormalization / Pad node merged in
    "Gemm": ("folded_bn",),
}
"""Informational attributes the importer may add (executors ignore them)."""


def spec(op: str) -> OpSpec:
    return OPS[op]


def op_class_of(node) -> OpClass:
    """Cost class of a node: Conv whose group equals its input channels (>1) is DEPTHWISE."""
    s = OPS[node.op]
    if node.op == "Conv" and int(node.attrs.get("group", 1)) > 1 and node.attrs.get("depthwise", False):
        return OpClass.DEPTHWISE
    return s.op_class

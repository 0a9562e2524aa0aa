"""Float (NumPy) implementations of every runtime op, one small module per op family.

:data:`FLOAT_OPS` maps op type -> ``impl(node, inputs, ctx) -> tuple[np.ndarray, ...]``
(the :func:`hwsim.execute.run_graph` signature). Implementations read only the
*normalised* attributes the importer writes (:data:`hwsim.opset.NORMALISED_ATTRS`, and
each module's docstring), never opset versions. Adding an op = one function in a module +
one line here + one :data:`hwsim.opset.OPS` / ``NORMALISED_ATTRS`` entry + its attribute
normaliser in :mod:`hwsim.onnx_import` (tests check that the four agree).

Examples
--------
>>> import numpy as np
>>> from hwsim.graph import Node
>>> from hwsim.ops import FLOAT_OPS
>>> FLOAT_OPS["Relu"](Node("r", "Relu", ("x",), ("y",)), [np.array([-1.0, 2.0], np.float32)], None)[0]
array([0., 2.], dtype=float32)
"""
from __future__ import annotations

from . import conv, elementwise as ew, gemm, normalization as norm, pool, quantize, resize, shape

__all__ = ["FLOAT_OPS"]

FLOAT_OPS = {
    "Conv": conv.conv,
    "Gemm": gemm.gemm,
    "MatMul": gemm.matmul,
    "Add": ew.add,
    "Sub": ew.sub,
    "Mul": ew.mul,
    "Div": ew.div,
    "Pow": ew.pow_,
    "Relu": ew.relu,
    "Clip": ew.clip,
    "HardSwish": ew.hard_swish,
    "HardSigmoid": ew.hard_sigmoid,
    "Sigmoid": ew.sigmoid,
    "Tanh": ew.tanh,
    "Erf": ew.erf,
    "Gelu": ew.gelu,
    "Sqrt": ew.sqrt,
    "MaxPool": pool.max_pool,
    "AveragePool": pool.average_pool,
    "GlobalAveragePool": pool.global_average_pool,
    "ReduceMean": norm.reduce_mean,
    "Softmax": norm.softmax,
    "BatchNormalization": norm.batch_normalization,
    "LayerNormalization": norm.layer_normalization,
    "Concat": shape.concat,
    "Reshape": shape.reshape,
    "Flatten": shape.flatten,
    "Transpose": shape.transpose,
    "Squeeze": shape.squeeze,
    "Unsqueeze": shape.unsqueeze,
    "Pad": shape.pad,
    "Slice": shape.slice_,
    "Gather": shape.gather,
    "Identity": shape.identity,
    "LeakyRelu": ew.leaky_relu,
    "PRelu": ew.prelu,
    "Neg": ew.neg,
    "Exp": ew.exp,
    "Equal": ew.equal,
    "Where": ew.where,
    "Cast": ew.cast,
    "GlobalMaxPool": pool.global_max_pool,
    "ReduceSum": norm.reduce_sum,
    "ReduceMax": norm.reduce_max,
    "Expand": shape.expand,
    "Split": shape.split,
    "Resize": resize.resize,
    "QuantizeLinear": quantize.quantize_linear,
    "DequantizeLinear": quantize.dequantize_linear,
}

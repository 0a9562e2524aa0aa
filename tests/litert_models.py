"""Single-op quantized ``.tflite`` models built in code, and a runner for them.

The models are written with the flatbuffer schema that ships inside ``ai-edge-litert``
(``ai_edge_litert.schema_py_generated``, object API) and run with LiteRT's Python
interpreter under one of two op resolvers:

- ``"reference"`` -> ``OpResolverType.BUILTIN_REF`` (the portable reference kernels),
- ``"optimized"`` -> ``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES`` (the optimized
  kernels — ruy/gemmlowp on x86 — without the XNNPACK default delegate).

Layouts are TFLite's: activations NHWC, conv weights OHWI, depthwise weights 1HWO,
fully-connected weights [out, in].

Example
-------
>>> import numpy as np
>>> from litert_models import add_model, run_model
>>> m = add_model((1, 4), (1, 4), "int8", (0.5, 1), (0.25, -3), (1.0, 0))
>>> y = run_model(m, [np.zeros((1, 4), np.int8), np.zeros((1, 4), np.int8)], "reference")
>>> y.shape
(1, 4)
"""
from __future__ import annotations

from dataclasses import dataclass

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as s

__all__ = [
    "TensorSpec", "build_model", "run_model", "RESOLVERS",
    "conv2d_model", "depthwise_model", "fully_connected_model", "add_model", "mul_model",
    "avg_pool_model", "max_pool_model", "quantize_model", "unary_model",
]

_TYPES = {
    "float32": s.TensorType.FLOAT32, "int32": s.TensorType.INT32, "uint8": s.TensorType.UINT8,
    "int64": s.TensorType.INT64, "int16": s.TensorType.INT16, "int8": s.TensorType.INT8,
}
_PADDING = {"SAME": s.Padding.SAME, "VALID": s.Padding.VALID}


@dataclass
class TensorSpec:
    """One tensor of a single-op model.

    ``scale``/``zero_point`` are scalars (per-tensor) or 1-D sequences (per-channel along
    ``axis``); ``scale=None`` means not quantized. ``data`` makes it a constant."""

    shape: tuple
    dtype: str
    scale: object = None
    zero_point: object = 0
    axis: int = 0
    data: np.ndarray | None = None
    name: str = ""


def _quant(spec: TensorSpec):
    if spec.scale is None:
        return None
    q = s.QuantizationParametersT()
    sc = np.atleast_1d(np.asarray(spec.scale, dtype=np.float32))
    zp = np.atleast_1d(np.asarray(spec.zero_point, dtype=np.int64))
    if zp.size == 1 and sc.size > 1:
        zp = np.full(sc.size, zp[0], np.int64)
    q.scale = [float(v) for v in sc]
    q.zeroPoint = [int(v) for v in zp]
    q.quantizedDimension = int(spec.axis)
    return q


def build_model(op: int, inputs: list, outputs: list, options_type: int = 0,
                options=None, version: int = 1) -> bytes:
    """Serialize a one-operator model. ``inputs``/``outputs`` are TensorSpec lists; an
    input with ``data`` becomes a constant, the others graph inputs (in order)."""
    model = s.ModelT()
    model.version = 3
    model.description = "hwsim single-op test model"
    code = s.OperatorCodeT()
    code.builtinCode = op
    code.deprecatedBuiltinCode = min(op, 127)
    code.version = version
    model.operatorCodes = [code]
    buffers = [s.BufferT()]  # buffer 0: the empty sentinel
    tensors = []
    graph_inputs = []
    for i, spec in enumerate(list(inputs) + list(outputs)):
        t = s.TensorT()
        t.shape = [int(d) for d in spec.shape]
        t.type = _TYPES[spec.dtype]
        t.name = spec.name or f"t{i}"
        t.quantization = _quant(spec)
        if spec.data is not None:
            b = s.BufferT()
            arr = np.ascontiguousarray(spec.data, dtype=np.dtype(spec.dtype))
            b.data = np.frombuffer(arr.tobytes(), dtype=np.uint8)
            buffers.append(b)
            t.buffer = len(buffers) - 1
        else:
            b = s.BufferT()
            buffers.append(b)
            t.buffer = len(buffers) - 1
            if i < len(inputs):
                graph_inputs.append(i)
        tensors.append(t)
    opr = s.OperatorT()
    opr.opcodeIndex = 0
    opr.inputs = list(range(len(inputs)))
    opr.outputs = list(range(len(inputs), len(inputs) + len(outputs)))
    opr.builtinOptionsType = options_type
    opr.builtinOptions = options
    sg = s.SubGraphT()
    sg.tensors = tensors
    sg.inputs = graph_inputs
    sg.outputs = opr.outputs
    sg.operators = [opr]
    sg.name = "main"
    model.subgraphs = [sg]
    model.buffers = buffers
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


RESOLVERS = ("reference", "optimized")


def run_model(model: bytes, feeds: list, resolver: str):
    """Run ``model`` on ``feeds`` (one array per graph input) with the named resolver
    (``"reference"`` or ``"optimized"``); return the single output array."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    rt = {"reference": OpResolverType.BUILTIN_REF,
          "optimized": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}[resolver]
    it = Interpreter(model_content=model, experimental_op_resolver_type=rt, num_threads=1)
    it.allocate_tensors()
    for det, x in zip(it.get_input_details(), feeds):
        it.set_tensor(det["index"], np.ascontiguousarray(x, dtype=det["dtype"]))
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"]).copy()


def _act(name: str) -> int:
    return {"NONE": s.ActivationFunctionType.NONE, "RELU": s.ActivationFunctionType.RELU,
            "RELU6": s.ActivationFunctionType.RELU6}[name]


def conv2d_model(x_shape, w, bias, x_q, w_q, y_q, y_shape, *, act_dtype="int8",
                 stride=(1, 1), dilation=(1, 1), padding="VALID", activation="NONE",
                 bias_dtype="int32", version=None) -> bytes:
    """CONV_2D: x NHWC, ``w`` OHWI int8 constant, ``bias`` int32/int64 constant.
    ``x_q``/``y_q`` = (scale, zp); ``w_q`` = (scales per output channel, zps)."""
    opt = s.Conv2DOptionsT()
    opt.padding = _PADDING[padding]
    opt.strideH, opt.strideW = stride
    opt.dilationHFactor, opt.dilationWFactor = dilation
    opt.fusedActivationFunction = _act(activation)
    ins = [TensorSpec(x_shape, act_dtype, *x_q),
           TensorSpec(w.shape, "int8", w_q[0], w_q[1], axis=0, data=w),
           TensorSpec(bias.shape, bias_dtype, np.asarray(w_q[0], np.float64) * x_q[0], 0, data=bias)]
    outs = [TensorSpec(y_shape, act_dtype, *y_q)]
    v = version or (4 if act_dtype == "int16" else 3)
    return build_model(s.BuiltinOperator.CONV_2D, ins, outs, s.BuiltinOptions.Conv2DOptions, opt, v)


def depthwise_model(x_shape, w, bias, x_q, w_q, y_q, y_shape, *, act_dtype="int8",
                    stride=(1, 1), dilation=(1, 1), padding="VALID", depth_multiplier=1,
                    activation="NONE", bias_dtype="int32") -> bytes:
    """DEPTHWISE_CONV_2D: ``w`` 1HWO, per-channel scales along axis 3."""
    opt = s.DepthwiseConv2DOptionsT()
    opt.padding = _PADDING[padding]
    opt.strideH, opt.strideW = stride
    opt.dilationHFactor, opt.dilationWFactor = dilation
    opt.depthMultiplier = depth_multiplier
    opt.fusedActivationFunction = _act(activation)
    ins = [TensorSpec(x_shape, act_dtype, *x_q),
           TensorSpec(w.shape, "int8", w_q[0], w_q[1], axis=3, data=w),
           TensorSpec(bias.shape, bias_dtype, np.asarray(w_q[0], np.float64) * x_q[0], 0, data=bias)]
    outs = [TensorSpec(y_shape, act_dtype, *y_q)]
    return build_model(s.BuiltinOperator.DEPTHWISE_CONV_2D, ins, outs,
                       s.BuiltinOptions.DepthwiseConv2DOptions, opt, 3)


def fully_connected_model(x_shape, w, bias, x_q, w_q, y_q, y_shape, *, act_dtype="int8",
                          activation="NONE", bias_dtype="int32") -> bytes:
    """FULLY_CONNECTED: x [N, K], ``w`` [O, K]; per-channel when ``w_q[0]`` is a vector."""
    opt = s.FullyConnectedOptionsT()
    opt.fusedActivationFunction = _act(activation)
    opt.keepNumDims = True
    ins = [TensorSpec(x_shape, act_dtype, *x_q),
           TensorSpec(w.shape, "int8", w_q[0], w_q[1], axis=0, data=w),
           TensorSpec(bias.shape, bias_dtype, np.asarray(w_q[0], np.float64) * x_q[0], 0, data=bias)]
    outs = [TensorSpec(y_shape, act_dtype, *y_q)]
    return build_model(s.BuiltinOperator.FULLY_CONNECTED, ins, outs,
                       s.BuiltinOptions.FullyConnectedOptions, opt, 5)


def _binary(op, opt_type, opt, a_shape, b_shape, dtype, a_q, b_q, y_q, y_shape, version):
    if y_shape is None:
        y_shape = np.broadcast_shapes(tuple(a_shape), tuple(b_shape))
    ins = [TensorSpec(a_shape, dtype, *a_q), TensorSpec(b_shape, dtype, *b_q)]
    outs = [TensorSpec(y_shape, dtype, *y_q)]
    return build_model(op, ins, outs, opt_type, opt, version)


def add_model(a_shape, b_shape, dtype, a_q, b_q, y_q, y_shape=None, activation="NONE",
              pot_scale_int16=False) -> bytes:
    """ADD of two graph inputs (broadcasting allowed) with (scale, zp) per tensor."""
    opt = s.AddOptionsT()
    opt.fusedActivationFunction = _act(activation)
    opt.potScaleInt16 = bool(pot_scale_int16)
    return _binary(s.BuiltinOperator.ADD, s.BuiltinOptions.AddOptions, opt, a_shape, b_shape,
                   dtype, a_q, b_q, y_q, y_shape, 3 if dtype == "int16" else 2)


def mul_model(a_shape, b_shape, dtype, a_q, b_q, y_q, y_shape=None, activation="NONE") -> bytes:
    """MUL of two graph inputs (broadcasting allowed)."""
    opt = s.MulOptionsT()
    opt.fusedActivationFunction = _act(activation)
    return _binary(s.BuiltinOperator.MUL, s.BuiltinOptions.MulOptions, opt, a_shape, b_shape,
                   dtype, a_q, b_q, y_q, y_shape, 4 if dtype == "int16" else 2)


def _pool(op, x_shape, dtype, q, kernel, stride, padding, y_shape, activation):
    opt = s.Pool2DOptionsT()
    opt.padding = _PADDING[padding]
    opt.strideH, opt.strideW = stride
    opt.filterHeight, opt.filterWidth = kernel
    opt.fusedActivationFunction = _act(activation)
    ins = [TensorSpec(x_shape, dtype, *q)]
    outs = [TensorSpec(y_shape, dtype, *q)]
    return build_model(op, ins, outs, s.BuiltinOptions.Pool2DOptions, opt, 2 if dtype == "int8" else 3)


def avg_pool_model(x_shape, dtype, q, kernel, stride, padding, y_shape, activation="NONE") -> bytes:
    """AVERAGE_POOL_2D (NHWC), same quantization in and out."""
    return _pool(s.BuiltinOperator.AVERAGE_POOL_2D, x_shape, dtype, q, kernel, stride, padding,
                 y_shape, activation)


def max_pool_model(x_shape, dtype, q, kernel, stride, padding, y_shape, activation="NONE") -> bytes:
    """MAX_POOL_2D (NHWC), same quantization in and out."""
    return _pool(s.BuiltinOperator.MAX_POOL_2D, x_shape, dtype, q, kernel, stride, padding,
                 y_shape, activation)


def quantize_model(shape, dtype, y_q) -> bytes:
    """QUANTIZE float32 -> ``dtype`` with (scale, zp)."""
    ins = [TensorSpec(shape, "float32")]
    outs = [TensorSpec(shape, dtype, *y_q)]
    return build_model(s.BuiltinOperator.QUANTIZE, ins, outs, s.BuiltinOptions.QuantizeOptions,
                       s.QuantizeOptionsT(), 2 if dtype == "int8" else 3)


def unary_model(op_name: str, shape, dtype, x_q, y_q) -> bytes:
    """A quantized unary activation: ``LOGISTIC``, ``TANH`` or ``HARD_SWISH``."""
    op = getattr(s.BuiltinOperator, op_name)
    ins = [TensorSpec(shape, dtype, *x_q)]
    outs = [TensorSpec(shape, dtype, *y_q)]
    version = 1 if op_name == "HARD_SWISH" else (2 if dtype == "int8" else 3)
    return build_model(op, ins, outs, 0, None, version)

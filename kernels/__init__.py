"""hwsim.kernels — integer kernels that compute what fixed-point hardware computes.

Installed as ``hwsim.kernels`` (the source folder is ``kernels/``; a top-level ``kernels``
import would collide with an unrelated PyPI package).

Public API
----------
Parameters: :class:`AccumParams`, :class:`RequantParams` (``RequantParams.create(scheme, sx, sw, sy,
out_fmt, out_zero_point, activation=, rounding=, bias_float=)``), :class:`GemmParams`,
:class:`ConvParams`, :class:`KernelStats`, :class:`PackedInt4`.

Kernels (plain NumPy arrays in, ``(array, KernelStats)`` out):

* ``qgemm(x_q, w_q, bias_q, p: GemmParams)`` — x (..., K), w (K, N) -> y (..., N)
* ``gemm_acc(x_q, w_q, bias_q=None, p=None)`` — accumulators (MatMulInteger)
* ``qconv2d(x_q, w_q, bias_q, p: ConvParams)`` — NCHW, groups/depthwise/stride/dilation/pads
* ``conv2d_acc(x_q, w_q, bias_q=None, p=None)`` — accumulators (ConvInteger)
* ``requantize(acc, p: RequantParams, axis=-1)``
* ``quantize(x, scale, zero_point, fmt, rounding="half_even", axis=None)``, ``dequantize(q, scale, zero_point=0, axis=None)``
* ``pack_int4(values, signed=True) -> PackedInt4``, ``unpack_int4(data, shape, signed=True)``

Scheme names: :class:`Requant`, :class:`Rounding`, :class:`Overflow` (``hwsim.kernels.schemes``).
The slow NumPy twins with the same names are in :mod:`hwsim.kernels.reference`.

Examples
--------
>>> import numpy as np
>>> from hwsim.bits import IntFormat
>>> from hwsim.kernels import ConvParams, RequantParams, qconv2d
>>> rp = RequantParams.create("tflite_reference", 0.5, [0.5], 1.0, IntFormat(8), 0, activation="relu")
>>> y, st = qconv2d(np.full((1, 1, 2, 2), 3, np.int8), np.ones((1, 1, 1, 1), np.int8), None, ConvParams(requant=rp))
>>> y[0, 0].tolist(), st.macs
([[1, 1], [1, 1]], 4)
"""
from __future__ import annotations

from .conv import conv2d_acc, conv_output_shape, qconv2d
from .gemm import gemm_acc, qgemm
from .params import AccumParams, ConvParams, GemmParams, KernelStats, PackedInt4, RequantParams
from .quantize import dequantize, pack_int4, quantize, unpack_int4
from .requant import requantize
from .schemes import Overflow, Requant, Rounding

__all__ = [
    "AccumParams", "RequantParams", "GemmParams", "ConvParams", "KernelStats", "PackedInt4",
    "qgemm", "gemm_acc", "qconv2d", "conv2d_acc", "conv_output_shape", "requantize",
    "quantize", "dequantize", "pack_int4", "unpack_int4",
    "Requant", "Rounding", "Overflow",
]

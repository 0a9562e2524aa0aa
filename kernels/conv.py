"""Portable integer 2-D convolution (NCHW), grouped and depthwise, via im2col + the GEMM core.

``x`` (N, Cin, H, W), ``w`` (Cout, Cin/groups, KH, KW) (or PackedInt4 of that shape),
``bias`` (Cout,). Output size per ONNX: ``OH = (H + top + bottom - dil·(KH-1) - 1) // stride + 1``.
Padded taps hold the input zero point (they contribute 0 to the centred sum). The
reduction order inside one output element is (input channel of the group, kernel row,
kernel column), which the accumulator definition in :mod:`hwsim.kernels.params` relies on.

Examples
--------
>>> import numpy as np
>>> from hwsim.kernels import ConvParams, conv2d_acc
>>> x = np.ones((1, 1, 3, 3), np.uint8); w = np.ones((1, 1, 3, 3), np.int8)
>>> conv2d_acc(x, w, None, ConvParams(pads=(1, 1, 1, 1)))[0][0, 0].tolist()
[[4, 6, 4], [6, 9, 6], [4, 6, 4]]
"""
from __future__ import annotations

import dataclasses

import numpy as np

from hwsim.errors import KernelError

from . import dispatch
from ._config import njit
from .gemm import (as_weight_array, bias_vector, check_input, check_zero_point, data_max_abs, finish_acc,
                   run_core, use_pairwise, work_dtype, zw_vector)
from .depthwise import depthwise_acc_exact
from .params import ConvParams, KernelStats
from .schemes import Requant
from .requant import requantize_2d

__all__ = ["qconv2d", "conv2d_acc", "conv_output_shape"]


@njit
def _im2col(x, G, KH, KW, sh, sw, dh, dw, pt, pl, OH, OW, offset, pad_value, out):
    """x (N, C, H, W) int32 -> out (G, N*OH*OW, Cg*KH*KW): ``x - offset``; padding taps ``pad_value``."""
    NB, C, H, W = x.shape
    Cg = C // G
    for g in range(G):
        for b in range(NB):
            for oh in range(OH):
                for ow in range(OW):
                    row = (b * OH + oh) * OW + ow
                    col = 0
                    for c in range(Cg):
                        ch = g * Cg + c
                        for kh in range(KH):
                            ih = oh * sh - pt + kh * dh
                            for kw in range(KW):
                                iw = ow * sw - pl + kw * dw
                                if 0 <= ih < H and 0 <= iw < W:
                                    out[g, row, col] = x[b, ch, ih, iw] - offset
                                else:
                                    out[g, row, col] = pad_value
                                col += 1


def conv_output_shape(x_shape, w_shape, p: ConvParams) -> tuple[int, int, int, int]:
    """(N, Cout, OH, OW) of the convolution; raises KernelError on inconsistent shapes."""
    if len(x_shape) != 4 or len(w_shape) != 4:
        raise KernelError(f"conv2d: x must be (N, C, H, W) and w (Cout, Cin/groups, KH, KW), got {tuple(x_shape)} "
                          f"and {tuple(w_shape)}")
    NB, C, H, W = x_shape
    Cout, Cg, KH, KW = w_shape
    G = p.groups
    if C % G or Cout % G or C // G != Cg:
        raise KernelError(f"conv2d: groups={G} does not fit Cin={C}, Cout={Cout}, weight Cin/groups={Cg}")
    pt, pl, pb, pr = p.pads
    (sh, sw), (dh, dw) = p.strides, p.dilations
    OH = (H + pt + pb - dh * (KH - 1) - 1) // sh + 1
    OW = (W + pl + pr - dw * (KW - 1) - 1) // sw + 1
    if OH < 1 or OW < 1:
        raise KernelError(f"conv2d: empty output ({OH}x{OW}) for input {H}x{W}, kernel {KH}x{KW}, pads {p.pads}")
    return NB, Cout, OH, OW


def _conv(x_q, w_q, bias_q, p: ConvParams, with_requant: bool):
    if not isinstance(p, ConvParams):
        raise KernelError(f"p must be ConvParams, got {type(p).__name__}")
    if with_requant and p.requant is None:
        raise KernelError("qconv2d needs ConvParams.requant (use conv2d_acc for accumulators)")
    pp = p if with_requant else p.replace(requant=None)
    x = check_input(x_q)
    w_shape = w_q.shape if hasattr(w_q, "shape") else np.shape(w_q)
    NB, Cout, OH, OW = conv_output_shape(x.shape, w_shape, p)
    C = x.shape[1]
    kind = "depthwise" if (p.groups == C and w_shape[1] == 1 and p.groups > 1) else "conv"
    fast = dispatch.plan_for(kind, x_q, w_q, bias_q, pp)
    if fast is not None:
        return fast(x_q, w_q, bias_q, pp)
    w = as_weight_array(w_q)
    _, Cg, KH, KW = w.shape
    G = p.groups
    Ng = Cout // G
    Kg = Cg * KH * KW
    M = NB * OH * OW
    zx = p.x_zero_point
    check_zero_point(zx, x.dtype, "x_zero_point")
    zw = zw_vector(p.w_zero_point, Cout)
    check_zero_point(zw, w.dtype, "w_zero_point")
    bias = bias_vector(bias_q, Cout)
    pairwise = use_pairwise(p.accum, x.dtype, w.dtype)
    macs = M * Cout * Kg
    acc = None
    if kind == "depthwise" and not pairwise:
        wc = w.reshape(Cout, KH, KW).astype(np.int32) - zw[:, None, None]
        max_b = int(np.abs(wc).max()) if wc.size else 0
        bound = Kg * data_max_abs(x, zx) * max_b + (int(np.abs(bias).max()) if bias.size else 0)
        if bound <= p.accum.acc_max:
            xc = np.ascontiguousarray(x, dtype=np.int32) - np.int32(zx)
            acc, ov, ps = depthwise_acc_exact(xc, np.ascontiguousarray(wc), bias, p, OH, OW), 0, 0
    if acc is None:
        acc, ov, ps = _im2col_gemm(x, w, bias, p, zx, zw, pairwise, G, Ng, Kg, M, KH, KW, OH, OW, Cout)
    if not with_requant:
        out = finish_acc(acc, p.accum)
        return np.ascontiguousarray(out.reshape(NB, OH, OW, Cout).transpose(0, 3, 1, 2)), KernelStats(
            macs=macs, acc_overflows=ov, pair_saturations=ps)
    rp = p.requant
    if rp.channels not in (1, Cout):
        raise KernelError(f"qconv2d: {rp.channels} requantization channels for Cout={Cout}")
    y, clamped = requantize_2d(acc, rp)
    y = y.astype(rp.out_fmt.storage_dtype).reshape(NB, OH, OW, Cout).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(y), KernelStats(macs=macs, acc_overflows=ov, pair_saturations=ps, out_clamped=clamped)


def _im2col_gemm(x, w, bias, p, zx, zw, pairwise, G, Ng, Kg, M, KH, KW, OH, OW, Cout):
    wdt, _, _ = work_dtype(x.dtype, zx, w.dtype, zw, pairwise)
    A = np.empty((G, M, Kg), wdt)
    (sh, sw), (dh, dw) = p.strides, p.dilations
    pt, pl = p.pads[0], p.pads[1]
    offset, pad_value = (0, zx) if pairwise else (zx, 0)
    _im2col(np.ascontiguousarray(x, dtype=np.int32), G, KH, KW, sh, sw, dh, dw, pt, pl, OH, OW,
            offset, pad_value, A)
    w2 = w.reshape(Cout, Kg)
    if pairwise:
        B = np.ascontiguousarray(w2.astype(np.int16).reshape(G, Ng, Kg))
        acc, ov, ps = run_core(A, B, bias, zx, zw, p.accum, True, 0, 0)
    else:
        B = np.ascontiguousarray((w2.astype(np.int32) - zw[:, None]).astype(wdt).reshape(G, Ng, Kg))
        acc, ov, ps = run_core(A, B, bias, zx, zw, p.accum, False, data_max_abs(x, zx), data_max_abs(B, 0))
    return acc, ov, ps


def conv2d_acc(x_q, w_q, bias_q=None, p: ConvParams | None = None) -> tuple[np.ndarray, KernelStats]:
    """Integer convolution accumulators (ONNX ConvInteger semantics, plus optional bias).

    Parameters
    ----------
    x_q : (N, Cin, H, W) int8/uint8/int16/uint16
    w_q : (Cout, Cin/groups, KH, KW) int8/uint8/int16/uint16, or PackedInt4 of that shape
    bias_q : (Cout,) integer or None
    p : ConvParams (``requant`` ignored)

    Returns
    -------
    acc : (N, Cout, OH, OW) int32 (accumulator ≤ 32 bits) or int64
    stats : KernelStats
    """
    return _conv(x_q, w_q, bias_q, p if p is not None else ConvParams(), False)


def qconv2d(x_q, w_q, bias_q, p: ConvParams) -> tuple[np.ndarray, KernelStats]:
    """Quantized convolution (QLinearConv / TFLite CONV_2D / DEPTHWISE_CONV_2D semantics).

    Returns ``(y_q, KernelStats)`` with ``y_q`` (N, Cout, OH, OW) in ``p.requant.out_fmt.storage_dtype``.
    Calls ``dispatch.fast_path("conv" | "depthwise", x=, w=, bias=, params=)`` first; a returned
    callable is invoked as ``fn(x_q, w_q, bias_q, p)``.

    With the ``tflite_optimized`` scheme, a depthwise convolution requantizes its last
    ``Cout % 8`` channels with the ``tflite_reference`` rounding, as LiteRT's optimized x86
    kernel does (same multipliers; measured against LiteRT 2.3, see kernels/README.md).
    """
    result = _conv(x_q, w_q, bias_q, p, True)
    tail = _tflite_optimized_depthwise_tail(x_q, w_q, p)
    if not tail:
        return result
    y, stats = result
    ref = p.replace(requant=dataclasses.replace(p.requant, scheme=Requant.TFLITE_REFERENCE))
    y_ref, _ = _conv(x_q, w_q, bias_q, ref, True)
    y[:, -tail:] = y_ref[:, -tail:]
    return y, stats


def _tflite_optimized_depthwise_tail(x_q, w_q, p: ConvParams) -> int:
    """How many output channels LiteRT's optimized depthwise kernel requantizes with the
    reference rounding (the ones after the last full block of 8)."""
    if p.requant is None or p.requant.scheme is not Requant.TFLITE_OPTIMIZED:
        return 0
    w_shape = w_q.shape if hasattr(w_q, "shape") else np.shape(w_q)
    depthwise = p.groups > 1 and p.groups == np.shape(x_q)[1] and w_shape[1] == 1
    return int(w_shape[0] % 8) if depthwise else 0

"""Explicit AVX-512 VNNI fast paths for the integer GEMM / convolution kernels.

LLVM's auto-vectoriser never emits ``vpdpbusd`` from Numba code, so this module calls the
instructions explicitly: a Numba type for one 512-bit register (``<16 x i32>``) and a few
``@intrinsic`` functions over it (load, 4-byte broadcast, ``llvm.x86.avx512.vpdpbusd.512``,
``llvm.x86.avx512.vpdpwssd.512``, and the bit operations the int4 unpack needs). The
microkernels keep a 6 x 64 tile of int32 accumulators in 24 zmm registers; activations are
read in place (row-major, 4-byte broadcasts, no packing pass), weights are packed once per
call into panels of 64 output channels.

Signed 8-bit activations are flipped to unsigned with ``x ^ 0x80`` (= x + 128) inside the
tile and the exact correction ``-128 * colsum(w)`` is folded into the per-channel
constant; unsigned 16-bit activations likewise with ``x ^ 0x8000``. int4 weights are stored
as biased nibbles (w + 8), two per byte, and unpacked to int8 inside the tile.

Everything here is compiled lazily (``cache=True``); the instructions are only generated
when a kernel is first called, which :mod:`hwsim.kernels.dispatch` does only on CPUs with
``avx512_vnni`` (see :mod:`hwsim.kernels.cpu`).

Example
-------
>>> import numpy as np
>>> from hwsim.kernels import cpu, vnni
>>> if cpu.has_vnni():
...     a = np.arange(12, dtype=np.uint8).reshape(3, 4)
...     w = np.ones((4, 2), dtype=np.int8)
...     print(vnni.gemm_int32(a, w, 0).tolist())
... else:
...     print([[6, 6], [22, 22], [38, 38]])
[[6, 6], [22, 22], [38, 38]]
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

__all__ = [
    "MR", "NR", "peak_gops", "pack_weights", "gemm_int32", "gemm_acc",
]

MR = 6    # rows of the register tile (output pixels / GEMM rows)
NR = 64   # columns of the register tile (output channels): 4 zmm of 16 int32

# ---------------------------------------------------------------------------------------
# A Numba type for one zmm register, and the instructions over it.
# ---------------------------------------------------------------------------------------

_I32 = ir.IntType(32)
_V16 = ir.VectorType(_I32, 16)     # 16 x int32 = 512 bits
_V32W = ir.VectorType(ir.IntType(16), 32)
_V64B = ir.VectorType(ir.IntType(8), 64)


class Zmm(types.Type):
    """One 512-bit register, seen as 16 int32 lanes."""

    def __init__(self):
        super().__init__(name="Zmm")


zmm = Zmm()


@register_model(Zmm)
class _ZmmModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _V16)


def _elem_ptr(context, builder, arrty, arr, idx):
    a = context.make_array(arrty)(context, builder, arr)
    return builder.gep(a.data, [idx])


@intrinsic
def _vzero(typingctx):
    def codegen(context, builder, sig, args):
        return ir.Constant(_V16, None)
    return zmm(), codegen


@intrinsic
def _vsplat(typingctx, x):
    def codegen(context, builder, sig, args):
        v = builder.trunc(args[0], _I32) if args[0].type.width > 32 else args[0]
        v = builder.insert_element(ir.Constant(_V16, ir.Undefined), v, ir.Constant(_I32, 0))
        return builder.shuffle_vector(v, ir.Constant(_V16, ir.Undefined), ir.Constant(_V16, None))
    return zmm(x), codegen


@intrinsic
def _vload(typingctx, arr, idx):
    """64 bytes starting at element ``idx`` of a 1-D array (unaligned)."""
    def codegen(context, builder, sig, args):
        p = _elem_ptr(context, builder, sig.args[0], args[0], args[1])
        return builder.load(builder.bitcast(p, _V16.as_pointer()), align=1)
    return zmm(arr, idx), codegen


@intrinsic
def _vbcast4(typingctx, arr, idx):
    """The 4 bytes at element ``idx`` of a 1-D array, broadcast to all 16 lanes."""
    def codegen(context, builder, sig, args):
        p = _elem_ptr(context, builder, sig.args[0], args[0], args[1])
        x = builder.load(builder.bitcast(p, _I32.as_pointer()), align=1)
        v = builder.insert_element(ir.Constant(_V16, ir.Undefined), x, ir.Constant(_I32, 0))
        return builder.shuffle_vector(v, ir.Constant(_V16, ir.Undefined), ir.Constant(_V16, None))
    return zmm(arr, idx), codegen


@intrinsic
def _vstore(typingctx, arr, idx, v):
    """Store 16 int32 lanes at element ``idx`` of a 1-D int32 array (unaligned)."""
    def codegen(context, builder, sig, args):
        p = _elem_ptr(context, builder, sig.args[0], args[0], args[1])
        builder.store(args[2], builder.bitcast(p, _V16.as_pointer()), align=1)
        return context.get_dummy_value()
    return types.void(arr, idx, v), codegen


@intrinsic
def _vxor(typingctx, a, b):
    def codegen(context, builder, sig, args):
        return builder.xor(args[0], args[1])
    return zmm(a, b), codegen


@intrinsic
def _vand(typingctx, a, b):
    def codegen(context, builder, sig, args):
        return builder.and_(args[0], args[1])
    return zmm(a, b), codegen


@intrinsic
def _vsrl16(typingctx, a, n):
    """Logical right shift of each 16-bit lane by the constant ``n``."""
    if not isinstance(n, types.IntegerLiteral):
        return None
    k = n.literal_value

    def codegen(context, builder, sig, args):
        w = builder.bitcast(args[0], _V32W)
        r = builder.lshr(w, ir.Constant(_V32W, [k] * 32))
        return builder.bitcast(r, _V16)
    return zmm(a, n), codegen


@intrinsic
def _vsub8(typingctx, a, b):
    """Byte-wise wrapping subtraction."""
    def codegen(context, builder, sig, args):
        r = builder.sub(builder.bitcast(args[0], _V64B), builder.bitcast(args[1], _V64B))
        return builder.bitcast(r, _V16)
    return zmm(a, b), codegen


@intrinsic
def _vdpbusd(typingctx, acc, a, b):
    """acc + sum of 4 (uint8 of ``a``) x (int8 of ``b``) products per int32 lane (wraps)."""
    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(_V16, [_V16, _V64B, _V64B])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx512.vpdpbusd.512")
        return builder.call(fn, [args[0], builder.bitcast(args[1], _V64B),
                                 builder.bitcast(args[2], _V64B)])
    return zmm(acc, a, b), codegen


@intrinsic
def _vdpwssd(typingctx, acc, a, b):
    """acc + sum of 2 (int16 of ``a``) x (int16 of ``b``) products per int32 lane (wraps)."""
    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(_V16, [_V16, _V32W, _V32W])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx512.vpdpwssd.512")
        return builder.call(fn, [args[0], builder.bitcast(args[1], _V32W),
                                 builder.bitcast(args[2], _V32W)])
    return zmm(acc, a, b), codegen


@intrinsic
def _vsum(typingctx, v):
    """Wrapping int32 sum of the 16 lanes, as int64."""
    def codegen(context, builder, sig, args):
        s = builder.extract_element(args[0], ir.Constant(_I32, 0))
        for i in range(1, 16):
            s = builder.add(s, builder.extract_element(args[0], ir.Constant(_I32, i)))
        return builder.sext(s, ir.IntType(64))
    return types.int64(v), codegen


XOR8 = -2139062144    # 0x80808080 as int32: uint8 <-> int8 by flipping the top bit of each byte
XOR16 = -2147450880   # 0x80008000 as int32: uint16 <-> int16

# ---------------------------------------------------------------------------------------
# Register-tile microkernels (written out: one zmm accumulator per variable).
# Each computes T[r*64 + j] = sum over taps t, steps s of the 4-byte group (4 uint8 or
# 2 int16 values) at byte A[o_r + taps[t] + 4*s] times the packed weights starting at byte
# Bp[pb] (consumed in order). A and Bp are byte views; offsets are in bytes.
# ---------------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _mk_b8_6(A, o0, o1, o2, o3, o4, o5, taps, steps, Bp, pb, xm, T):
    """6x64 tile: uint8 activations (int8 ones flipped by xm) x int8 weights, vpdpbusd."""
    c00 = c01 = c02 = c03 = _vzero()
    c10 = c11 = c12 = c13 = _vzero()
    c20 = c21 = c22 = c23 = _vzero()
    c30 = c31 = c32 = c33 = _vzero()
    c40 = c41 = c42 = c43 = _vzero()
    c50 = c51 = c52 = c53 = _vzero()
    xv = _vsplat(xm)
    for t in range(taps.shape[0]):
        d = taps[t]
        p0 = o0 + d
        p1 = o1 + d
        p2 = o2 + d
        p3 = o3 + d
        p4 = o4 + d
        p5 = o5 + d
        for _s in range(steps):
            b0 = _vload(Bp, pb)
            b1 = _vload(Bp, pb + 64)
            b2 = _vload(Bp, pb + 128)
            b3 = _vload(Bp, pb + 192)
            pb += 256
            a = _vxor(_vbcast4(A, p0), xv)
            p0 += 4
            c00 = _vdpbusd(c00, a, b0)
            c01 = _vdpbusd(c01, a, b1)
            c02 = _vdpbusd(c02, a, b2)
            c03 = _vdpbusd(c03, a, b3)
            a = _vxor(_vbcast4(A, p1), xv)
            p1 += 4
            c10 = _vdpbusd(c10, a, b0)
            c11 = _vdpbusd(c11, a, b1)
            c12 = _vdpbusd(c12, a, b2)
            c13 = _vdpbusd(c13, a, b3)
            a = _vxor(_vbcast4(A, p2), xv)
            p2 += 4
            c20 = _vdpbusd(c20, a, b0)
            c21 = _vdpbusd(c21, a, b1)
            c22 = _vdpbusd(c22, a, b2)
            c23 = _vdpbusd(c23, a, b3)
            a = _vxor(_vbcast4(A, p3), xv)
            p3 += 4
            c30 = _vdpbusd(c30, a, b0)
            c31 = _vdpbusd(c31, a, b1)
            c32 = _vdpbusd(c32, a, b2)
            c33 = _vdpbusd(c33, a, b3)
            a = _vxor(_vbcast4(A, p4), xv)
            p4 += 4
            c40 = _vdpbusd(c40, a, b0)
            c41 = _vdpbusd(c41, a, b1)
            c42 = _vdpbusd(c42, a, b2)
            c43 = _vdpbusd(c43, a, b3)
            a = _vxor(_vbcast4(A, p5), xv)
            p5 += 4
            c50 = _vdpbusd(c50, a, b0)
            c51 = _vdpbusd(c51, a, b1)
            c52 = _vdpbusd(c52, a, b2)
            c53 = _vdpbusd(c53, a, b3)
    _vstore(T, 0, c00)
    _vstore(T, 16, c01)
    _vstore(T, 32, c02)
    _vstore(T, 48, c03)
    _vstore(T, 64, c10)
    _vstore(T, 80, c11)
    _vstore(T, 96, c12)
    _vstore(T, 112, c13)
    _vstore(T, 128, c20)
    _vstore(T, 144, c21)
    _vstore(T, 160, c22)
    _vstore(T, 176, c23)
    _vstore(T, 192, c30)
    _vstore(T, 208, c31)
    _vstore(T, 224, c32)
    _vstore(T, 240, c33)
    _vstore(T, 256, c40)
    _vstore(T, 272, c41)
    _vstore(T, 288, c42)
    _vstore(T, 304, c43)
    _vstore(T, 320, c50)
    _vstore(T, 336, c51)
    _vstore(T, 352, c52)
    _vstore(T, 368, c53)


@njit(cache=True, nogil=True)
def _mk_b4_6(A, o0, o1, o2, o3, o4, o5, taps, steps, Bp, pb, xm, T):
    """6x64 tile: uint8 activations x int4 weights (biased nibbles unpacked in the tile), vpdpbusd."""
    c00 = c01 = c02 = c03 = _vzero()
    c10 = c11 = c12 = c13 = _vzero()
    c20 = c21 = c22 = c23 = _vzero()
    c30 = c31 = c32 = c33 = _vzero()
    c40 = c41 = c42 = c43 = _vzero()
    c50 = c51 = c52 = c53 = _vzero()
    xv = _vsplat(xm)
    lo = _vsplat(0x0F0F0F0F)
    eight = _vsplat(0x08080808)
    for t in range(taps.shape[0]):
        d = taps[t]
        p0 = o0 + d
        p1 = o1 + d
        p2 = o2 + d
        p3 = o3 + d
        p4 = o4 + d
        p5 = o5 + d
        for _s in range(steps):
            v0 = _vload(Bp, pb)
            v1 = _vload(Bp, pb + 64)
            pb += 128
            b0 = _vsub8(_vand(v0, lo), eight)
            b1 = _vsub8(_vand(_vsrl16(v0, 4), lo), eight)
            b2 = _vsub8(_vand(v1, lo), eight)
            b3 = _vsub8(_vand(_vsrl16(v1, 4), lo), eight)
            a = _vxor(_vbcast4(A, p0), xv)
            p0 += 4
            c00 = _vdpbusd(c00, a, b0)
            c01 = _vdpbusd(c01, a, b1)
            c02 = _vdpbusd(c02, a, b2)
            c03 = _vdpbusd(c03, a, b3)
            a = _vxor(_vbcast4(A, p1), xv)
            p1 += 4
            c10 = _vdpbusd(c10, a, b0)
            c11 = _vdpbusd(c11, a, b1)
            c12 = _vdpbusd(c12, a, b2)
            c13 = _vdpbusd(c13, a, b3)
            a = _vxor(_vbcast4(A, p2), xv)
            p2 += 4
            c20 = _vdpbusd(c20, a, b0)
            c21 = _vdpbusd(c21, a, b1)
            c22 = _vdpbusd(c22, a, b2)
            c23 = _vdpbusd(c23, a, b3)
            a = _vxor(_vbcast4(A, p3), xv)
            p3 += 4
            c30 = _vdpbusd(c30, a, b0)
            c31 = _vdpbusd(c31, a, b1)
            c32 = _vdpbusd(c32, a, b2)
            c33 = _vdpbusd(c33, a, b3)
            a = _vxor(_vbcast4(A, p4), xv)
            p4 += 4
            c40 = _vdpbusd(c40, a, b0)
            c41 = _vdpbusd(c41, a, b1)
            c42 = _vdpbusd(c42, a, b2)
            c43 = _vdpbusd(c43, a, b3)
            a = _vxor(_vbcast4(A, p5), xv)
            p5 += 4
            c50 = _vdpbusd(c50, a, b0)
            c51 = _vdpbusd(c51, a, b1)
            c52 = _vdpbusd(c52, a, b2)
            c53 = _vdpbusd(c53, a, b3)
    _vstore(T, 0, c00)
    _vstore(T, 16, c01)
    _vstore(T, 32, c02)
    _vstore(T, 48, c03)
    _vstore(T, 64, c10)
    _vstore(T, 80, c11)
    _vstore(T, 96, c12)
    _vstore(T, 112, c13)
    _vstore(T, 128, c20)
    _vstore(T, 144, c21)
    _vstore(T, 160, c22)
    _vstore(T, 176, c23)
    _vstore(T, 192, c30)
    _vstore(T, 208, c31)
    _vstore(T, 224, c32)
    _vstore(T, 240, c33)
    _vstore(T, 256, c40)
    _vstore(T, 272, c41)
    _vstore(T, 288, c42)
    _vstore(T, 304, c43)
    _vstore(T, 320, c50)
    _vstore(T, 336, c51)
    _vstore(T, 352, c52)
    _vstore(T, 368, c53)


@njit(cache=True, nogil=True)
def _mk_w16_6(A, o0, o1, o2, o3, o4, o5, taps, steps, Bp, pb, xm, T):
    """6x64 tile: int16 activations (uint16 ones flipped by xm) x int16 weights, vpdpwssd."""
    c00 = c01 = c02 = c03 = _vzero()
    c10 = c11 = c12 = c13 = _vzero()
    c20 = c21 = c22 = c23 = _vzero()
    c30 = c31 = c32 = c33 = _vzero()
    c40 = c41 = c42 = c43 = _vzero()
    c50 = c51 = c52 = c53 = _vzero()
    xv = _vsplat(xm)
    for t in range(taps.shape[0]):
        d = taps[t]
        p0 = o0 + d
        p1 = o1 + d
        p2 = o2 + d
        p3 = o3 + d
        p4 = o4 + d
        p5 = o5 + d
        for _s in range(steps):
            b0 = _vload(Bp, pb)
            b1 = _vload(Bp, pb + 64)
            b2 = _vload(Bp, pb + 128)
            b3 = _vload(Bp, pb + 192)
            pb += 256
            a = _vxor(_vbcast4(A, p0), xv)
            p0 += 4
            c00 = _vdpwssd(c00, a, b0)
            c01 = _vdpwssd(c01, a, b1)
            c02 = _vdpwssd(c02, a, b2)
            c03 = _vdpwssd(c03, a, b3)
            a = _vxor(_vbcast4(A, p1), xv)
            p1 += 4
            c10 = _vdpwssd(c10, a, b0)
            c11 = _vdpwssd(c11, a, b1)
            c12 = _vdpwssd(c12, a, b2)
            c13 = _vdpwssd(c13, a, b3)
            a = _vxor(_vbcast4(A, p2), xv)
            p2 += 4
            c20 = _vdpwssd(c20, a, b0)
            c21 = _vdpwssd(c21, a, b1)
            c22 = _vdpwssd(c22, a, b2)
            c23 = _vdpwssd(c23, a, b3)
            a = _vxor(_vbcast4(A, p3), xv)
            p3 += 4
            c30 = _vdpwssd(c30, a, b0)
            c31 = _vdpwssd(c31, a, b1)
            c32 = _vdpwssd(c32, a, b2)
            c33 = _vdpwssd(c33, a, b3)
            a = _vxor(_vbcast4(A, p4), xv)
            p4 += 4
            c40 = _vdpwssd(c40, a, b0)
            c41 = _vdpwssd(c41, a, b1)
            c42 = _vdpwssd(c42, a, b2)
            c43 = _vdpwssd(c43, a, b3)
            a = _vxor(_vbcast4(A, p5), xv)
            p5 += 4
            c50 = _vdpwssd(c50, a, b0)
            c51 = _vdpwssd(c51, a, b1)
            c52 = _vdpwssd(c52, a, b2)
            c53 = _vdpwssd(c53, a, b3)
    _vstore(T, 0, c00)
    _vstore(T, 16, c01)
    _vstore(T, 32, c02)
    _vstore(T, 48, c03)
    _vstore(T, 64, c10)
    _vstore(T, 80, c11)
    _vstore(T, 96, c12)
    _vstore(T, 112, c13)
    _vstore(T, 128, c20)
    _vstore(T, 144, c21)
    _vstore(T, 160, c22)
    _vstore(T, 176, c23)
    _vstore(T, 192, c30)
    _vstore(T, 208, c31)
    _vstore(T, 224, c32)
    _vstore(T, 240, c33)
    _vstore(T, 256, c40)
    _vstore(T, 272, c41)
    _vstore(T, 288, c42)
    _vstore(T, 304, c43)
    _vstore(T, 320, c50)
    _vstore(T, 336, c51)
    _vstore(T, 352, c52)
    _vstore(T, 368, c53)


@njit(cache=True, nogil=True)
def _mk_b8_1(A, o0, taps, steps, Bp, pb, xm, T):
    """1x64 tile: uint8 activations (int8 ones flipped by xm) x int8 weights, vpdpbusd."""
    c00 = c01 = c02 = c03 = _vzero()
    xv = _vsplat(xm)
    for t in range(taps.shape[0]):
        d = taps[t]
        p0 = o0 + d
        for _s in range(steps):
            b0 = _vload(Bp, pb)
            b1 = _vload(Bp, pb + 64)
            b2 = _vload(Bp, pb + 128)
            b3 = _vload(Bp, pb + 192)
            pb += 256
            a = _vxor(_vbcast4(A, p0), xv)
            p0 += 4
            c00 = _vdpbusd(c00, a, b0)
            c01 = _vdpbusd(c01, a, b1)
            c02 = _vdpbusd(c02, a, b2)
            c03 = _vdpbusd(c03, a, b3)
    _vstore(T, 0, c00)
    _vstore(T, 16, c01)
    _vstore(T, 32, c02)
    _vstore(T, 48, c03)


@njit(cache=True, nogil=True)
def _mk_b4_1(A, o0, taps, steps, Bp, pb, xm, T):
    """1x64 tile: uint8 activations x int4 weights (biased nibbles unpacked in the tile), vpdpbusd."""
    c00 = c01 = c02 = c03 = _vzero()
    xv = _vsplat(xm)
    lo = _vsplat(0x0F0F0F0F)
    eight = _vsplat(0x08080808)
    for t in range(taps.shape[0]):
        d = taps[t]
        p0 = o0 + d
        for _s in range(steps):
            v0 = _vload(Bp, pb)
            v1 = _vload(Bp, pb + 64)
            pb += 128
            b0 = _vsub8(_vand(v0, lo), eight)
            b1 = _vsub8(_vand(_vsrl16(v0, 4), lo), eight)
            b2 = _vsub8(_vand(v1, lo), eight)
            b3 = _vsub8(_vand(_vsrl16(v1, 4), lo), eight)
            a = _vxor(_vbcast4(A, p0), xv)
            p0 += 4
            c00 = _vdpbusd(c00, a, b0)
            c01 = _vdpbusd(c01, a, b1)
            c02 = _vdpbusd(c02, a, b2)
            c03 = _vdpbusd(c03, a, b3)
    _vstore(T, 0, c00)
    _vstore(T, 16, c01)
    _vstore(T, 32, c02)
    _vstore(T, 48, c03)


@njit(cache=True, nogil=True)
def _mk_w16_1(A, o0, taps, steps, Bp, pb, xm, T):
    """1x64 tile: int16 activations (uint16 ones flipped by xm) x int16 weights, vpdpwssd."""
    c00 = c01 = c02 = c03 = _vzero()
    xv = _vsplat(xm)
    for t in range(taps.shape[0]):
        d = taps[t]
        p0 = o0 + d
        for _s in range(steps):
            b0 = _vload(Bp, pb)
            b1 = _vload(Bp, pb + 64)
            b2 = _vload(Bp, pb + 128)
            b3 = _vload(Bp, pb + 192)
            pb += 256
            a = _vxor(_vbcast4(A, p0), xv)
            p0 += 4
            c00 = _vdpwssd(c00, a, b0)
            c01 = _vdpwssd(c01, a, b1)
            c02 = _vdpwssd(c02, a, b2)
            c03 = _vdpwssd(c03, a, b3)
    _vstore(T, 0, c00)
    _vstore(T, 16, c01)
    _vstore(T, 32, c02)
    _vstore(T, 48, c03)



@njit(cache=True, nogil=True)
def _peak_b8(iters, seed):
    """Register-only loop of 24 independent dpbusd per iteration (the machine's peak)."""
    a = _vsplat(seed)
    b = _vsplat(seed + 1)
    c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = c8 = c9 = c10 = c11 = c12 = c13 = c14 = c15 = c16 = c17 = c18 = c19 = c20 = c21 = c22 = c23 = _vzero()
    for _ in range(iters):
        c0 = _vdpbusd(c0, a, b)
        c1 = _vdpbusd(c1, a, b)
        c2 = _vdpbusd(c2, a, b)
        c3 = _vdpbusd(c3, a, b)
        c4 = _vdpbusd(c4, a, b)
        c5 = _vdpbusd(c5, a, b)
        c6 = _vdpbusd(c6, a, b)
        c7 = _vdpbusd(c7, a, b)
        c8 = _vdpbusd(c8, a, b)
        c9 = _vdpbusd(c9, a, b)
        c10 = _vdpbusd(c10, a, b)
        c11 = _vdpbusd(c11, a, b)
        c12 = _vdpbusd(c12, a, b)
        c13 = _vdpbusd(c13, a, b)
        c14 = _vdpbusd(c14, a, b)
        c15 = _vdpbusd(c15, a, b)
        c16 = _vdpbusd(c16, a, b)
        c17 = _vdpbusd(c17, a, b)
        c18 = _vdpbusd(c18, a, b)
        c19 = _vdpbusd(c19, a, b)
        c20 = _vdpbusd(c20, a, b)
        c21 = _vdpbusd(c21, a, b)
        c22 = _vdpbusd(c22, a, b)
        c23 = _vdpbusd(c23, a, b)
    s = _vsum(c0) + _vsum(c1) + _vsum(c2) + _vsum(c3) + _vsum(c4) + _vsum(c5) + _vsum(c6) + _vsum(c7) + _vsum(c8) + _vsum(c9) + _vsum(c10) + _vsum(c11) + _vsum(c12) + _vsum(c13) + _vsum(c14) + _vsum(c15) + _vsum(c16) + _vsum(c17) + _vsum(c18) + _vsum(c19) + _vsum(c20) + _vsum(c21) + _vsum(c22) + _vsum(c23)
    return s


@njit(cache=True, nogil=True)
def _peak_w16(iters, seed):
    """Register-only loop of 24 independent dpwssd per iteration (the machine's peak)."""
    a = _vsplat(seed)
    b = _vsplat(seed + 1)
    c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = c8 = c9 = c10 = c11 = c12 = c13 = c14 = c15 = c16 = c17 = c18 = c19 = c20 = c21 = c22 = c23 = _vzero()
    for _ in range(iters):
        c0 = _vdpwssd(c0, a, b)
        c1 = _vdpwssd(c1, a, b)
        c2 = _vdpwssd(c2, a, b)
        c3 = _vdpwssd(c3, a, b)
        c4 = _vdpwssd(c4, a, b)
        c5 = _vdpwssd(c5, a, b)
        c6 = _vdpwssd(c6, a, b)
        c7 = _vdpwssd(c7, a, b)
        c8 = _vdpwssd(c8, a, b)
        c9 = _vdpwssd(c9, a, b)
        c10 = _vdpwssd(c10, a, b)
        c11 = _vdpwssd(c11, a, b)
        c12 = _vdpwssd(c12, a, b)
        c13 = _vdpwssd(c13, a, b)
        c14 = _vdpwssd(c14, a, b)
        c15 = _vdpwssd(c15, a, b)
        c16 = _vdpwssd(c16, a, b)
        c17 = _vdpwssd(c17, a, b)
        c18 = _vdpwssd(c18, a, b)
        c19 = _vdpwssd(c19, a, b)
        c20 = _vdpwssd(c20, a, b)
        c21 = _vdpwssd(c21, a, b)
        c22 = _vdpwssd(c22, a, b)
        c23 = _vdpwssd(c23, a, b)
    s = _vsum(c0) + _vsum(c1) + _vsum(c2) + _vsum(c3) + _vsum(c4) + _vsum(c5) + _vsum(c6) + _vsum(c7) + _vsum(c8) + _vsum(c9) + _vsum(c10) + _vsum(c11) + _vsum(c12) + _vsum(c13) + _vsum(c14) + _vsum(c15) + _vsum(c16) + _vsum(c17) + _vsum(c18) + _vsum(c19) + _vsum(c20) + _vsum(c21) + _vsum(c22) + _vsum(c23)
    return s



def peak_gops(fam="b8", seconds=0.05):
    """Measure the peak of ``vpdpbusd`` ("b8", 128 int ops per instruction) or ``vpdpwssd``
    ("w16", 64) on this core with a register-only loop; returns GOP/s (best of 5)."""
    import time
    fn = _peak_b8 if fam == "b8" else _peak_w16
    ops_per_iter = 24 * (128 if fam == "b8" else 64)
    fn(10, 1)
    iters = 1000
    while True:
        t0 = time.perf_counter()
        fn(iters, 1)
        dt = time.perf_counter() - t0
        if dt > seconds / 5:
            break
        iters *= 4
    best = dt
    for _ in range(4):
        t0 = time.perf_counter()
        fn(iters, 1)
        best = min(best, time.perf_counter() - t0)
    return ops_per_iter * iters / best / 1e9


# ---------------------------------------------------------------------------------------
# Weight packing: W[t, c, n] (taps x input channels x output channels) -> panels of 64
# output channels, consumed linearly by the microkernels.
# ---------------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _pack8(W, steps):
    T, C, N = W.shape
    npan = (N + NR - 1) // NR
    Bp = np.zeros(npan * T * steps * NR * 4, np.int8)
    for p in range(npan):
        for t in range(T):
            for s in range(steps):
                base = ((p * T + t) * steps + s) * NR * 4
                for j in range(NR):
                    n = p * NR + j
                    if n >= N:
                        break
                    for q in range(4):
                        c = s * 4 + q
                        if c < C:
                            Bp[base + j * 4 + q] = W[t, c, n]
    return Bp


@njit(cache=True, nogil=True)
def _pack4(W, steps):
    """int4 values in [-8, 7] -> biased nibbles (w + 8); byte i of the first 64 bytes of a
    step holds vector 0 (low nibble) and vector 1 (high nibble), the next 64 bytes 2 and 3."""
    T, C, N = W.shape
    npan = (N + NR - 1) // NR
    Bp = np.zeros(npan * T * steps * NR * 2, np.uint8)
    for p in range(npan):
        for t in range(T):
            for s in range(steps):
                base = ((p * T + t) * steps + s) * NR * 2
                for j in range(NR):
                    n = p * NR + j
                    vec = j // 16
                    lane = j % 16
                    for q in range(4):
                        c = s * 4 + q
                        v = 8
                        if c < C and n < N:
                            v = np.int64(W[t, c, n]) + 8
                        byte = base + (vec // 2) * 64 + lane * 4 + q
                        if vec % 2 == 0:
                            Bp[byte] |= np.uint8(v)
                        else:
                            Bp[byte] |= np.uint8(v << 4)
    return Bp


@njit(cache=True, nogil=True)
def _pack16(W, steps):
    T, C, N = W.shape
    npan = (N + NR - 1) // NR
    Bp = np.zeros(npan * T * steps * NR * 2, np.int16)
    for p in range(npan):
        for t in range(T):
            for s in range(steps):
                base = ((p * T + t) * steps + s) * NR * 2
                for j in range(NR):
                    n = p * NR + j
                    if n >= N:
                        break
                    for q in range(2):
                        c = s * 2 + q
                        if c < C:
                            Bp[base + j * 2 + q] = W[t, c, n]
    return Bp


@njit(cache=True, nogil=True)
def _colsum(W):
    T, C, N = W.shape
    s = np.zeros(N, np.int64)
    for t in range(T):
        for c in range(C):
            for n in range(N):
                s[n] += W[t, c, n]
    return s

MB = 96   # rows per task: 16 register tiles reuse one weight panel


@njit(cache=True, nogil=True, parallel=True)
def _gemm_i32_b8(A, rows, taps, steps, Bp, pstride, N, xm, corr, out):
    """int32 accumulators (wrapping) of all rows x all 64-channel panels, plus corr[n]."""
    M = rows.shape[0]
    npan = (N + NR - 1) // NR
    nmb = (M + MB - 1) // MB
    for task in prange(nmb * npan):
        mb = task // npan
        p = task % npan
        m0 = mb * MB
        m1 = min(M, m0 + MB)
        T = np.empty(MB * NR, np.int32)
        pb = p * pstride
        m = m0
        while m + MR <= m1:
            _mk_b8_6(A, rows[m], rows[m + 1], rows[m + 2], rows[m + 3], rows[m + 4], rows[m + 5],
                      taps, steps, Bp, pb, xm, T[(m - m0) * NR:])
            m += MR
        while m < m1:
            _mk_b8_1(A, rows[m], taps, steps, Bp, pb, xm, T[(m - m0) * NR:])
            m += 1
        n0 = p * NR
        n1 = min(N, n0 + NR)
        for m in range(m0, m1):
            for n in range(n0, n1):
                out[m, n] = T[(m - m0) * NR + n - n0] + corr[n]


@njit(cache=True, nogil=True, parallel=True)
def _gemm_i32_b4(A, rows, taps, steps, Bp, pstride, N, xm, corr, out):
    """int32 accumulators (wrapping) of all rows x all 64-channel panels, plus corr[n]."""
    M = rows.shape[0]
    npan = (N + NR - 1) // NR
    nmb = (M + MB - 1) // MB
    for task in prange(nmb * npan):
        mb = task // npan
        p = task % npan
        m0 = mb * MB
        m1 = min(M, m0 + MB)
        T = np.empty(MB * NR, np.int32)
        pb = p * pstride
        m = m0
        while m + MR <= m1:
            _mk_b4_6(A, rows[m], rows[m + 1], rows[m + 2], rows[m + 3], rows[m + 4], rows[m + 5],
                      taps, steps, Bp, pb, xm, T[(m - m0) * NR:])
            m += MR
        while m < m1:
            _mk_b4_1(A, rows[m], taps, steps, Bp, pb, xm, T[(m - m0) * NR:])
            m += 1
        n0 = p * NR
        n1 = min(N, n0 + NR)
        for m in range(m0, m1):
            for n in range(n0, n1):
                out[m, n] = T[(m - m0) * NR + n - n0] + corr[n]


@njit(cache=True, nogil=True, parallel=True)
def _gemm_i32_w16(A, rows, taps, steps, Bp, pstride, N, xm, corr, out):
    """int32 accumulators (wrapping) of all rows x all 64-channel panels, plus corr[n]."""
    M = rows.shape[0]
    npan = (N + NR - 1) // NR
    nmb = (M + MB - 1) // MB
    for task in prange(nmb * npan):
        mb = task // npan
        p = task % npan
        m0 = mb * MB
        m1 = min(M, m0 + MB)
        T = np.empty(MB * NR, np.int32)
        pb = p * pstride
        m = m0
        while m + MR <= m1:
            _mk_w16_6(A, rows[m], rows[m + 1], rows[m + 2], rows[m + 3], rows[m + 4], rows[m + 5],
                      taps, steps, Bp, pb, xm, T[(m - m0) * NR:])
            m += MR
        while m < m1:
            _mk_w16_1(A, rows[m], taps, steps, Bp, pb, xm, T[(m - m0) * NR:])
            m += 1
        n0 = p * NR
        n1 = min(N, n0 + NR)
        for m in range(m0, m1):
            for n in range(n0, n1):
                out[m, n] = T[(m - m0) * NR + n - n0] + corr[n]


_GEMM_I32 = {"b8": _gemm_i32_b8, "b4": _gemm_i32_b4, "w16": _gemm_i32_w16}


def pack_weights(w3, fam):
    """Pack ``w3[t, c, n]`` (taps x input channels x output channels, integer values) for
    the microkernels of family ``fam`` ("b8": int8, "b4": int4 values in [-8, 7], "w16":
    int16). Returns ``(Bp as uint8 bytes, steps per tap, bytes per 64-channel panel,
    column sums as int64)``."""
    w3 = np.ascontiguousarray(w3)
    T, C, N = w3.shape
    if fam == "w16":
        steps = (C + 1) // 2
        bp = _pack16(w3.astype(np.int16), steps).view(np.uint8)
    else:
        steps = (C + 3) // 4
        bp = (_pack8(w3.astype(np.int8), steps).view(np.uint8) if fam == "b8"
              else _pack4(w3.astype(np.int8), steps))
    per_step = 128 if fam == "b4" else 256
    return bp, steps, T * steps * per_step, _colsum(w3.astype(np.int64))


def gemm_int32(a, w, za=0, bias=None, *, fam=None):
    """``sum_k (a[m,k] - za) * w[k,n] + bias[n]`` with int32 wrap-around, on VNNI.

    ``a``: uint8, int8, int16 or uint16 (M, K); ``w``: integer (K, N) whose values fit the
    family ("b8"/"b4" for 8-bit activations, "w16" for 16-bit ones). Test/bench helper;
    the dispatched kernels use :func:`gemm_acc` with packed weights.
    """
    a = np.ascontiguousarray(a)
    M, K = a.shape
    N = w.shape[1]
    if fam is None:
        fam = "w16" if a.dtype.itemsize == 2 else "b8"
    bp, steps, pstride, cs = pack_weights(w.reshape(1, K, N), fam)
    out = np.empty((M, N), np.int32)
    gemm_acc(a, bp, steps, pstride, cs, N, fam, za, bias, out)
    return out


def gemm_acc(a, bp, steps, pstride, colsum, N, fam, za, bias, out):
    """Fill int32 ``out[M, N]`` with the wrapped accumulators of ``a`` x packed weights."""
    M, K = a.shape
    g = 2 if fam == "w16" else 4
    if K % g:
        ap = np.zeros((M, steps * g), a.dtype)
        ap[:, :K] = a
        a = ap
    lda = a.shape[1] * a.dtype.itemsize
    xm = XOR8 if a.dtype == np.int8 else (XOR16 if a.dtype == np.uint16 else 0)
    zeff = int(za) + (128 if a.dtype == np.int8 else 0) - (32768 if a.dtype == np.uint16 else 0)
    corr = -zeff * colsum
    if bias is not None:
        corr = corr + np.asarray(bias, np.int64)
    corr = ((corr + 2**31) % 2**32 - 2**31).astype(np.int32)
    rows = np.arange(M, dtype=np.int64) * lda
    taps = np.zeros(1, np.int64)
    _GEMM_I32[fam](a.reshape(-1).view(np.uint8), rows, taps, steps, bp, pstride, N, xm, corr, out)

"""Depthwise convolution fast path (AVX-512): :func:`depthwise_plan`.

Split out of :mod:`hwsim.kernels.vnni` (which re-exports :func:`depthwise_plan`); it uses
that module's zmm type, intrinsics, fused-store and planning helpers.

* One (image, channel) plane per task, 16 output columns per zmm; 8-bit inputs pair two
  taps per ``vpdpwssd`` lane.
* Requantization is fused: the portable path's per-element function
  (:func:`hwsim.kernels.requant.requantize_value`); the ONNX Runtime scheme 16 lanes at a time.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .requant import requantize_value
from .vnni import (_INT32_MAX, _bias64, _put, _requant_args, _vadd, _vclamp_rint, _vcount_out, _vcvt_mul,
                   _vdpwssd, _vload, _vmul, _vput, _vsplat, _vsplat_f32, _vstore, _weights_of, _x_bounds,
                   _x_data_bounds, _zw)

__all__ = ["depthwise_plan"]


@njit(cache=True, nogil=True, parallel=True)
def _dw_run(xb, NB, C, H, W, isz, sgn, w, wpair, pairs, cmult, sh, sw, dh, dw, pt, pl, OH, OW, zx, bias, out,
            osize, mode, code, mf, mult, m0s, shift, bterm, zy, amin, amax, rnd, clamps, vec):
    """Direct depthwise conv, one (image, channel) plane per task: a centred, zero-padded
    int32 copy of the input plane; 16 output columns per zmm (``vpmulld`` + ``vpaddd`` per
    tap, stride 1) or scalar int32 loops (other strides); then the fused epilogue (the
    portable path's per-element requantization; the ONNX Runtime scheme 16 lanes at a
    time). ``out`` is the (N, Cout, OH, OW) result as bytes of ``osize``-byte elements."""
    Cout, KH, KW = w.shape
    OWp = (OW + 15) // 16 * 16
    hs = (np.int32(1) << (8 * isz - 1)) if sgn else np.int32(0)   # sign extension: (v ^ hs) - hs
    z32 = np.int32(zx)
    Hp = max(H + pt, (OH - 1) * sh + (KH - 1) * dh + 1)
    Wp = max(W + pl, (OW - 1) * sw + (KW - 1) * dw + 1, OWp + (KW + 1) * dw)
    for task in prange(NB * Cout):
        b = task // Cout
        co = task % Cout
        c = co // cmult
        xp = np.zeros(Hp * Wp + 16 + dw, np.int32)
        src0 = (b * C + c) * H * W
        for h in range(H):
            base = (h + pt) * Wp + pl
            s = (src0 + h * W) * isz
            if isz == 1 and not sgn:
                for ww in range(W):
                    xp[base + ww] = np.int32(xb[s + ww]) - z32
            elif isz == 1:
                for ww in range(W):
                    xp[base + ww] = np.int32(np.int8(xb[s + ww])) - z32
            else:
                for ww in range(W):
                    v = np.int32(xb[s + 2 * ww]) | (np.int32(xb[s + 2 * ww + 1]) << 8)
                    xp[base + ww] = ((v ^ hs) - hs) - z32
        acc = np.empty(OH * OWp, np.int32)
        bv = np.int32(bias[co])
        if sw == 1 and pairs:
            # centred 8-bit inputs fit int16: pairs of taps (kw, kw+1) per vpdpwssd lane
            xq = np.zeros(Hp * Wp + 16, np.int32)
            for i in range(Hp * Wp):
                xq[i] = (xp[i] & 0xFFFF) | (xp[i + dw] << 16)
            bvec = _vsplat(bv)
            KP = (KW + 1) // 2
            for oh in range(OH):
                for v in range(OWp // 16):
                    a = bvec
                    for kh in range(KH):
                        rb = (oh * sh + kh * dh) * Wp + 16 * v
                        for kp in range(KP):
                            a = _vdpwssd(a, _vload(xq, rb + 2 * kp * dw), _vsplat(wpair[co, kh, kp]))
                    _vstore(acc, oh * OWp + 16 * v, a)
        elif sw == 1:
            bvec = _vsplat(bv)
            for oh in range(OH):
                for v in range(OWp // 16):
                    a = bvec
                    for kh in range(KH):
                        rb = (oh * sh + kh * dh) * Wp + 16 * v
                        for kw in range(KW):
                            a = _vadd(a, _vmul(_vload(xp, rb + kw * dw), _vsplat(w[co, kh, kw])))
                    _vstore(acc, oh * OWp + 16 * v, a)
        else:
            for oh in range(OH):
                for ow in range(OW):
                    s = bv
                    for kh in range(KH):
                        rb = (oh * sh + kh * dh) * Wp + ow * sw
                        for kw in range(KW):
                            s += xp[rb + kw * dw] * w[co, kh, kw]
                    acc[oh * OWp + ow] = s
        ob = (b * Cout + co) * OH * OW
        k = 0
        if mode == 0:
            for oh in range(OH):
                for ow in range(OW):
                    _put(out, ob + oh * OW + ow, acc[oh * OWp + ow], osize)
        elif code == 0 and vec:
            # 16 lanes at a time: lane-wise fp.scale_f32_rne (see _epilogue_f32)
            lo = amin - zy
            hi = amax - zy
            mv = _vsplat_f32(mf[co])
            R = np.empty(16, np.int32)
            for oh in range(OH):
                for v in range(OWp // 16):
                    f = _vcvt_mul(_vload(acc, oh * OWp + 16 * v), mv)
                    valid = min(16, OW - 16 * v)
                    k += _vcount_out(f, lo, hi, valid)
                    r = _vclamp_rint(f, lo, hi, zy)
                    o = ob + oh * OW + 16 * v
                    if valid == 16:
                        _vput(out, o, r, osize)
                    else:
                        _vstore(R, 0, r)
                        for lane in range(valid):
                            _put(out, o + lane, R[lane], osize)
        else:
            for oh in range(OH):
                for ow in range(OW):
                    v, kk = requantize_value(np.int64(acc[oh * OWp + ow]), code, mult[co], m0s[co], shift[co],
                                             bterm[co], zy, amin, amax, rnd)
                    _put(out, ob + oh * OW + ow, v, osize)
                    k += kk
        clamps[task] = k


def depthwise_plan(x, w, bias, params):
    """Depthwise (groups == Cin, one input channel per group) fast path: direct int32
    kernel with fused requantization, parallel over channels; None when a running sum could
    leave int32 or the accumulator, or when pair saturation is emulated."""
    from .params import KernelStats
    x = np.asarray(x)
    p = params
    if x.ndim != 4 or x.dtype.type not in (np.uint8, np.int8, np.uint16, np.int16):
        return None
    wa = _weights_of(w)
    if wa.ndim != 4 or wa.dtype.type not in (np.uint8, np.int8, np.uint16, np.int16):
        return None
    NB, C, H, W = x.shape
    Cout, Cg, KH, KW = wa.shape
    if Cg != 1 or p.groups != C or Cout % C:
        return None
    if p.accum.pairwise_int16 and x.dtype == np.uint8 and wa.dtype == np.int8:
        return None
    zw = _zw(p.w_zero_point, Cout)
    b64 = _bias64(bias, Cout)
    rq = _requant_args(p.requant, Cout)
    if zw is None or b64 is False or rq is False:
        return None
    zx = int(p.x_zero_point)
    info = np.iinfo(x.dtype)
    if not info.min <= zx <= info.max:
        return None
    wc = (wa.values().reshape(Cout, KH, KW).astype(np.int64) - zw[:, None, None])
    wmax = int(np.abs(wc).max()) if wc.size else 0
    bmax = int(np.abs(b64).max()) if b64 is not None and b64.size else 0
    cx, _ = _x_bounds(x, zx)
    lim = min(p.accum.acc_max, _INT32_MAX)
    if KH * KW * cx * wmax + bmax > lim:
        cx, _ = _x_data_bounds(x, zx)
        if KH * KW * cx * wmax + bmax > lim:
            return None
    if cx > _INT32_MAX:
        return None
    wc32 = np.ascontiguousarray(wc, dtype=np.int32)
    # vpdpwssd pairs: lane (x[i], x[i+dw]) x (w[kh, 2kp], w[kh, 2kp+1]); needs int16 operands
    pairs = bool(cx <= 32767 and wmax <= 32767)
    KP = (KW + 1) // 2
    wp = np.zeros((Cout, KH, 2 * KP), np.int64)
    wp[:, :, :KW] = wc
    wpair = np.ascontiguousarray(((wp[:, :, 0::2] & 0xFFFF) | ((wp[:, :, 1::2] & 0xFFFF) << 16)).astype(np.uint32)
                                 .view(np.int32))
    bias_v = b64 if b64 is not None else np.zeros(Cout, np.int64)
    pt, pl = p.pads[0], p.pads[1]
    (sh, sw), (dh, dw) = p.strides, p.dilations
    OH = (H + pt + p.pads[2] - dh * (KH - 1) - 1) // sh + 1
    OW = (W + pl + p.pads[3] - dw * (KW - 1) - 1) // sw + 1
    if OH < 1 or OW < 1:
        return None

    def fn(x_q, w_q, bias_q, pp):
        xx = np.ascontiguousarray(x_q)
        if rq is None:
            out = np.empty((NB, Cout, OH, OW), np.int32 if pp.accum.bits <= 32 else np.int64)
            args = (0, 0, np.zeros(Cout, np.float32), np.zeros(Cout), np.zeros(Cout, np.int64),
                    np.zeros(Cout, np.int64), np.zeros(Cout, np.float32), 0, 0, 0, 0)
        else:
            rp, code, rnd = rq
            out = np.empty((NB, Cout, OH, OW), rp.out_fmt.storage_dtype)

            def per(a, dt):
                a = np.asarray(a, dt)
                return np.ascontiguousarray(np.broadcast_to(a, (Cout,)) if a.size == 1 else a)
            args = (1, code, per(rp.multiplier, np.float32), per(rp.multiplier, np.float64), per(rp.m0, np.int64),
                    per(rp.shift, np.int64), per(rp.bias_term, np.float32), rp.out_zero_point, rp.act_min,
                    rp.act_max, rnd)
        clamps = np.zeros(max(NB * Cout, 1), np.int64)
        _dw_run(xx.reshape(-1).view(np.uint8), NB, C, H, W, xx.dtype.itemsize, xx.dtype.kind == "i", wc32, wpair,
                pairs, Cout // C, sh, sw, dh, dw, pt, pl, OH, OW, zx, bias_v,
                out.reshape(-1).view(np.uint8),
                out.dtype.itemsize, *args, clamps, out.dtype.itemsize <= 2)
        stats = KernelStats(macs=NB * OH * OW * Cout * KH * KW, acc_overflows=0, pair_saturations=0,
                            out_clamped=int(clamps.sum()))
        return out, stats
    return fn

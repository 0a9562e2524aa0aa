"""``hwsim bench``: throughput of the integer kernels next to their peers, in one run.

Measures, on this machine and in this process, every kernel (GEMM, 3x3 / 1x1 conv as
implicit GEMM, depthwise 3x3) x bit-width pair (W8A8 with uint8 and int8 activations,
W4A8, W8A16, W16A16) x shape, with requantization included (the public ``qgemm`` /
``qconv2d``, i.e. whichever path :mod:`hwsim.kernels.dispatch` picks), at 1 and 2 threads,
and in the same run the peers: NumPy float32 matmul (always), ONNX Runtime MatMulInteger /
QLinearConv u8s8 and its float32 MatMul / Conv (when onnxruntime is installed), torch when
installed, and the machine's VNNI peak (a register-only ``vpdpbusd`` / ``vpdpwssd`` loop) and, on
CPUs with AMX, its ``tdpbusd`` peak and the VNNI kernels' own figure beside the AMX one.
Reports GOP/s (2 x MACs / s, best of the repetitions) and ratios.

This module is also the measurement library of ``bench/`` (pytest-benchmark).

Example
-------
>>> from hwsim.cli.bench import gemm_case
>>> case = gemm_case("W8A8", 8, 16, 64)
>>> case.ops
16384
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "DESCRIPTION", "add_arguments", "run", "Case", "gemm_case", "conv_case", "depthwise_case",
    "time_best", "measure", "format_table", "startup_probe", "measure_startup", "GEMM_SHAPES", "CONV_SHAPES",
    "DW_SHAPES", "PAIRS",
]

DESCRIPTION = (
    "Benchmark the integer kernels (requantization included) against NumPy float32 matmul, ONNX Runtime\n"
    "MatMulInteger/QLinearConv u8s8 and float32, torch (when installed) and the measured VNNI (and AMX)\n"
    "peak, all in one run. On AMX CPUs the VNNI kernels are measured beside the AMX ones (column VNNI).\n"
    "Prints a table (GOP/s and ratios); --json writes it as JSON. HWSIM_KERNEL_PATH=vnni|portable in the\n"
    "environment restricts the kernels to that path (default auto: AMX, then VNNI, where the CPU has them).\n"
    "The machine should be otherwise idle: ratios are measured within this run.")

#: (M, K, N)
GEMM_SHAPES = [(256, 256, 256), (1024, 1024, 1024), (64, 4096, 4096), (12544, 288, 64), (3136, 576, 64)]
#: (C, H, W, Cout, k, stride, pad): 3x3 convs whose implicit GEMMs are 12544x288x64 and 3136x576x64, and a 1x1
CONV_SHAPES = [(32, 112, 112, 64, 3, 1, 1), (64, 56, 56, 64, 3, 1, 1), (64, 56, 56, 256, 1, 1, 0)]
#: (C, H, W, k, stride, pad)
DW_SHAPES = [(32, 112, 112, 3, 1, 1)]
PAIRS = ["W8A8", "W8A8s8", "W4A8", "W8A16", "W16A16"]

QUICK_GEMM = [(256, 256, 256), (3136, 576, 64)]
QUICK_CONV = [(64, 56, 56, 64, 3, 1, 1)]


@dataclass
class Case:
    """One benchmark problem: ``call()`` runs it once; ``ops`` = 2 x MACs."""

    kernel: str
    pair: str
    shape: str
    ops: int
    call: object
    x: np.ndarray = None
    w: object = None
    extra: dict = field(default_factory=dict)


def _ro(a):
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


def _pair_setup(pair, rng, xshape, wshape, nout):
    """(x, w, bias, accum, requant) for a pair; weights and bias read-only like an executor's constants
    (packing and planning are remembered for them)."""
    from hwsim.bits import IntFormat
    from hwsim.kernels import AccumParams, RequantParams, pack_int4

    if pair in ("W8A8", "W4A8"):
        x = rng.integers(0, 256, xshape).astype(np.uint8)
        zx, fmt, scheme, acc = 128, IntFormat(8, signed=False), "onnxruntime", AccumParams()
    elif pair == "W8A8s8":
        x = rng.integers(-128, 128, xshape).astype(np.int8)
        zx, fmt, scheme, acc = 0, IntFormat(8), "onnxruntime", AccumParams()
    else:
        x = rng.integers(-32768, 32768, xshape).astype(np.int16)
        zx, fmt, scheme, acc = 0, IntFormat(16), "tflite_16x8", AccumParams(bits=64)
    if pair == "W4A8":
        from hwsim.kernels import PackedInt4
        p4 = pack_int4(rng.integers(-8, 8, wshape).astype(np.int8))
        w = PackedInt4(_ro(p4.data), p4.shape, p4.signed)
    elif pair == "W16A16":
        # 15-bit weights: a vpdpwssd pair of full-range int16 products can reach 2^31 (see report)
        w = _ro(rng.integers(-16384, 16384, wshape).astype(np.int16))
    else:
        w = _ro(rng.integers(-127, 128, wshape).astype(np.int8))
    bias = _ro(rng.integers(-1000, 1000, nout).astype(np.int32))
    sw = rng.uniform(0.001, 0.01, nout)
    rp = RequantParams.create(scheme, 0.02, sw, 0.3 if fmt.bits == 8 else 0.002, fmt, 0)
    return x, w, bias, zx, acc, rp


def gemm_case(pair, M, K, N, seed=0) -> Case:
    """qgemm of (M, K) x (K, N) for ``pair`` (see :data:`PAIRS`), requantized."""
    from hwsim.kernels import GemmParams, qgemm

    rng = np.random.default_rng(seed)
    x, w, bias, zx, acc, rp = _pair_setup(pair, rng, (M, K), (K, N), N)
    p = GemmParams(x_zero_point=zx, accum=acc, requant=rp)
    return Case("gemm", pair, f"{M}x{K}x{N}", 2 * M * K * N, lambda: qgemm(x, w, bias, p), x, w,
                dict(M=M, K=K, N=N, bias=bias, params=p))


def conv_case(pair, C, H, W, Cout, k, stride, pad, seed=0) -> Case:
    """qconv2d NCHW (1, C, H, W) with a (Cout, C, k, k) kernel, requantized."""
    from hwsim.kernels import ConvParams, qconv2d

    rng = np.random.default_rng(seed)
    x, w, bias, zx, acc, rp = _pair_setup(pair, rng, (1, C, H, W), (Cout, C, k, k), Cout)
    p = ConvParams(strides=(stride, stride), pads=(pad,) * 4, x_zero_point=zx, accum=acc, requant=rp)
    OH = (H + 2 * pad - k) // stride + 1
    OW = (W + 2 * pad - k) // stride + 1
    return Case(f"conv{k}x{k}", pair, f"{C}x{H}x{W}->{Cout}", 2 * OH * OW * Cout * C * k * k,
                lambda: qconv2d(x, w, bias, p), x, w,
                dict(C=C, H=H, W=W, Cout=Cout, k=k, stride=stride, pad=pad, bias=bias, params=p, M=OH * OW,
                     K=C * k * k, N=Cout))


def depthwise_case(pair, C, H, W, k, stride, pad, seed=0) -> Case:
    """Depthwise qconv2d (groups = C), requantized."""
    from hwsim.kernels import ConvParams, qconv2d

    rng = np.random.default_rng(seed)
    x, w, bias, zx, acc, rp = _pair_setup(pair, rng, (1, C, H, W), (C, 1, k, k), C)
    p = ConvParams(strides=(stride, stride), pads=(pad,) * 4, groups=C, x_zero_point=zx, accum=acc, requant=rp)
    OH = (H + 2 * pad - k) // stride + 1
    OW = (W + 2 * pad - k) // stride + 1
    return Case(f"dw{k}x{k}", pair, f"{C}x{H}x{W}", 2 * OH * OW * C * k * k, lambda: qconv2d(x, w, bias, p),
                x, w, dict(C=C, H=H, W=W, k=k, stride=stride, pad=pad, bias=bias, params=p))


def time_best(fn, min_time=0.2, min_reps=3, max_reps=None) -> float:
    """Best wall time of ``fn()`` over ``min_time`` seconds of calls (one warm-up call first;
    at least ``min_reps`` calls, at most ``max_reps`` when given).

    A window is ``min_time`` long however fast the call. A cap of 200 calls (before) made a
    256^3 GEMM's window 4 ms, whose best on this shared machine says more about the moment
    than the kernel: nine windows of each length, both sides alternating in two processes,
    ours 22.0-29.2 us in 4 ms windows against 19.4-22.4 in 0.3 s ones, the ratio to
    onnxruntime 0.73-1.19 against 1.04-1.19."""
    fn()
    best = float("inf")
    total = 0.0
    n = 0
    while n < min_reps or (total < min_time and (max_reps is None or n < max_reps)):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        total += dt
        n += 1
    return best


@contextmanager
def _threads(n):
    import numba
    old = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        from threadpoolctl import threadpool_limits
        ctx = threadpool_limits(n)
    except ImportError:   # numpy's BLAS keeps its own thread count
        ctx = None
    try:
        yield
    finally:
        numba.set_num_threads(old)
        if ctx is not None:
            ctx.restore_original_limits()


# ------------------------------------------------------------------------------------------
# peers
# ------------------------------------------------------------------------------------------

def _ort_session(model, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    # idle ORT threads must not spin on the cores our kernels are measured on next
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _onnx_model(nodes, inputs, outputs, inits):
    from onnx import helper
    g = helper.make_graph(nodes, "bench", inputs, outputs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def _ort_gemm_peers(M, K, N, threads, rng):
    """{name: callable} for ORT MatMulInteger u8s8 and ORT float32 MatMul."""
    from onnx import TensorProto, helper, numpy_helper
    x = rng.integers(0, 256, (M, K)).astype(np.uint8)
    w = rng.integers(-127, 128, (K, N)).astype(np.int8)
    mi = _onnx_model([helper.make_node("MatMulInteger", ["x", "w", "zx"], ["y"])],
                     [helper.make_tensor_value_info("x", TensorProto.UINT8, [M, K])],
                     [helper.make_tensor_value_info("y", TensorProto.INT32, [M, N])],
                     [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(128, np.uint8), "zx")])
    s1 = _ort_session(mi, threads)
    xf = x.astype(np.float32)
    mf = _onnx_model([helper.make_node("MatMul", ["x", "w"], ["y"])],
                     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [M, K])],
                     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [M, N])],
                     [numpy_helper.from_array(w.astype(np.float32), "w")])
    s2 = _ort_session(mf, threads)
    return {"ort_int": lambda: s1.run(None, {"x": x}), "ort_f32": lambda: s2.run(None, {"x": xf})}


def _ort_conv_peers(C, H, W, Cout, k, stride, pad, groups, threads, rng):
    """{name: callable} for ORT QLinearConv u8s8 and ORT float32 Conv."""
    from onnx import TensorProto, helper, numpy_helper
    x = rng.integers(0, 256, (1, C, H, W)).astype(np.uint8)
    w = rng.integers(-127, 128, (Cout, C // groups, k, k)).astype(np.int8)
    b = rng.integers(-1000, 1000, Cout).astype(np.int32)
    attrs = dict(kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4, group=groups)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"),
             numpy_helper.from_array(np.array(0.02, np.float32), "sx"),
             numpy_helper.from_array(np.array(128, np.uint8), "zx"),
             numpy_helper.from_array(np.array(0.005, np.float32), "sw"),
             numpy_helper.from_array(np.array(0, np.int8), "zw"),
             numpy_helper.from_array(np.array(0.3, np.float32), "sy"),
             numpy_helper.from_array(np.array(128, np.uint8), "zy")]
    q = _onnx_model([helper.make_node("QLinearConv", ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy", "b"], ["y"],
                                      **attrs)],
                    [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, C, H, W])],
                    [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits)
    s1 = _ort_session(q, threads)
    xf = x.astype(np.float32)
    f = _onnx_model([helper.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)],
                    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, H, W])],
                    [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                    [numpy_helper.from_array(w.astype(np.float32), "w"),
                     numpy_helper.from_array(b.astype(np.float32), "b")])
    s2 = _ort_session(f, threads)
    return {"ort_int": lambda: s1.run(None, {"x": x}), "ort_f32": lambda: s2.run(None, {"x": xf})}


def _torch_peers(kind, dims, threads, rng):
    """torch int8 peers when torch is installed: ``_int_mm`` (s8s8 GEMM) and quantized conv."""
    try:
        import torch
    except ImportError:
        return {}
    torch.set_num_threads(threads)
    out = {}
    try:
        if kind == "gemm":
            M, K, N = dims
            a = torch.randint(-128, 127, (M, K), dtype=torch.int8)
            b = torch.randint(-128, 127, (K, N), dtype=torch.int8)
            torch._int_mm(a, b)
            out["torch_int"] = lambda: torch._int_mm(a, b)
        else:
            C, H, W, Cout, k, stride, pad, groups = dims
            torch.backends.quantized.engine = "x86" if "x86" in torch.backends.quantized.supported_engines \
                else torch.backends.quantized.supported_engines[-1]
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                xq = torch.quantize_per_tensor(torch.rand(1, C, H, W), 0.02, 128, torch.quint8)
            conv = torch.ao.nn.quantized.Conv2d(C, Cout, k, stride=stride, padding=pad, groups=groups)
            conv.scale, conv.zero_point = 0.3, 128
            conv(xq)
            out["torch_int"] = lambda: conv(xq)
    except Exception:   # an op missing in this torch build: no torch peer for this row
        return {}
    return out


# ------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------

def _gops(ops, t):
    return ops / t / 1e9 if t > 0 else 0.0


def _path_taken(case) -> str:
    """Which kernels run ``case`` now: "amx", "vnni" or "portable"."""
    from hwsim.kernels import dispatch
    kind = "gemm" if case.kernel == "gemm" else ("depthwise" if case.kernel.startswith("dw") else "conv")
    fn = dispatch.fast_path(kind, x=case.x, w=case.w, bias=case.extra["bias"], params=case.extra["params"])
    if fn is None:
        return "portable"
    return "amx" if fn.__module__.endswith(".amx") else "vnni"


def measure(quick=False, threads=(1, 2), min_time=None, with_portable=True, log=None, rounds=None) -> dict:
    """Run the whole suite; returns ``{"machine": ..., "peaks": ..., "rows": [...]}``.

    Per problem, ``rounds`` times (default 2, 1 with ``quick``): the peers, then each of our
    pairs, every timing the best over ``min_time`` seconds; a row keeps each side's best round."""
    from hwsim.kernels import cpu
    min_time = min_time if min_time is not None else (0.05 if quick else 0.3)
    rounds = rounds if rounds is not None else (1 if quick else 2)
    rng = np.random.default_rng(1)
    have_ort = True
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        have_ort = False
    gemms = QUICK_GEMM if quick else GEMM_SHAPES
    convs = QUICK_CONV if quick else CONV_SHAPES
    result = {"machine": {"cpu_flags_vnni": cpu.has_vnni(), "cpu_amx_int8": cpu.has_amx(),
                          "kernel_path": cpu.kernel_path(),
                          "numba_threads_max": __import__("numba").config.NUMBA_NUM_THREADS},
              "peaks": {}, "rows": []}
    peaks = {}
    if cpu.kernel_path() in ("vnni", "amx"):
        from hwsim.kernels import vnni
        for fam in ("b8", "w16"):
            peaks[fam] = max(vnni.peak_gops(fam) for _ in range(3))
        result["peaks"] = {"vpdpbusd_gops_1core": peaks["b8"], "vpdpwssd_gops_1core": peaks["w16"]}
    if cpu.kernel_path() == "amx":
        from hwsim.kernels import amx
        peaks["amx"] = max(amx.peak_gops() for _ in range(3))
        result["peaks"]["tdpbusd_gops_1core"] = peaks["amx"]
    specs = []
    for (M, K, N) in gemms:
        specs.append(("gemm", (M, K, N)))
    for s in convs:
        specs.append(("conv", s))
    for s in DW_SHAPES:
        specs.append(("dw", s))
    for nt in threads:
        with _threads(nt):
            for kind, dims in specs:
                if kind == "gemm":
                    M, K, N = dims
                    cases = [gemm_case(p, M, K, N) for p in PAIRS]
                    af = rng.standard_normal((M, K)).astype(np.float32)
                    wf = rng.standard_normal((K, N)).astype(np.float32)
                    peers = {"np_f32": lambda af=af, wf=wf: af @ wf}
                    if have_ort:
                        peers.update(_ort_gemm_peers(M, K, N, nt, rng))
                    peers.update(_torch_peers("gemm", dims, nt, rng))
                elif kind == "conv":
                    C, H, W, Cout, k, s, pd = dims
                    cases = [conv_case(p, *dims) for p in PAIRS]
                    Mi, Ki = cases[0].extra["M"], cases[0].extra["K"]
                    af = rng.standard_normal((Mi, Ki)).astype(np.float32)
                    wf = rng.standard_normal((Ki, Cout)).astype(np.float32)
                    peers = {"np_f32": lambda af=af, wf=wf: af @ wf}
                    if have_ort:
                        peers.update(_ort_conv_peers(C, H, W, Cout, k, s, pd, 1, nt, rng))
                    peers.update(_torch_peers("conv", (C, H, W, Cout, k, s, pd, 1), nt, rng))
                else:
                    C, H, W, k, s, pd = dims
                    cases = [depthwise_case(p, *dims) for p in PAIRS]
                    peers = {}
                    if have_ort:
                        peers.update(_ort_conv_peers(C, H, W, C, k, s, pd, C, nt, rng))
                    peers.update(_torch_peers("conv", (C, H, W, C, k, s, pd, C), nt, rng))
                ops = cases[0].ops
                # rounds of peers then our cases, each timing's best kept: on a shared machine a
                # 0.3 s window can be 45 % slow as a whole (ours 809-1200 us, ORT 1094-1230 us on
                # 1024^3 within a minute), so both sides get the same number of windows
                peer_t = {name: float("inf") for name in peers}
                case_t = [float("inf")] * len(cases)
                for _ in range(rounds):
                    for name, fn in peers.items():
                        peer_t[name] = min(peer_t[name], time_best(fn, min_time))
                        time.sleep(0.25)    # let the peer's OpenMP threads stop spinning before the next timing
                    # settle: the first parallel region after a peer's threads ran is slow (thread
                    # pools handing the cores back); run our first case for a while, untimed
                    time_best(cases[0].call, min_time)
                    for i, case in enumerate(cases):
                        case_t[i] = min(case_t[i], time_best(case.call, min_time))
                        time.sleep(0.05)
                peer_g = {name: _gops(ops, t) for name, t in peer_t.items()}
                w8a8 = None
                for case, t in zip(cases, case_t):
                    path = _path_taken(case)
                    g = _gops(case.ops, t)
                    row = {"kernel": case.kernel, "pair": case.pair, "shape": case.shape, "threads": nt,
                           "path": path, "gops": g}
                    if path == "amx":
                        with cpu.forced_path("vnni"):
                            row["vnni_gops"] = _gops(case.ops, time_best(case.call, min_time))
                        if case.pair in ("W8A8", "W8A8s8", "W4A8"):
                            row["amx_peak_frac"] = g / (peaks["amx"] * nt)
                    if with_portable and path != "portable" and (not quick or case.pair == "W8A8"):
                        with cpu.forced_path("portable"):
                            row["portable_gops"] = _gops(case.ops, time_best(case.call, min_time, max_reps=5))
                    if nt > 1:
                        # nt threads against one thread in alternating windows, two each: a ratio
                        # of two timings taken minutes apart (the one-thread pass ran first)
                        # carries the machine's drift
                        tn = t1 = float("inf")
                        for _ in range(2):
                            tn = min(tn, time_best(case.call, min_time))
                            with _threads(1):
                                t1 = min(t1, time_best(case.call, min_time))
                        row["scaling"] = t1 / tn
                    for name, pg in peer_g.items():
                        row[name + "_gops"] = pg
                    if case.pair == "W8A8":
                        w8a8 = g
                    if case.pair == "W4A8" and w8a8:
                        row["vs_W8A8"] = g / w8a8
                    fam = "w16" if case.pair in ("W8A16", "W16A16") else "b8"
                    if fam in peaks and case.kernel[:2] != "dw":
                        row["peak_frac"] = g / (peaks[fam] * nt)
                    result["rows"].append(row)
                    if log:
                        log(_fmt_row(row))
    # thread scaling across the passes too (the table's x1thr is the back-to-back ratio above)
    one = {(r["kernel"], r["pair"], r["shape"]): r["gops"] for r in result["rows"] if r["threads"] == 1}
    for r in result["rows"]:
        if r["threads"] > 1 and (r["kernel"], r["pair"], r["shape"]) in one:
            r["scaling_across_passes"] = r["gops"] / one[(r["kernel"], r["pair"], r["shape"])]
    return result


_COLS = [("kernel", "kernel", "{:<7}"), ("pair", "pair", "{:<7}"), ("shape", "shape", "{:<17}"),
         ("threads", "thr", "{:>3}"), ("path", "path", "{:<8}"), ("gops", "GOP/s", "{:>7.1f}"),
         ("peak_frac", "%peak", "{:>6.0%}"), ("amx_peak_frac", "%AMXpk", "{:>6.0%}"),
         ("x_ort_int", "xORTint", "{:>7.2f}"),
         ("x_ort_f32", "xORTf32", "{:>7.2f}"), ("x_torch_int", "xTorch", "{:>6.2f}"),
         ("x_np_f32", "xNPf32", "{:>6.2f}"), ("vs_W8A8", "xW8A8", "{:>5.2f}"),
         ("scaling", "x1thr", "{:>5.2f}"), ("vnni_gops", "VNNI", "{:>7.1f}"),
         ("portable_gops", "portable", "{:>8.1f}"),
         ("ort_int_gops", "ORTint", "{:>7.1f}"), ("ort_f32_gops", "ORTf32", "{:>7.1f}"),
         ("np_f32_gops", "NPf32", "{:>6.1f}")]


def _with_ratios(row):
    r = dict(row)
    for peer in ("ort_int", "ort_f32", "torch_int", "np_f32"):
        if r.get(peer + "_gops"):
            r["x_" + peer] = r["gops"] / r[peer + "_gops"]
    return r


def _fmt_row(row):
    r = _with_ratios(row)
    out = []
    for key, head, fmt in _COLS:
        width = len(fmt.format(0) if "f" in fmt or "%" in fmt else fmt.format(""))
        v = r.get(key)
        out.append(fmt.format(v) if v is not None else " " * max(width - 1, 0) + "-")
    return " ".join(out)


def format_table(result) -> str:
    """The rows as a fixed-width text table (ratios are ours / peer's GOP/s)."""
    heads = []
    for key, head, fmt in _COLS:
        width = len(fmt.format(0) if "f" in fmt or "%" in fmt else fmt.format(""))
        heads.append(head.rjust(width) if fmt[2] == ">" else head.ljust(width))
    lines = [" ".join(heads)]
    lines += [_fmt_row(r) for r in result["rows"]]
    pk = result.get("peaks") or {}
    if pk:
        amx = (f", AMX tdpbusd {pk['tdpbusd_gops_1core']:.0f} GOP/s (%AMXpk)" if "tdpbusd_gops_1core" in pk
               else "")
        lines.append(f"peak (register-only loop, 1 core): vpdpbusd {pk['vpdpbusd_gops_1core']:.0f} GOP/s, "
                     f"vpdpwssd {pk['vpdpwssd_gops_1core']:.0f} GOP/s{amx}; %peak = GOP/s / (VNNI peak x threads)")
        if "tdpbusd_gops_1core" in pk:
            lines.append("path amx: Intel AMX tiles (kernels/amx.py); VNNI = the same problem on the AVX-512 VNNI "
                         "kernels (HWSIM_KERNEL_PATH=vnni)")
    st = result.get("startup")
    if st:
        lines.append(f"start-up (new process, Numba cache warm): import {st['import_s']:.3f} s, Numba init "
                     f"{st['numba_init_s']:.3f} s, first call of all {st['kernels']} kernel problems "
                     f"{st['first_calls_s']:.3f} s")
    return "\n".join(lines)


def startup_probe() -> dict:
    """In a fresh process: time the import, Numba's one-time target initialisation (paid by
    the first compiled function of any kind; it imports NumPy/SciPy BLAS helpers), and the
    first call of every fast-path kernel (GEMM families u8/s8/int4/int16, conv, depthwise,
    requantized, peak loops). With a warm Numba cache the first calls only load machine code."""
    t0 = time.perf_counter()
    from hwsim.kernels import cpu, fixedpoint, vnni  # noqa: F401
    t1 = time.perf_counter()
    fixedpoint.wrap_int32(5)           # Numba's target context initialisation (+ one tiny cache load)
    t2 = time.perf_counter()
    n = 0
    for pair in PAIRS:
        for case in (gemm_case(pair, 7, 40, 70), conv_case(pair, 5, 6, 6, 8, 3, 1, 1),
                     depthwise_case(pair, 4, 6, 6, 3, 1, 1)):
            case.call()
            n += 1
    if cpu.kernel_path() in ("vnni", "amx"):
        vnni._peak_b8(10, 1)
        vnni._peak_w16(10, 1)
        n += 2
    if cpu.kernel_path() == "amx":
        from hwsim.kernels import amx
        amx._peak_loop(amx._CFG, np.ones(2048, np.uint8), np.ones(2048, np.uint8), np.zeros(256, np.int32), 1)
        n += 1
    t3 = time.perf_counter()
    return {"import_s": t1 - t0, "numba_init_s": t2 - t1, "first_calls_s": t3 - t2, "kernels": n}


def measure_startup() -> dict:
    """Warm the cache here, then run :func:`startup_probe` in a new process."""
    startup_probe()
    code = "import json; from hwsim.cli.bench import startup_probe; print(json.dumps(startup_probe()))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        from hwsim.errors import KernelError
        raise KernelError(f"start-up probe failed: {r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def add_arguments(p):
    p.add_argument("--quick", action="store_true",
                   help="a subset of shapes with short timings (finishes in under a minute on a warm cache)")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON (atomically)")
    p.add_argument("--threads", metavar="N", type=int, action="append",
                   help="thread count to measure (repeatable; default: 1 and 2)")
    p.add_argument("--min-time", type=float, metavar="S",
                   help="seconds of repetitions per measurement (default 0.3, --quick 0.05)")
    p.add_argument("--no-startup", action="store_true", help="skip the start-up (Numba cache load) measurement")


def run(args) -> int:
    from hwsim.errors import ConfigError
    threads = tuple(args.threads) if args.threads else (1, 2)
    if any(t < 1 for t in threads):
        raise ConfigError(f"--threads must be >= 1, got {list(threads)}")
    if args.min_time is not None and args.min_time <= 0:
        raise ConfigError(f"--min-time must be > 0, got {args.min_time}")
    result = measure(quick=args.quick, threads=threads, min_time=args.min_time, with_portable=True)
    if not args.no_startup:
        result["startup"] = measure_startup()
    print(format_table(result))
    if args.json:
        from hwsim.io import atomic_write_json
        atomic_write_json(args.json, result)
    return 0


if __name__ == "__main__":   # pragma: no cover
    sys.exit(run(__import__("argparse").Namespace(quick=True, json=None, threads=None, min_time=None,
                                                   no_startup=False)))

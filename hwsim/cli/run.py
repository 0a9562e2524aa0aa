"""``hwsim run``: execute a model in float, fake-quant or integer mode and save every output.

Float mode needs only the model and the input. The quantized modes (``fake``, ``int``)
take a hardware profile, calibration data and bit-widths; they are provided by
:mod:`hwsim.quant` through ``hwsim.quant.runner.run_mode(args, graph, feeds) -> dict``
(name -> float array), which this command calls; everything else (loading, writing,
the summary) is shared.
"""
from __future__ import annotations

import time

import numpy as np

from hwsim.errors import ConfigError

from ._common import add_model_arguments, load_graph

__all__ = ["DESCRIPTION", "add_arguments", "run", "execute", "compare_with_ort"]

DESCRIPTION = """\
Execute MODEL on the input X and write every graph output, keyed by output name, to an .npz.

  hwsim run model.onnx --input x.npy --mode float --out out.npz --ort
  hwsim run model.onnx --input x.npz --mode int --profile hw_profiles/cpu_onnxruntime.yaml \\
        --calib calib.npz --bits W8A8 --out out.npz --compare

X is a .npy array for a single-input model or an .npz keyed by input name."""

MODES = ("float", "fake", "int")
_QUANT_ONLY = ("profile", "calib", "bits", "config", "calibrator", "dynamic")


def add_arguments(p) -> None:
    add_model_arguments(p)
    p.add_argument("--input", "-i", required=True, metavar="X",
                   help=".npy (single-input model) or .npz keyed by input name")
    p.add_argument("--mode", choices=MODES, default="float",
                   help="float: NumPy float32 reference; fake: quantize-dequantize simulation; "
                        "int: integer kernels with the profile's arithmetic (default: float)")
    p.add_argument("--out", "-o", metavar="OUT.npz", help="write every graph output here, keyed by output name")
    p.add_argument("--ort", action="store_true",
                   help="also run the model with onnxruntime (float) on the same input and print, per output, "
                        "max|diff| relative to max|onnxruntime output|")
    q = p.add_argument_group("quantized modes (--mode fake|int)")
    q.add_argument("--profile", metavar="P.yaml", help="hardware profile (required for fake/int)")
    q.add_argument("--calib", metavar="DATA", help="calibration data (.npy/.npz, a batch of inputs); "
                                                     "default: the run input itself")
    q.add_argument("--bits", metavar="WxAy", help="one bit-width pair for every layer, e.g. W8A8")
    q.add_argument("--config", metavar="CFG.yaml", help="per-layer precision config (as written by 'hwsim search')")
    q.add_argument("--calibrator", metavar="NAME", help="activation range observer, e.g. minmax, percentile, mse, entropy")
    q.add_argument("--compare", action="store_true",
                   help="also run float (and fake-quant) and print the error of this mode against them")
    q.add_argument("--dynamic", action="store_true",
                   help="dynamic quantization: activation ranges from each batch at run time, weights static "
                        "(Conv/Gemm/MatMul accumulate in integer, other ops run in float; no --calib)")
    q.add_argument("--json", metavar="OUT.json",
                   help="write the quantization parameters, the integer report and the --compare table as JSON "
                        "(in float mode: the outputs' shapes and value ranges)")


def execute(args, graph, feeds) -> dict[str, np.ndarray]:
    """Run ``graph`` on ``feeds`` in ``args.mode``; returns {output name: array}."""
    if args.mode == "float":
        from hwsim.float_exec import run_float

        return run_float(graph, feeds)
    try:
        from hwsim.quant.runner import run_mode
    except ImportError:
        raise ConfigError(f"--mode {args.mode} is not available in this build "
                          "(hwsim.quant.runner.run_mode is missing); use --mode float") from None
    return run_mode(args, graph, feeds)


def run(args) -> int:
    from hwsim.io import atomic_write_npz, load_array_file

    if args.mode == "float":
        given = [f"--{k}" for k in _QUANT_ONLY if getattr(args, k, None)]
        if getattr(args, "compare", False):
            given.append("--compare")
        if given:
            raise ConfigError(f"{', '.join(given)} only apply to --mode fake|int (got --mode float)")
    t0 = time.perf_counter()
    prequantized = args.mode != "float" and _is_prequantized(args.model)
    if args.mode != "float" and not prequantized and not args.profile:
        raise ConfigError(f"--mode {args.mode} needs --profile P.yaml")
    graph = _load_for_run(args, prequantized)
    feeds = load_array_file(args.input, list(graph.input_names))
    t1 = time.perf_counter()
    outputs = execute(args, graph, feeds)
    t2 = time.perf_counter()
    print(f"{graph.name}: {len(graph.nodes)} nodes, mode {args.mode}, "
          f"import {t1 - t0:.2f} s, run {t2 - t1:.2f} s")
    width = max((len(k) for k in outputs), default=4)
    for name in graph.outputs:
        a = np.asarray(outputs[name])
        rng = f"min {a.min():.6g}  max {a.max():.6g}" if a.size and a.dtype.kind in "fiu" else ""
        print(f"  {name:<{width}}  shape {tuple(a.shape)}  {a.dtype.name}  {rng}")
    ort_cmp = None
    if getattr(args, "ort", False):
        ort_cmp = compare_with_ort(args.model, graph, feeds, outputs)
        for name, d in ort_cmp.items():
            print(f"  vs onnxruntime  {name:<{width}}  max|diff| {d['max_abs_diff']:.3g} = "
                  f"{d['rel_diff']:.3g} of max|ref| {d['max_abs_ref']:.6g}")
    if args.out:
        atomic_write_npz(args.out, {k: np.asarray(outputs[k]) for k in graph.outputs})
        print(f"wrote {args.out}")
    if args.mode == "float" and getattr(args, "json", None):
        from hwsim.io import atomic_write_json

        atomic_write_json(args.json, {
            "model": graph.name, "mode": "float", "import_s": t1 - t0, "run_s": t2 - t1,
            "inputs": {k: {"shape": list(np.shape(v)), "dtype": np.asarray(v).dtype.name} for k, v in feeds.items()},
            "outputs": {k: _stats(np.asarray(outputs[k])) for k in graph.outputs},
            **({"onnxruntime": ort_cmp} if ort_cmp is not None else {})})
        print(f"wrote {args.json}")
    return 0


def _is_prequantized(model_path) -> bool:
    """A model with quantization nodes runs as it is (its own scales), without a profile."""
    from hwsim.quant.qdq_import import is_quantized_model

    return is_quantized_model(model_path)


def _load_for_run(args, prequantized: bool):
    """The graph to run: the float importer's, or for a QOperator model (QLinearConv ...,
    which has no float form) the integer graph of :func:`hwsim.quant.qdq_import.import_quantized`."""
    from hwsim.errors import UnsupportedOpError

    try:
        return load_graph(args)
    except UnsupportedOpError:
        if not prequantized:
            raise
    if args.mode != "int" or getattr(args, "compare", False):
        raise ConfigError(f"{args.model} is a QOperator model (QLinearConv, ...): it runs only in integer, as it "
                          "is: use --mode int without --compare (or `hwsim validate` to check it against onnxruntime)")
    from hwsim.quant.qdq_import import import_quantized

    return import_quantized(args.model).graph


def compare_with_ort(model_path, graph, feeds, outputs) -> dict[str, dict]:
    """Run ``model_path`` with onnxruntime (CPU, float) on ``feeds``; per graph output the
    max absolute difference to ``outputs``, the reference's max magnitude and their ratio."""
    import onnxruntime as ort

    from hwsim.errors import ModelError
    from hwsim.float_exec import prepare_feeds

    fed = prepare_feeds(graph, feeds)
    try:
        so = ort.SessionOptions()
        so.log_severity_level = 3
        sess = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        ref = dict(zip(names, sess.run(names, {i.name: fed[i.name] for i in sess.get_inputs()})))
    except Exception as e:  # onnxruntime raises its own exception types
        raise ModelError(f"{model_path}: onnxruntime could not run the model "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})") from None
    out = {}
    for k in graph.outputs:
        r = np.asarray(ref[k], dtype=np.float64)
        a = np.asarray(outputs[k], dtype=np.float64)
        if r.shape != a.shape:
            raise ModelError(f"output '{k}': shape {a.shape} differs from onnxruntime's {r.shape}")
        diff = float(np.abs(a - r).max()) if r.size else 0.0
        mag = float(np.abs(r).max()) if r.size else 0.0
        out[k] = {"max_abs_diff": diff, "max_abs_ref": mag, "rel_diff": diff / mag if mag else diff}
    return out


def _stats(a: np.ndarray) -> dict:
    d = {"shape": list(a.shape), "dtype": a.dtype.name}
    if a.size and a.dtype.kind in "fiub":
        af = a.astype(np.float64)
        d.update(min=float(af.min()), max=float(af.max()), mean=float(af.mean()), std=float(af.std()))
    return d

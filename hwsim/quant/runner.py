"""The quantized modes of ``hwsim run`` (``--mode fake|int``, ``--compare``, ``--json``).

:func:`run_mode` is called by :mod:`hwsim.cli.run` after the model and the input are
loaded: it loads the profile, calibrates (static) or not (``--dynamic``), resolves the
precision (``--bits`` or ``--config``; default: every node at its highest allowed pair),
quantizes, runs the requested executor and, with ``--compare``, prints the per-node
float / fake-quant / integer table. Every file it writes goes through ``hwsim.io``'s
atomic writers, after all computation has succeeded.
"""
from __future__ import annotations

import time

import numpy as np

from hwsim.errors import ConfigError

from .calibrate import calibrate, check_feeds
from .compare import compare
from .config import load_config
from .fake_exec import run_fake
from .int_exec import run_int
from .observers import OBSERVERS
from .qgraph import quantize_graph, resolve_config

__all__ = ["run_mode", "prepare"]


def prepare(args, graph, feeds):
    """Profile, statistics and quantized graph for the command-line options in ``args``."""
    from hwsim.io import load_array_file
    from hwsim.profile import resolve_profile

    if getattr(args, "bits", None) and getattr(args, "config", None):
        raise ConfigError("give either --bits or --config, not both")
    observer = getattr(args, "calibrator", None) or "minmax"
    if observer not in OBSERVERS:
        raise ConfigError(f"--calibrator {observer!r} is not known; allowed: {', '.join(OBSERVERS)}")
    profile = resolve_profile(args.profile)
    dynamic = bool(getattr(args, "dynamic", False))
    check_feeds(graph, feeds, source=getattr(args, "input", "input"))
    if getattr(args, "config", None):
        config = load_config(args.config, graph, profile)
    else:
        config = getattr(args, "bits", None) or None
    config = resolve_config(graph, profile, config)   # fail on bad pairs before calibrating
    stats = None
    if not dynamic:
        if getattr(args, "calib", None):
            calib = load_array_file(args.calib, list(graph.input_names))
            source = args.calib
        else:
            calib, source = feeds, "the run input (no --calib given)"
        stats = calibrate(graph, calib, observer=observer)
        print(f"calibrated on {stats.num_samples} sample(s) from {source} ({observer})")
    elif getattr(args, "calib", None):
        raise ConfigError("--dynamic takes activation ranges from each batch; drop --calib")
    qg = quantize_graph(graph, profile, stats, config, dynamic=dynamic)
    return profile, stats, qg


_QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def _run_prequantized(args, graph, feeds) -> dict[str, np.ndarray]:
    """An already quantized (QDQ) model: run it as it is with its own scales and zero points.

    ``int`` runs :func:`hwsim.quant.qdq_import.run_quantized` (ONNX Runtime's integer
    arithmetic through ``hwsim.kernels``); ``fake`` runs the QDQ graph in float, which is
    exactly its quantize-dequantize simulation. ``--compare`` reports fake vs integer per output.
    """
    from hwsim.float_exec import run_float
    from hwsim.io import atomic_write_json
    from .compare import _lsb

    given = [f"--{k}" for k in ("bits", "config", "calib", "calibrator", "dynamic") if getattr(args, k, None)]
    if given:
        raise ConfigError(f"{args.model} is already quantized (QuantizeLinear/DequantizeLinear nodes): it runs with "
                          f"its own scales and zero points; drop {', '.join(given)}")
    check_feeds(graph, feeds, source=getattr(args, "input", "input"))
    unused = f"; profile {args.profile} not used" if args.profile else ""
    print(f"{args.model}: already quantized, run as it is with its own scales (ONNX Runtime arithmetic{unused})")
    payload: dict = {"model": graph.name, "mode": args.mode, "prequantized": True}
    fake = None
    if args.mode == "fake" or getattr(args, "compare", False):
        fake = run_float(graph, feeds)
    if args.mode == "int" or getattr(args, "compare", False):
        from .qdq_import import import_quantized, run_quantized
        qm = import_quantized(args.model)
        kstats: dict = {}
        ints = run_quantized(qm, feeds, stats=kstats)
        ov = {k: int(v.acc_overflows) for k, v in kstats.items() if v.acc_overflows}
        print(f"accumulator overflows: {sum(ov.values())}; float islands: {', '.join(qm.float_islands) or 'none'}")
        payload["int_report"] = {"acc_overflows": ov, "float_islands": list(qm.float_islands)}
    if getattr(args, "compare", False):
        rows = {}
        for t in graph.outputs:
            lsb = qm.lsb(t)
            mx, fr = _lsb(fake[t], ints[t], float(np.max(lsb))) if lsb is not None else (0, 0.0)
            rows[t] = {"max_lsb": mx, "frac_diff": fr, "elements": int(np.size(fake[t]))}
            print(f"output {t}: fake-quant (QDQ in float) vs integer: max {mx} LSB on {100 * fr:.2f}% of elements")
        payload["compare"] = {"outputs": rows}
    if getattr(args, "json", None):
        atomic_write_json(args.json, payload)
        print(f"wrote {args.json}")
    outs = fake if args.mode == "fake" else ints
    return {k: outs[k] for k in graph.outputs}


def run_mode(args, graph, feeds) -> dict[str, np.ndarray]:
    """Run ``--mode fake|int`` for the CLI; returns graph output name -> float32 array.

    A model that is already quantized (QDQ) runs as it is (see :func:`_run_prequantized`).
    """
    from hwsim.io import atomic_write_json

    if any(n.op in _QDQ_OPS for n in graph.nodes):
        return _run_prequantized(args, graph, feeds)
    t0 = time.perf_counter()
    profile, stats, qg = prepare(args, graph, feeds)
    pairs = sorted({str(p) for p in qg.config.values()})
    print(f"profile {profile.name}: {len(qg.config)} quantized layer(s) at {', '.join(pairs) or '-'}"
          f"{' (dynamic)' if qg.dynamic else ''}; quantize {time.perf_counter() - t0:.2f} s")
    payload = {"model": graph.name, "profile": profile.name, "mode": args.mode,
               "quantized_graph": qg.to_dict()}
    if args.mode == "fake":
        outs = run_fake(qg, feeds)
        report = None
    else:
        outs, report = run_int(qg, feeds)
        payload["int_report"] = report.to_dict()
        if report.float_islands:
            print(f"float islands (dequantize -> float -> quantize): {', '.join(report.float_islands)}")
        ov = {k: r.acc_overflows for k, r in report.nodes.items() if r.acc_overflows}
        print(f"accumulator overflows: {report.total_overflows}"
              + (f" in {', '.join(f'{k} ({v})' for k, v in ov.items())}" if ov else ""))
        ps = sum(r.pair_saturations for r in report.nodes.values())
        if ps:
            print(f"x86 int16 pair saturations: {ps}")
    if getattr(args, "compare", False):
        cmp = compare(qg, feeds)
        print(cmp.table())
        payload["compare"] = cmp.to_dict()
    if getattr(args, "json", None):
        atomic_write_json(args.json, payload)
        print(f"wrote {args.json}")
    return {k: outs[k] for k in graph.outputs}

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


def run_mode(args, graph, feeds) -> dict[str, np.ndarray]:
    """Run ``--mode fake|int`` for the CLI; returns graph output name -> float32 array."""
    from hwsim.io import atomic_write_json

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
    if getattr(args, "compare", False):
        cmp = compare(qg, feeds)
        print(cmp.table())
        payload["compare"] = cmp.to_dict()
    if getattr(args, "json", None):
        atomic_write_json(args.json, payload)
        print(f"wrote {args.json}")
    return {k: outs[k] for k in graph.outputs}

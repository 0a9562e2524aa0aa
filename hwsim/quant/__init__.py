"""Quantization: calibration, quantized graphs, fake-quant and integer execution.

The flow::

    stats = calibrate(graph, calib_data, observer="minmax")       # one float pass
    qg    = quantize_graph(graph, profile, stats, "W8A8")         # cheap; any config
    outs, report = run_int(qg, feeds)                              # integer, via hwsim.kernels
    outs_fake    = run_fake(qg, feeds)                             # quantize-dequantize in float
    cmp = compare(qg, feeds)                                       # per-node float / fake / int

Modules: :mod:`~hwsim.quant.qparams` (QuantParams), :mod:`~hwsim.quant.observers` (min-max,
percentile, MSE, entropy on kept histograms), :mod:`~hwsim.quant.calibrate`,
:mod:`~hwsim.quant.config` (per-layer precision YAML), :mod:`~hwsim.quant.qgraph`
(QuantizedGraph, Quantizer: quantizer sets, ReLU folding, shared scales, fixed ranges, bias),
:mod:`~hwsim.quant.int_exec` (integer executor through ``hwsim.kernels``, overflow report,
prefix cache), :mod:`~hwsim.quant.fake_exec`, :mod:`~hwsim.quant.compare`,
:mod:`~hwsim.quant.runner` (``hwsim run --mode fake|int``). Third-party QDQ / QOperator
models are imported by :mod:`hwsim.quant.qdq_import` (``hwsim validate``).

For many configs of one model (the mixed-precision search) call :func:`quantize_graph` with the
same ``stats`` object (or keep a :class:`Quantizer`): per-bit-width parameters, quantized
weights and kernel parameters are cached, and :func:`reusable_values` turns the integer
tensors of one run into a ``values=`` prefix cache for the next.
"""
from .calibrate import CalibrationStats, calibrate, check_feeds
from .config import (PrecisionConfig, config_nodes, load_config, save_config, uniform_config,
                     validate_config, allowed_pairs)
from .observers import OBSERVERS, TensorStats, observe_range
from .qgraph import INTEGER_OPS, NodePlan, QuantizedGraph, Quantizer, quantize_graph, resolve_config
from .qparams import QuantParams
from .int_exec import IntReport, NodeReport, reusable_values, run_int
from .fake_exec import run_fake
from .compare import CompareReport, NodeComparison, compare, sqnr_db

__all__ = [
    "QuantParams", "TensorStats", "OBSERVERS", "observe_range",
    "CalibrationStats", "calibrate", "check_feeds",
    "PrecisionConfig", "config_nodes", "load_config", "save_config", "uniform_config", "validate_config",
    "allowed_pairs",
    "INTEGER_OPS", "NodePlan", "QuantizedGraph", "Quantizer", "quantize_graph", "resolve_config",
    "run_int", "IntReport", "NodeReport", "reusable_values", "run_fake",
    "compare", "CompareReport", "NodeComparison", "sqnr_db",
]

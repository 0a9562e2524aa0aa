"""Quantization: calibration, quantized graphs, fake-quant and integer execution.

The flow::

    stats = calibrate(graph, calib_data, observer="minmax")       # one float pass
    qg    = quantize_graph(graph, profile, stats, "W8A8")         # cheap; any config
    outs, report = run_int(qg, feeds)                              # integer, via hwsim.kernels
    outs_fake    = run_fake(qg, feeds)                             # quantize-dequantize in float
    cmp = compare(qg, feeds)                                       # per-node float / fake / int

See each module's docstring for details.
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

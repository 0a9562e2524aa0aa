"""Cost model: hand-computed examples (3x3 conv, depthwise conv, Gemm) checked exactly."""
import copy
import time

import numpy as np
import pytest

from hwsim.bits import BitPair
from hwsim.cost import CostModel, evaluate_cost, metric_value, node_macs
from hwsim.errors import ConfigError
from hwsim.graph import Graph, Node, TensorInfo
from hwsim.profile import MetricName, Metric, parse_profile, shipped_profile, list_shipped_profiles

REL = 1e-12

PROFILE = {
    "name": "toy", "description": "round numbers for hand-checked costs", "version": "1",
    "candidates": ["W4A8", "W8A8", "W8A16"],
    "op_overrides": {"Gemm": ["W4A8", "W8A8"]},
    "quantization": {"weight": {"symmetric": True, "granularity": "per_channel"},
                     "activation": {"signedness": "signed", "symmetric": False}},
    "arithmetic": {"accumulator_bits": 32, "overflow": "wrap", "requant": "onnxruntime",
                   "rounding": "half_even", "bias_bits": 32},
    "cost_model": {
        "clock_hz": 1.0e9, "utilization": 0.5, "overhead_s": 1.0e-6,
        "macs_per_cycle": {
            "W4A8": {"conv": 200, "depthwise": 4, "matmul": 100, "elementwise": 4},
            "W8A8": {"conv": 100, "depthwise": 4, "matmul": 50, "elementwise": 4},
            "W8A16": {"conv": 50, "depthwise": 2, "matmul": 25, "elementwise": 2}},
        "memory": {"levels": [{"name": "sram", "bandwidth_bytes_per_s": 1.0e9, "energy_pj_per_byte": 1.0},
                              {"name": "dram", "bandwidth_bytes_per_s": 1.0e8, "energy_pj_per_byte": 10.0}],
                   "weights_from": "dram", "activations_from": "sram"},
        "energy_pj_per_mac": {"W4A8": 0.25, "W8A8": 0.5, "W8A16": 1.0},
        "bops_per_mac": {"W4A8": 40},
        "precision_conversion": {"seconds_per_element": 1.0e-9, "energy_pj_per_element": 2.0},
    },
    "metric": {"name": "latency", "reference": "W8A8"},
}


def toy_profile(**metric):
    d = copy.deepcopy(PROFILE)
    d["metric"].update(metric)
    return parse_profile(d, "toy.yaml")


def small_cnn():
    """x(1,3,8,8) -conv3x3(8, pad 1)-> relu -dw3x3-> GAP -> flatten -> Gemm(8->4)."""
    f = np.float32
    consts = {"w1": np.zeros((8, 3, 3, 3), f), "b1": np.zeros(8, f), "w2": np.zeros((8, 1, 3, 3), f),
              "b2": np.zeros(8, f), "w3": np.zeros((4, 8), f), "b3": np.zeros(4, f)}
    nodes = (
        Node("conv", "Conv", ("x", "w1", "b1"), ("c1",), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "group": 1}),
        Node("relu", "Relu", ("c1",), ("r1",)),
        Node("dw", "Conv", ("r1", "w2", "b2"), ("d1",),
             {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "group": 8, "depthwise": True}),
        Node("gap", "GlobalAveragePool", ("d1",), ("g",)),
        Node("flat", "Flatten", ("g",), ("fl",), {"axis": 1}),
        Node("fc", "Gemm", ("fl", "w3", "b3"), ("y",), {"transB": 1}),
    )
    shapes = {"x": (1, 3, 8, 8), "c1": (1, 8, 8, 8), "r1": (1, 8, 8, 8), "d1": (1, 8, 8, 8), "g": (1, 8, 1, 1),
              "fl": (1, 8), "y": (1, 4)}
    shapes.update({k: v.shape for k, v in consts.items()})
    return Graph("small_cnn", (TensorInfo("x", (None, 3, 8, 8)),), ("y",), nodes, consts, shapes)


def test_conv3x3_by_hand():
    r = CostModel(small_cnn(), toy_profile()).evaluate("W8A8")
    c = r.node("conv")
    # 8x8x8 outputs x (3 input channels x 3 x 3) = 512 x 27
    assert c.macs == 13824
    assert c.bops == 13824 * 64
    assert c.weight_bytes == 216 + 32            # 216 int8 weights + 8 int32 biases
    assert (c.activation_in_bytes, c.activation_out_bytes) == (192, 512)
    assert c.compute_s == pytest.approx(2.7648e-7, rel=REL)     # 13824 / (100 * 0.5 * 1e9)
    assert c.memory_s == pytest.approx(2.48e-6, rel=REL)        # 248 B from dram at 1e8 B/s
    assert c.latency_s == pytest.approx(3.48e-6, rel=REL)       # + 1 us overhead
    assert c.bound == "memory"
    assert c.energy_j == pytest.approx(1.0096e-8, rel=REL)      # 6912 + 2480 + 704 pJ
    assert c.pair == "W8A8" and c.op_class == "conv"
    assert c.input_shapes == ((1, 3, 8, 8), (8, 3, 3, 3), (8,)) and c.output_shapes == ((1, 8, 8, 8),)


def test_depthwise_by_hand():
    r = CostModel(small_cnn(), toy_profile()).evaluate("W8A8")
    d = r.node("dw")
    assert d.op_class == "depthwise"
    assert d.macs == 4608                        # 512 outputs x 1 x 3 x 3
    assert d.weight_bytes == 72 + 32
    assert d.compute_s == pytest.approx(2.304e-6, rel=REL)      # 4608 / (4 * 0.5e9)
    assert d.memory_s == pytest.approx(1.04e-6, rel=REL)        # 104 B / 1e8 > 1024 B / 1e9
    assert d.latency_s == pytest.approx(3.304e-6, rel=REL)
    assert d.bound == "compute"
    assert d.energy_j == pytest.approx((2304 + 1040 + 1024) * 1e-12, rel=REL)


def test_gemm_by_hand_with_bop_table_and_int4_packing():
    r = CostModel(small_cnn(), toy_profile()).evaluate({"conv": "W8A8", "dw": "W8A8", "gap": "W8A8", "fc": "W4A8"})
    g = r.node("fc")
    assert g.macs == 32
    assert g.bops == 32 * 40                     # the profile's BOP table, not 4 x 8
    assert g.weight_bytes == 16 + 16             # 32 int4 weights two per byte + 4 int32 biases
    assert (g.activation_in_bytes, g.activation_out_bytes) == (8, 4)
    assert g.compute_s == pytest.approx(32 / (100 * 0.5e9), rel=REL)
    assert g.memory_s == pytest.approx(3.2e-7, rel=REL)
    assert g.latency_s == pytest.approx(1.32e-6, rel=REL)
    assert g.energy_j == pytest.approx((8 + 320 + 12) * 1e-12, rel=REL)


def test_passthrough_free_ops_and_totals():
    r = CostModel(small_cnn(), toy_profile()).evaluate("W8A8")
    relu, gap, flat = r.node("relu"), r.node("gap"), r.node("flat")
    # relu is conv's only consumer: fused into conv's requantization
    assert relu.pair == "W8A8" and relu.macs == 0 and relu.bound == "fused" and relu.latency_s == 0
    assert gap.macs == 512                       # one op per input element
    assert flat.latency_s == 0 and flat.bound == "none" and flat.weight_bytes == 0 and flat.pair is None
    t = r.totals
    assert t.macs == 13824 + 0 + 4608 + 512 + 0 + 32
    assert t.weight_bytes == 248 + 104 + 48
    assert t.peak_activation_bytes == 1024       # dw in + out (512 + 512); relu works in place
    assert t.memory_bytes == 1424
    assert t.conversions == 0 and t.conversion_latency_s == 0
    assert t.latency_s == pytest.approx(sum(n.latency_s for n in r.nodes), rel=REL)
    assert t.reference == "W8A8" and t.relative_bops == pytest.approx(1.0, rel=REL)
    d = r.to_dict()
    assert len(d["nodes"]) == 6 and d["totals"]["macs"] == t.macs and d["nodes"][0]["bytes"] == 248 + 192 + 512


def test_precision_conversion_between_groups():
    cm = CostModel(small_cnn(), toy_profile())
    r = cm.evaluate({"conv": "W8A8", "dw": "W8A16", "gap": "W8A16", "fc": "W8A8"})
    convs = {(c.tensor, c.consumer): c for c in r.conversions}
    # relu keeps conv's 8-bit width; dw reads it at 16 bits: 512 elements converted
    assert convs[("r1", "dw")].elements == 512 and convs[("r1", "dw")].from_bits == 8
    assert convs[("r1", "dw")].latency_s == pytest.approx(512e-9, rel=REL)
    # gap (A16) output is flattened (free, keeps 16 bits) then read by fc at 8 bits
    assert convs[("fl", "fc")].elements == 8
    assert r.totals.conversions == 2
    assert r.totals.conversion_latency_s == pytest.approx(520e-9, rel=REL)
    assert r.totals.conversion_energy_j == pytest.approx(1040e-12, rel=REL)
    assert r.totals.latency_s == pytest.approx(r.totals.node_latency_s + 520e-9, rel=REL)
    assert r.node("dw").activation_in_bytes == 1024   # 512 int16


def test_uniform_pairs_respect_op_overrides_and_measured_table():
    d = copy.deepcopy(PROFILE)
    d["cost_model"]["measured_latency"] = [
        {"op": "Conv", "input_shape": [1, 3, 8, 8], "pair": "W8A16", "seconds": 5.0e-5, "source": "toy"}]
    cm = CostModel(small_cnn(), parse_profile(d, "toy.yaml"))
    r = cm.evaluate("W8A16")
    assert r.node("fc").pair == "W8A8"          # Gemm only allows W4A8, W8A8
    assert r.node("conv").latency_s == 5.0e-5 and r.node("conv").bound == "measured"
    assert r.node("dw").bound != "measured"


def test_bad_pairs_are_config_errors():
    cm = CostModel(small_cnn(), toy_profile())
    with pytest.raises(ConfigError, match="no node named 'nope'"):
        cm.evaluate({"nope": "W8A8"})
    with pytest.raises(ConfigError, match="pair W2A8 is not supported by profile 'toy'; allowed: W4A8, W8A8, W8A16"):
        cm.evaluate({"conv": "W2A8"})


def test_metrics_and_references():
    g = small_cnn()
    cm = CostModel(g, toy_profile())
    r = cm.evaluate("W8A8")
    assert metric_value(r, "latency") == r.totals.latency_s
    assert metric_value(r, Metric(MetricName.BOPS, BitPair(8, 8))) == r.totals.bops
    assert metric_value(r, "energy") == r.totals.energy_j
    assert metric_value(r, "memory") == 1424
    assert cm.relative_metric("W8A8") == pytest.approx(1.0)
    assert cm.relative_metric("W4A8") < 1.0
    fp = CostModel(g, toy_profile(name="memory", reference="fp32"))
    # fp32: 4 bytes per weight/bias (216+8+72+8+32+4 = 340 values) + peak 4 x 1024
    assert fp.reference_value() == 340 * 4 + 4096
    bops32 = CostModel(g, toy_profile(name="bops", reference="fp32"))
    assert bops32.reference_value() == r.totals.macs * 1024
    assert bops32.evaluate("W8A8").totals.relative_bops == pytest.approx(64 / 1024)


def test_node_macs_matmul_and_pools():
    consts = {"B": np.zeros((16, 5), np.float32)}
    nodes = (Node("mm", "MatMul", ("a", "B"), ("m",)),
             Node("mp", "MaxPool", ("x", ), ("p",), {"kernel_shape": [2, 2], "strides": [2, 2]}))
    g = Graph("mm", (TensorInfo("a", (1, 7, 16)), TensorInfo("x", (1, 2, 4, 4))), ("m", "p"), nodes, consts,
              {"a": (1, 7, 16), "B": (16, 5), "m": (1, 7, 5), "x": (1, 2, 4, 4), "p": (1, 2, 2, 2)})
    assert node_macs(g, nodes[0]) == 7 * 5 * 16
    assert node_macs(g, nodes[1]) == 8 * 4


@pytest.mark.parametrize("name", list_shipped_profiles())
def test_every_shipped_profile_costs_the_small_cnn(name):
    p = shipped_profile(name)
    r = evaluate_cost(small_cnn(), p)
    assert r.totals.latency_s > 0 and r.totals.macs == 18976
    assert (r.totals.energy_j is not None) == p.cost_model.has_energy
    assert metric_value(r, p.metric) > 0


def test_evaluate_is_cheap_for_the_search():
    cm = CostModel(small_cnn(), toy_profile())
    pairs = [{"conv": a, "dw": b, "gap": b, "fc": c} for a in ("W4A8", "W8A8", "W8A16")
             for b in ("W4A8", "W8A8", "W8A16") for c in ("W4A8", "W8A8")]
    t0 = time.perf_counter()
    for _ in range(100):
        for p in pairs:
            cm.evaluate(p)
    per_call = (time.perf_counter() - t0) / (100 * len(pairs))
    assert per_call < 2e-3, per_call


def test_relu_not_fused_when_it_has_no_compute_producer_or_shares_the_tensor():
    f = np.float32
    consts = {"w": np.zeros((4, 4), f)}
    nodes = (Node("r0", "Relu", ("x",), ("a",)),                     # reads a graph input: not fused
             Node("fc", "Gemm", ("a", "w"), ("b",), {"transB": 1}),
             Node("r1", "Relu", ("b",), ("c",)),                     # b also read by add: not fused
             Node("add", "Add", ("b", "c"), ("y",)))
    shapes = {"x": (1, 4), "a": (1, 4), "w": (4, 4), "b": (1, 4), "c": (1, 4), "y": (1, 4)}
    g = Graph("nf", (TensorInfo("x", (1, 4)),), ("y",), nodes, consts, shapes)
    r = CostModel(g, toy_profile()).evaluate("W8A8")
    assert r.node("r0").bound != "fused" and r.node("r0").macs == 4
    assert r.node("r1").bound != "fused" and r.node("r1").macs == 4


def _peak_by_brute_force(graph, report_nodes, tbits):
    """Independent check: live tensors after each node, buffers of free/fused ops aliased."""
    alias = {}
    for nc in report_nodes:
        n = graph.node(nc.name)
        if nc.bound in ("none", "fused"):
            src = [t for t in n.inputs if t and not graph.is_constant(t)][0]
            alias[n.outputs[0]] = alias.get(src, src)
    root = lambda t: alias.get(t, t)  # noqa: E731
    order = [graph.node(nc.name) for nc in report_nodes]
    last = {}
    for i, n in enumerate(order):
        for t in n.inputs:
            if t and not graph.is_constant(t):
                last[root(t)] = i
    for o in graph.outputs:
        last[root(o)] = len(order)
    size = lambda t: (int(np.prod(graph.shape(t))) * tbits[t] + 7) // 8  # noqa: E731
    live = {t for t in graph.input_names}
    peak = sum(size(t) for t in live)
    for i, n in enumerate(order):
        live |= {t for t in n.outputs if t not in alias}
        peak = max(peak, sum(size(t) for t in live))
        live = {t for t in live if last.get(t, -1) > i}
    return peak


@pytest.mark.parametrize("builder", ["build_mobilenet_like", "build_transformer_block", "build_resnet_like"])
def test_peak_activation_matches_brute_force(builder):
    import random
    from hwsim.onnx_import import load_model
    from . import onnx_models
    g = load_model(getattr(onnx_models, builder)())
    cm = CostModel(g, shipped_profile("mobile_npu"))
    names = list(cm.uniform_pairs("W8A8"))
    rng = random.Random(0)
    for _ in range(5):
        cfg = {n: rng.choice(["W4A8", "W8A8", "W8A16"]) for n in names}
        cfg = {n: (p if BitPair.parse(p) in cm.profile.candidates_for(g.node(n).op) else "W8A16")
               for n, p in cfg.items()}
        r = cm.evaluate(cfg)
        tbits = {}
        for t in g.input_names:
            cons = [c for c in cm._input_first_consumers[t] if c in cfg]
            tbits[t] = BitPair.parse(cfg[cons[0]]).a if cons else 16
        for nc in r.nodes:
            n = g.node(nc.name)
            if n.name in cfg:
                a = BitPair.parse(cfg[n.name]).a
            else:
                a = tbits[[t for t in n.inputs if t and not g.is_constant(t)][0]]
            for t in n.outputs:
                tbits[t] = a
        assert r.totals.peak_activation_bytes == _peak_by_brute_force(g, r.nodes, tbits)


def test_weight_bits_of_weightless_ops_cost_nothing():
    cm = CostModel(small_cnn(), toy_profile())
    base = {"conv": "W8A8", "dw": "W8A8", "fc": "W8A8"}
    r8 = cm.evaluate(base | {"gap": "W8A8"})
    r4 = cm.evaluate(base | {"gap": "W4A8"})
    assert r4.node("gap").pair == "W4A8"
    assert r4.node("gap").bops == r8.node("gap").bops == 512 * 64
    assert r4.totals.latency_s == r8.totals.latency_s


def test_qdq_weights_count_as_weights():
    """A QDQ model's Conv reads DequantizeLinear(int8 constant): that is a weight, not an activation."""
    consts = {"wq": np.zeros((8, 3, 3, 3), np.int8), "ws": np.full(8, 0.1, np.float32),
              "wz": np.zeros(8, np.int8), "b1": np.zeros(8, np.float32)}
    nodes = (Node("dq_w", "DequantizeLinear", ("wq", "ws", "wz"), ("w1",), {"axis": 0}),
             Node("conv", "Conv", ("x", "w1", "b1"), ("c1",), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}))
    shapes = {"x": (1, 3, 8, 8), "wq": (8, 3, 3, 3), "ws": (8,), "wz": (8,), "w1": (8, 3, 3, 3), "b1": (8,),
              "c1": (1, 8, 8, 8)}
    g = Graph("qdq", (TensorInfo("x", (1, 3, 8, 8)),), ("c1",), nodes, consts, shapes)
    r = CostModel(g, toy_profile()).evaluate({"conv": "W8A8"})
    assert r.node("dq_w").bound == "none" and r.node("dq_w").latency_s == 0
    c = r.node("conv")
    assert c.weight_bytes == 216 + 32 and c.activation_in_bytes == 192 and c.macs == 13824
    assert r.totals.peak_activation_bytes == 192 + 512


@pytest.mark.parametrize("builder", ["build_mobilenet_like", "build_transformer_block", "build_mlp"])
def test_configurable_nodes_agree_with_precision_config(builder):
    """uniform_pairs covers exactly the nodes a precision config assigns (hwsim.quant.config)."""
    from hwsim.onnx_import import load_model
    from hwsim.quant.config import config_nodes
    from . import onnx_models
    g = load_model(getattr(onnx_models, builder)())
    assert tuple(CostModel(g, shipped_profile("cpu_onnxruntime")).uniform_pairs("W8A8")) == config_nodes(g)


def test_at_least_three_shipped_profiles_have_latency_and_energy():
    with_energy = [n for n in list_shipped_profiles() if shipped_profile(n).cost_model.has_energy]
    assert len(with_energy) >= 3

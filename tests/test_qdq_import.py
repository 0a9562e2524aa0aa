"""Import of hand-written and onnxruntime-written quantized ONNX models: recognition of the
QDQ groups, integer execution, and bit-exactness against onnxruntime including
power-of-two scales (frequent rounding ties) and saturating values."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hwsim.errors import ModelError, UnsupportedOpError
from hwsim.quant.qdq_import import import_quantized, is_quantized_model, run_quantized
from hwsim.validate import validate

from .onnx_models import build_resnet_like, build_transformer_block

ort_q = pytest.importorskip("onnxruntime.quantization")
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static  # noqa: E402
from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: E402


def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def _pow2_qdq_model(act_dtype, seed=0, cin=6, cout=8):
    """Q(x) -> [DQ -> Conv(int8 per-channel w, int32 b) -> Q] -> [DQ -> Add(DQ of the input) -> Q]
    -> DQ -> GlobalAveragePool -> Q -> DQ -> Flatten -> Q -> [DQ -> Gemm -> Q] -> DQ.
    Every scale is a power of two, so requantization lands on exact .5 ties often."""
    rng = np.random.default_rng(seed)
    u = act_dtype == np.uint8
    zp = lambda v: np.array(v, act_dtype)  # noqa: E731
    w = rng.integers(-128, 128, (cout, cin, 3, 3)).astype(np.int8)
    w_s = (2.0 ** -rng.integers(5, 9, cout)).astype(np.float32)
    b = rng.integers(-3000, 3000, cout).astype(np.int32)
    x_s, y_s, a_s = np.float32(2.0 ** -4), np.float32(2.0 ** -1), np.float32(2.0 ** 0)
    fc_w = rng.integers(-128, 128, (5, cout)).astype(np.int8)
    fc_s = (2.0 ** -rng.integers(4, 7, 5)).astype(np.float32)
    fc_b = rng.integers(-500, 500, 5).astype(np.int32)
    inits = [
        _init("x_s", x_s), _init("x_z", zp(128 if u else 3)),
        _init("w_q", w), _init("w_s", w_s), _init("w_z", np.zeros(cout, np.int8)),
        _init("b_q", b), _init("b_s", (x_s * w_s).astype(np.float32)), _init("b_z", np.zeros(cout, np.int32)),
        _init("y_s", y_s), _init("y_z", zp(100 if u else -20)),
        _init("a_s", a_s), _init("a_z", zp(120 if u else -8)),
        _init("g_s", np.float32(2.0 ** -2)), _init("g_z", zp(90 if u else 0)),
        _init("fw_q", fc_w), _init("fw_s", fc_s), _init("fw_z", np.zeros(5, np.int8)),
        _init("fb_q", fc_b), _init("fb_s", (np.float32(2.0 ** -2) * fc_s).astype(np.float32)),
        _init("fb_z", np.zeros(5, np.int32)),
        _init("o_s", np.float32(2.0 ** -3)), _init("o_z", zp(128 if u else 0)),
    ]
    N = helper.make_node
    nodes = [
        N("QuantizeLinear", ["x", "x_s", "x_z"], ["xq"], name="qx"),
        N("DequantizeLinear", ["xq", "x_s", "x_z"], ["xd"], name="dqx"),
        N("DequantizeLinear", ["w_q", "w_s", "w_z"], ["wd"], name="dqw", axis=0),
        N("DequantizeLinear", ["b_q", "b_s", "b_z"], ["bd"], name="dqb", axis=0),
        N("Conv", ["xd", "wd", "bd"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        N("QuantizeLinear", ["c", "y_s", "y_z"], ["cq"], name="qc"),
        N("DequantizeLinear", ["cq", "y_s", "y_z"], ["cd"], name="dqc"),
        N("DequantizeLinear", ["xq", "x_s", "x_z"], ["xd2"], name="dqx2"),
        N("ReduceMean", ["xd2"], ["xm"], name="mean", axes=[1], keepdims=1),
        N("QuantizeLinear", ["xm", "x_s", "x_z"], ["xmq"], name="qxm"),
        N("DequantizeLinear", ["xmq", "x_s", "x_z"], ["xmd"], name="dqxm"),
        N("Add", ["cd", "xmd"], ["s"], name="add"),
        N("QuantizeLinear", ["s", "a_s", "a_z"], ["sq"], name="qs"),
        N("DequantizeLinear", ["sq", "a_s", "a_z"], ["sd"], name="dqs"),
        N("GlobalAveragePool", ["sd"], ["g"], name="gap"),
        N("QuantizeLinear", ["g", "g_s", "g_z"], ["gq"], name="qg"),
        N("DequantizeLinear", ["gq", "g_s", "g_z"], ["gd"], name="dqg"),
        N("Flatten", ["gd"], ["f"], name="flatten"),
        N("QuantizeLinear", ["f", "g_s", "g_z"], ["fq"], name="qf"),
        N("DequantizeLinear", ["fq", "g_s", "g_z"], ["fd"], name="dqf"),
        N("DequantizeLinear", ["fw_q", "fw_s", "fw_z"], ["fwd"], name="dqfw", axis=0),
        N("DequantizeLinear", ["fb_q", "fb_s", "fb_z"], ["fbd"], name="dqfb", axis=0),
        N("Gemm", ["fd", "fwd", "fbd"], ["o"], name="fc", transB=1),
        N("QuantizeLinear", ["o", "o_s", "o_z"], ["oq"], name="qo"),
        N("DequantizeLinear", ["oq", "o_s", "o_z"], ["y"], name="dqo"),
    ]
    g = helper.make_graph(nodes, "pow2", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", cin, 7, 7])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


@pytest.mark.parametrize("act_dtype", [np.uint8, np.int8], ids=["uint8", "int8"])
def test_power_of_two_scales_and_saturation_bit_exact(act_dtype):
    m = _pow2_qdq_model(act_dtype)
    qm = import_quantized(m)
    ops = [n.op for n in qm.graph.nodes]
    assert ops.count("QLinearConv") == 1 and "QLinearAdd" in ops and "QGemm" in ops
    assert "QLinearGlobalAveragePool" in ops and "Flatten" in ops and qm.float_islands == ("mean",)
    rng = np.random.default_rng(1)
    # inputs on the quantization grid, at half-steps (ties) and far outside the range (saturation)
    x = (rng.integers(-300, 300, (16, 6, 7, 7)) / 32.0).astype(np.float32)
    rep = validate(m, {"x": x})
    assert rep.within_tolerance and rep.bit_exact, rep.summary_lines()
    conv = next(e for e in rep.nodes if e["node"] == "conv")
    assert conv["compared"] == 16 * 8 * 49 and conv["mismatches"] == 0
    # the test exercises what it claims: saturated codes and ReduceMean run in float by ORT too
    xq = run_quantized(qm, {"x": x}, keep=["xq"])["xq"]
    info = np.iinfo(act_dtype)
    assert (xq == info.min).any() and (xq == info.max).any()
    assert "mean" in rep.ort_float_nodes


def test_fused_clip_becomes_integer_clamp():
    """DQ -> Conv -> Clip(0, 6) -> Q: the clip is the output clamp of QLinearConv."""
    m = _pow2_qdq_model(np.uint8)
    g = m.graph
    conv = next(n for n in g.node if n.name == "conv")
    conv.output[0] = "c_pre"
    g.initializer.extend([_init("lo", np.float32(0.0)), _init("hi", np.float32(6.0))])
    idx = [i for i, n in enumerate(g.node) if n.name == "conv"][0]
    g.node.insert(idx + 1, helper.make_node("Clip", ["c_pre", "lo", "hi"], ["c"], name="relu6"))
    qm = import_quantized(m)
    node = qm.graph.node("conv")
    assert node.op == "QLinearConv" and node.attrs["act_min"] == 100 and node.attrs["act_max"] == 112
    x = (np.random.default_rng(2).integers(-300, 300, (4, 6, 7, 7)) / 32.0).astype(np.float32)
    cq = run_quantized(qm, {"x": x}, keep=["cq"])["cq"]
    assert cq.min() == 100 and cq.max() == 112
    rep = validate(m, {"x": x})
    assert rep.within_tolerance, rep.summary_lines()


class _Reader(CalibrationDataReader):
    def __init__(self, batches):
        self._it = iter(batches)

    def get_next(self):
        return next(self._it, None)


def test_resnet_like_maxpool_stays_integer(tmp_path):
    onnx.save(build_resnet_like(opset=13, input_size=16), str(tmp_path / "r.onnx"))
    quant_pre_process(str(tmp_path / "r.onnx"), str(tmp_path / "rp.onnx"), skip_symbolic_shape=True)
    x = np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)
    quantize_static(str(tmp_path / "rp.onnx"), str(tmp_path / "q.onnx"), _Reader([{"input": x}]),
                    quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    qm = import_quantized(tmp_path / "q.onnx")
    mp = [n for n in qm.graph.nodes if n.op == "MaxPool"]
    assert mp and all(qm.formats[n.outputs[0]].bits == 8 for n in mp)   # on integer codes
    rep = validate(tmp_path / "q.onnx", {"input": x[:3]})
    assert rep.ort_integer_path and rep.bit_exact, rep.summary_lines()


def test_transformer_block_int8_bit_exact(tmp_path):
    """MatMul + Add linears, attention MatMuls between two activations (batched QLinearMatMul),
    LayerNorm / Softmax / Erf as float islands."""
    m = build_transformer_block()
    onnx.save(m, str(tmp_path / "t.onnx"))
    quant_pre_process(str(tmp_path / "t.onnx"), str(tmp_path / "tp.onnx"), skip_symbolic_shape=True)
    rng = np.random.default_rng(0)

    def feeds(n):
        return {"x": rng.standard_normal((n, 8, 16)).astype(np.float32),
                "mask": np.where(rng.random((n, 1, 1, 8)) < 0.2, -1e4, 0).astype(np.float32)}

    quantize_static(str(tmp_path / "tp.onnx"), str(tmp_path / "q.onnx"), _Reader([feeds(8), feeds(8)]),
                    quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8)
    qm = import_quantized(tmp_path / "q.onnx")
    batched = [n for n in qm.graph.nodes if n.op == "QLinearMatMul" and n.inputs[3] not in qm.graph.constants]
    assert len(batched) == 2
    rep = validate(tmp_path / "q.onnx", feeds(3))
    assert rep.within_tolerance and rep.bit_exact, rep.summary_lines()


def test_import_errors(tmp_path):
    p = tmp_path / "junk.onnx"
    p.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        import_quantized(p)
    m = _pow2_qdq_model(np.uint8)
    m.graph.node.append(helper.make_node("NonMaxSuppression", ["y"], ["z"], name="nms"))
    m.graph.output.append(helper.make_tensor_value_info("z", TensorProto.INT64, None))
    with pytest.raises(UnsupportedOpError, match="nms"):
        import_quantized(m)


def _qoperator_pool_concat_model(dtype):
    """Q -> com.microsoft QLinearAveragePool / QLinearSigmoid / QLinearLeakyRelu -> QLinearConcat -> DQ."""
    zp = lambda v: np.array(v, dtype)  # noqa: E731
    u = dtype == np.uint8
    inits = [_init("xs", np.float32(0.05)), _init("xz", zp(128 if u else 0)),
             _init("ps", np.float32(0.03)), _init("pz", zp(120 if u else -5)),
             _init("ss", np.float32(1 / 256)), _init("sz", zp(0 if u else -128)),
             _init("ls", np.float32(0.04)), _init("lz", zp(100 if u else -30)),
             _init("cs", np.float32(0.05)), _init("cz", zp(110 if u else -10))]
    N = helper.make_node
    ms = "com.microsoft"
    nodes = [
        N("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q"),
        N("QLinearAveragePool", ["xq", "xs", "xz", "ps", "pz"], ["pq"], name="pool", domain=ms,
          kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], count_include_pad=0),
        N("QLinearSigmoid", ["xq", "xs", "xz", "ss", "sz"], ["sq"], name="sig", domain=ms),
        N("QLinearLeakyRelu", ["xq", "xs", "xz", "ls", "lz"], ["lq"], name="leaky", domain=ms, alpha=0.1),
        N("QLinearConcat", ["cs", "cz", "pq", "ps", "pz", "sq", "ss", "sz", "lq", "ls", "lz", "xq", "xs", "xz"],
          ["cq"], name="concat", domain=ms, axis=1),
        N("DequantizeLinear", ["cq", "cs", "cz"], ["y"], name="dq"),
    ]
    g = helper.make_graph(nodes, "qop", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 12, 6, 6])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ms, 1)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("dtype", [np.uint8, np.int8], ids=["uint8", "int8"])
def test_qoperator_pool_sigmoid_leaky_concat(dtype):
    m = _qoperator_pool_concat_model(dtype)
    qm = import_quantized(m)
    assert qm.kind == "qoperator"
    x = (np.random.default_rng(3).standard_normal((4, 3, 6, 6)) * 4).astype(np.float32)
    rep = validate(m, {"x": x})
    assert rep.ort_integer_path
    assert rep.bit_exact, rep.summary_lines() + [str(e) for e in rep.nodes]


def _qgemm_model(with_y: bool, alpha: float, dtype, seed=0):
    rng = np.random.default_rng(seed)
    zp = lambda v: np.array(v, dtype)  # noqa: E731
    inits = [_init("xs", np.float32(0.037)), _init("xz", zp(128 if dtype == np.uint8 else 2)),
             _init("w", rng.integers(-128, 128, (6, 10)).astype(np.int8)),
             _init("ws", (rng.random(6) * 0.01 + 0.001).astype(np.float32)), _init("wz", np.zeros(6, np.int8)),
             _init("b", rng.integers(-5000, 5000, 6).astype(np.int32)),
             _init("ys", np.float32(0.11)), _init("yz", zp(100 if dtype == np.uint8 else -3))]
    ins = ["xq", "xs", "xz", "w", "ws", "wz", "b"] + (["ys", "yz"] if with_y else [])
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q"),
             helper.make_node("QGemm", ins, ["g"], name="qgemm", domain="com.microsoft", transB=1, alpha=alpha)]
    if with_y:
        nodes.append(helper.make_node("DequantizeLinear", ["g", "ys", "yz"], ["y"], name="dq"))
    g = helper.make_graph(nodes, "qg", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 10])],
                          [helper.make_tensor_value_info("y" if with_y else "g", TensorProto.FLOAT, ["N", 6])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("with_y", [True, False], ids=["int_out", "float_out"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8], ids=["uint8", "int8"])
def test_qgemm_alpha_and_float_output(with_y, dtype):
    m = _qgemm_model(with_y, 0.75, dtype)
    x = (np.random.default_rng(1).standard_normal((64, 10)) * 3).astype(np.float32)
    rep = validate(m, {"x": x})
    assert rep.bit_exact, rep.summary_lines()


def test_is_quantized_model():
    from hwsim.demo_data import demo_model_path
    assert is_quantized_model(_pow2_qdq_model(np.uint8)) and is_quantized_model(_qgemm_model(True, 1.0, np.int8))
    assert not is_quantized_model(demo_model_path())


def _softmax_model(dtype, axis, opset_attr, y_zp):
    zp = lambda v: np.array(v, dtype)  # noqa: E731
    inits = [_init("xs", np.float32(0.07)), _init("xz", zp(128 if dtype == np.uint8 else 0)),
             _init("ys", np.float32(1 / 256)), _init("yz", zp(y_zp))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q"),
             helper.make_node("QLinearSoftmax", ["xq", "xs", "xz", "ys", "yz"], ["sq"], name="softmax",
                              domain="com.microsoft", axis=axis, opset=opset_attr),
             helper.make_node("DequantizeLinear", ["sq", "ys", "yz"], ["y"], name="dq")]
    g = helper.make_graph(nodes, "sm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5, 7])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5, 7])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("dtype,y_zp", [(np.uint8, 0), (np.int8, -128)], ids=["uint8", "int8"])
@pytest.mark.parametrize("axis,opset_attr", [(-1, 13), (1, 13), (1, 12)], ids=["last", "middle", "opset12"])
def test_qlinear_softmax_bit_exact(dtype, y_zp, axis, opset_attr):
    """onnxruntime's table-driven QLinearSoftmax, including rows with one dominant element
    (probability 1 at zero point -128 saturates to 127)."""
    m = _softmax_model(dtype, axis, opset_attr, y_zp)
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((16, 5, 7)) * 3).astype(np.float32)
    x[0, :, 0] = 40.0            # saturating maxima: one-hot rows
    rep = validate(m, {"x": x})
    assert rep.bit_exact, rep.summary_lines()


def test_tf2onnx_style_same_pads_and_softmax_bit_exact(tmp_path):
    """auto_pad=SAME_UPPER convs, unfolded BatchNormalization and ReduceMean as float islands,
    and DQ -> Softmax -> Q fused into QLinearSoftmax as onnxruntime does."""
    from .onnx_models import build_tf2onnx_style

    m = build_tf2onnx_style()
    onnx.save(m, str(tmp_path / "t.onnx"))
    inp = m.graph.input[0]
    shape = [d.dim_value or 6 for d in inp.type.tensor_type.shape.dim]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    quantize_static(str(tmp_path / "t.onnx"), str(tmp_path / "q.onnx"), _Reader([{inp.name: x}]),
                    quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8)
    qm = import_quantized(tmp_path / "q.onnx")
    assert "QLinearSoftmax" in {n.op for n in qm.graph.nodes}
    rep = validate(tmp_path / "q.onnx", {inp.name: x})
    assert rep.bit_exact, rep.summary_lines()

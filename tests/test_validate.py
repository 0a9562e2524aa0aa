"""hwsim validate: third-party quantized ONNX models (written here by onnxruntime's own
quantizer) run in hwsim's integer executor and in onnxruntime must agree bit for bit where
onnxruntime's arithmetic is integer, and within +-1 LSB per node where it runs float."""
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

ort_q = pytest.importorskip("onnxruntime.quantization")
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static  # noqa: E402
from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: E402

from hwsim.cli import main  # noqa: E402
from hwsim.demo_data import demo_model_path, load_demo_data  # noqa: E402
from hwsim.errors import ConfigError, DataError, ModelError  # noqa: E402
from hwsim.quant import qdq_import  # noqa: E402
from hwsim.quant.qdq_import import import_quantized, run_quantized  # noqa: E402
from hwsim.validate import validate  # noqa: E402

from .onnx_models import build_mobilenet_like  # noqa: E402


class _Reader(CalibrationDataReader):
    def __init__(self, x, batch=32):
        self._it = iter([{"input": x[i:i + batch]} for i in range(0, len(x), batch)])

    def get_next(self):
        return next(self._it, None)


def _quantize(src, dst, calib, act, weight=QuantType.QInt8, fmt=QuantFormat.QDQ):
    quantize_static(str(src), str(dst), _Reader(calib), quant_format=fmt, per_channel=True,
                    activation_type=act, weight_type=weight)
    return dst


@pytest.fixture(scope="module")
def digits():
    calib, test_x, test_y = load_demo_data()
    return calib[:64], test_x[:96], test_y[:96]


@pytest.fixture(scope="module")
def demo_opset21(tmp_path_factory):
    p = tmp_path_factory.mktemp("m") / "digits_opset21.onnx"
    onnx.save(onnx.version_converter.convert_version(onnx.load(str(demo_model_path())), 21), str(p))
    return p


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    d = tmp_path_factory.mktemp("mb")
    onnx.save(build_mobilenet_like(opset=13, input_size=16), str(d / "mb.onnx"))
    # the documented onnxruntime workflow: pre-process (BN folding, shape inference), then quantize
    quant_pre_process(str(d / "mb.onnx"), str(d / "mb_pre.onnx"), skip_symbolic_shape=True)
    x = np.random.default_rng(0).standard_normal((12, 3, 16, 16)).astype(np.float32)
    return d / "mb_pre.onnx", x


@pytest.mark.parametrize("act", [QuantType.QUInt8, QuantType.QInt8], ids=["uint8", "int8"])
def test_demo_qdq_w8a8_bit_exact(tmp_path, digits, act):
    calib, x, y = digits
    q = _quantize(demo_model_path(), tmp_path / "q.onnx", calib, act)
    rep = validate(q, {"input": x})
    assert rep.ort_integer_path, rep.ort_float_nodes
    assert rep.bit_exact and rep.within_tolerance and rep.tolerance_lsb == 0
    assert rep.outputs["logits"].compared == x.shape[0] * 10
    assert rep.outputs["logits"].mismatches == 0 and rep.outputs["logits"].max_abs_lsb == 0
    assert rep.first_divergence is None and rep.intermediates_compared
    ops = [e["op"] for e in rep.nodes]
    assert ops.count("QLinearConv") == 5 and "QLinearAdd" in ops and "QGemm" in ops
    assert "QLinearGlobalAveragePool" in ops
    assert all(e["isolated_mismatches"] == 0 for e in rep.nodes)


def test_demo_qoperator_bit_exact(tmp_path, digits):
    """QOperator form (QLinearConv, com.microsoft QLinearAdd / QLinearGlobalAveragePool / QGemm):
    ONNX shape inference knows nothing after the contrib ops, Flatten must still import."""
    calib, x, _ = digits
    q = _quantize(demo_model_path(), tmp_path / "q.onnx", calib, QuantType.QUInt8, fmt=QuantFormat.QOperator)
    assert import_quantized(q).kind == "qoperator"
    rep = validate(q, {"input": x})
    assert rep.bit_exact and rep.within_tolerance and rep.first_divergence is None


def test_demo_int8_without_session_option_runs_float_in_ort(tmp_path, digits):
    """Without session.qdqisint8allowed onnxruntime runs int8 QDQ groups as float ops (x86)."""
    calib, x, _ = digits
    q = _quantize(demo_model_path(), tmp_path / "q.onnx", calib, QuantType.QInt8)
    rep = validate(q, {"input": x}, int8_kernels=False)
    assert not rep.ort_integer_path and "conv1" in rep.ort_float_nodes
    assert rep.tolerance_lsb == 1 and rep.within_tolerance


@pytest.mark.parametrize("fmt,act", [(QuantFormat.QDQ, QuantType.QUInt8), (QuantFormat.QDQ, QuantType.QInt8),
                                     (QuantFormat.QOperator, QuantType.QInt8)],
                         ids=["qdq-uint8", "qdq-int8", "qoperator-int8"])
def test_mobilenet_like_bit_exact(tmp_path, mobilenet, act, fmt):
    src, x = mobilenet
    q = _quantize(src, tmp_path / "q.onnx", x, act, fmt=fmt)
    qm = import_quantized(q)
    assert qm.kind == ("qdq" if fmt == QuantFormat.QDQ else "qoperator")
    ops = {n.op for n in qm.graph.nodes}
    assert {"QLinearConv", "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool"} <= ops
    rep = validate(q, {"input": x[:3]})
    # onnxruntime has no integer HardSigmoid: it stays a float island between DQ and Q
    assert set(rep.ort_float_nodes) and all(n.startswith("hardsigmoid") for n in rep.ort_float_nodes)
    assert rep.bit_exact and rep.within_tolerance, rep.summary_lines()
    assert rep.first_divergence is None
    depthwise = [e for e in rep.nodes if e["op"] == "QLinearConv"]
    assert len(depthwise) >= 10 and all(e["mismatches"] == 0 for e in depthwise)


def test_demo_w8a16_within_one_lsb_per_node(digits, demo_opset21, tmp_path):
    calib, x, _ = digits
    q = _quantize(demo_opset21, tmp_path / "a16.onnx", calib, QuantType.QInt16)
    qm = import_quantized(q)
    assert qm.formats[qm.graph.node("conv1").outputs[0]].bits == 16
    rep = validate(q, {"input": x})
    assert not rep.ort_integer_path and "conv1" in rep.ort_float_nodes
    assert rep.tolerance_lsb == 1 and rep.within_tolerance
    isolated = [e["isolated_max_abs_lsb"] for e in rep.nodes]
    assert max(isolated) == 1          # float32 sums in onnxruntime: a few +-1, never more
    assert not rep.bit_exact and rep.first_divergence is not None
    assert rep.first_divergence["isolated_max_abs_lsb"] <= 1


def test_demo_w4a8_within_tolerance(digits, demo_opset21, tmp_path):
    calib, x, _ = digits
    q = _quantize(demo_opset21, tmp_path / "w4.onnx", calib, QuantType.QUInt8, weight=QuantType.QInt4)
    qm = import_quantized(q)
    w = qm.graph.constants[qm.graph.node("conv2").inputs[3]]
    assert w.min() >= -8 and w.max() <= 7
    rep = validate(q, {"input": x})
    assert "conv1" in rep.ort_float_nodes          # int4 weights: float Conv in onnxruntime
    assert rep.within_tolerance and all(e["isolated_max_abs_lsb"] <= 1 for e in rep.nodes)


def test_divergence_is_found_and_attributed(tmp_path, digits, monkeypatch):
    """A wrong integer kernel must be caught and blamed on its node, not on later ones."""
    calib, x, _ = digits
    q = _quantize(demo_model_path(), tmp_path / "q.onnx", calib, QuantType.QUInt8)
    real = qdq_import.INT_OPS["QLinearConv"]

    def off_by_one_in_dw4(node, ins, ctx):
        (y,) = real(node, ins, ctx)
        if node.name == "dw4":
            y = np.where(y < 255, y + 1, y).astype(y.dtype)
        return (y,)

    monkeypatch.setitem(qdq_import.INT_OPS, "QLinearConv", off_by_one_in_dw4)
    rep = validate(q, {"input": x})
    assert not rep.bit_exact and not rep.within_tolerance
    assert rep.first_divergence["node"] == "dw4" and rep.first_divergence["isolated_max_abs_lsb"] == 1
    later = {e["node"]: e for e in rep.nodes}
    assert later["pw5"]["isolated_mismatches"] == 0      # pw5 is right given its (wrong) input
    assert later["pw5"]["mismatches"] > 0


def test_run_quantized_matches_onnxruntime_accuracy(tmp_path, digits):
    calib, x, y = digits
    q = _quantize(demo_model_path(), tmp_path / "q.onnx", calib, QuantType.QUInt8)
    logits = run_quantized(import_quantized(q), {"input": x})["logits"]
    assert logits.dtype == np.float32 and (logits.argmax(1) == y).mean() >= 0.94


def test_cli_validate_json_and_exit_codes(tmp_path, digits, capsys):
    calib, x, _ = digits
    q = _quantize(demo_model_path(), tmp_path / "q.onnx", calib, QuantType.QInt8)
    np.save(tmp_path / "x.npy", x[:16])
    out = tmp_path / "rep.json"
    rc = main(["validate", str(q), "--input", str(tmp_path / "x.npy"), "--against", "onnxruntime",
               "--json", str(out)])
    assert rc == 0
    assert "bit-exact" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["bit_exact"] is True and doc["first_divergence"] is None
    assert doc["outputs"]["logits"] == {"compared": 160, "mismatches": 0, "max_abs_lsb": 0.0}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # no temp files left

    # bad inputs: one line, exit 2, no report written
    out2 = tmp_path / "bad.json"
    np.savez(tmp_path / "wrong.npz", images=x[:2])
    np.savez(tmp_path / "two.npz", input=x[:2], other=x[:2])
    for argv in (["validate", str(tmp_path / "missing.onnx"), "--input", str(tmp_path / "x.npy")],
                 ["validate", str(demo_model_path()), "--input", str(tmp_path / "x.npy")],   # float model
                 ["validate", str(q), "--input", str(tmp_path / "two.npz")],
                 ["validate", str(q), "--input", str(tmp_path / "x.npy"), "--profile",
                  str(Path(__file__).resolve().parents[1] / "hw_profiles" / "tflite_reference.yaml")]):
        rc = main(argv + ["--json", str(out2)])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
        assert not out2.exists()


def test_bad_input_data(tmp_path, digits):
    calib, x, _ = digits
    q = _quantize(demo_model_path(), tmp_path / "q.onnx", calib, QuantType.QUInt8)
    qm = import_quantized(q)
    bad = x[:2].copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        run_quantized(qm, {"input": bad})
    with pytest.raises(DataError, match="shape"):
        run_quantized(qm, {"input": x[:2, :, :4]})
    with pytest.raises(DataError, match="unknown input"):
        run_quantized(qm, {"image": x[:2]})
    with pytest.raises(ConfigError):
        validate(q, {"input": x[:2]}, against="tflite")
    with pytest.raises(ModelError, match="float model"):
        import_quantized(demo_model_path())

"""The packaged demo model and digits data: present, well-formed, accurate, small."""
import numpy as np
import onnx
import onnxruntime as ort

from hwsim.demo_data import demo_model_bytes, demo_model_path, load_demo_data


def test_demo_data_shapes_and_ranges():
    calib, test_x, test_y = load_demo_data()
    assert calib.shape == (256, 1, 8, 8) and calib.dtype == np.float32
    assert test_x.shape == (540, 1, 8, 8) and test_x.dtype == np.float32
    assert test_y.shape == (540,) and test_y.dtype == np.int64
    for a in (calib, test_x):
        assert np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 1.0
        assert np.array_equal(a * 16, np.round(a * 16))  # 0..16 counts / 16
    assert set(np.unique(test_y)) == set(range(10))
    # calibration images come from the training split, not the test split
    flat_test = {x.tobytes() for x in test_x}
    assert sum(c.tobytes() in flat_test for c in calib) < 8  # (a few digits have exact duplicates)


def test_demo_files_are_small():
    path = demo_model_path()
    assert path.is_file() and path.name == "digits_cnn.onnx"
    data = path.with_name("digits.npz")
    assert path.stat().st_size + data.stat().st_size < 200_000
    assert path.with_name("README.md").read_text().count("CC BY 4.0") >= 1


def test_demo_model_structure():
    m = onnx.load_from_string(demo_model_bytes())
    onnx.checker.check_model(m)
    assert {o.domain: o.version for o in m.opset_import}[""] == 17
    (inp,), (out,) = m.graph.input, m.graph.output
    assert inp.name == "input" and out.name == "logits"
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 8, 8]
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("Conv") == 5 and "Add" in ops and "GlobalAveragePool" in ops and "Gemm" in ops
    dw = next(n for n in m.graph.node if n.name == "dw4")
    assert onnx.helper.get_attribute_value(next(a for a in dw.attribute if a.name == "group")) == 24
    n_params = sum(int(np.prod(i.dims)) for i in m.graph.initializer)
    assert 2_000 < n_params < 20_000


def test_demo_model_float_accuracy_with_onnxruntime():
    _, test_x, test_y = load_demo_data()
    sess = ort.InferenceSession(demo_model_bytes(), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {"input": test_x})[0]
    assert logits.shape == (540, 10)
    acc = float((logits.argmax(1) == test_y).mean())
    assert acc >= 0.95, acc
    # dynamic batch: one image at a time gives the same logits
    one = sess.run(None, {"input": test_x[3:4]})[0]
    np.testing.assert_allclose(one, logits[3:4], rtol=1e-5, atol=1e-5)


def test_demo_qdq_model_validates_bit_exact():
    from hwsim.demo_data import demo_qdq_model
    from hwsim.validate import validate

    _, test_x, _ = load_demo_data()
    m = onnx.load_from_string(demo_qdq_model("int8"))
    assert sum(n.op_type == "QuantizeLinear" for n in m.graph.node) >= 8
    rep = validate(m, {"input": test_x[:32]})
    assert rep.bit_exact and rep.ort_integer_path

"""Fake-quant executor and the `hwsim run --mode fake|int [--compare]` command line."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from hwsim.cli import main
from hwsim.execute import run_graph
from hwsim.graph import Graph, Node, TensorInfo
from hwsim.profile import shipped_profile
from hwsim.quant import calibrate, quantize_graph, run_fake, sqnr_db
from hwsim.quant.calibrate import float_dispatch
from tests.onnx_models import build_mobilenet_like

ORT = shipped_profile("cpu_onnxruntime")


def _conv_relu6():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    g = Graph("cr", (TensorInfo("x", (None, 3, 6, 6)),), ("z",),
              (Node("conv", "Conv", ("x", "w", "b"), ("y",),
                    {"kernel_shape": (3, 3), "strides": (1, 1), "dilations": (1, 1), "pads": (1, 1, 1, 1), "group": 1}),
               Node("clip", "Clip", ("y",), ("z",), {"min": 0.0, "max": 6.0})),
              {"w": w, "b": b}, shapes={"x": (1, 3, 6, 6), "y": (1, 4, 6, 6), "z": (1, 4, 6, 6)})
    return g, 2 * rng.standard_normal((8, 3, 6, 6)).astype(np.float32)


def test_fake_quant_values_lie_on_the_output_grid_and_follow_the_float_model():
    g, x = _conv_relu6()
    qg = quantize_graph(g, ORT, calibrate(g, x, progress=False), "W8A8")
    y = run_fake(qg, {"x": x}, keep="all")
    p = qg.params("z")
    codes = y["z"] / float(p.scale) + int(p.zero_point)
    assert np.allclose(codes, np.rint(codes), atol=1e-3)           # on the grid
    assert y["z"].min() >= 0 and y["z"].max() <= 6.0 + float(p.scale)
    assert y["y"] is y["z"] or np.array_equal(y["y"], y["z"])       # ReLU6 folded: same tensor values
    ref = run_graph(g, {"x": x}, float_dispatch())["z"]
    assert sqnr_db(ref, y["z"]) > 35


def test_fake_quant_uses_the_quantized_weights():
    g, x = _conv_relu6()
    stats = calibrate(g, x, progress=False)
    w8 = run_fake(quantize_graph(g, ORT, stats, "W8A8"), {"x": x})["z"]
    w4 = run_fake(quantize_graph(g, ORT, stats, "W4A8"), {"x": x})["z"]
    ref = run_graph(g, {"x": x}, float_dispatch())["z"]
    assert sqnr_db(ref, w8) > sqnr_db(ref, w4) + 6


# -- command line --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("qcli")
    onnx.save(build_mobilenet_like(), d / "m.onnx")
    rng = np.random.default_rng(0)
    np.save(d / "x.npy", rng.standard_normal((2, 3, 32, 32)).astype(np.float32))
    np.save(d / "calib.npy", rng.standard_normal((8, 3, 32, 32)).astype(np.float32))
    return d


def _run(files, *extra):
    return main(["run", str(files / "m.onnx"), "--input", str(files / "x.npy"), "--profile", "cpu_onnxruntime",
                 "--calib", str(files / "calib.npy"), *extra])


def test_cli_int_compare_prints_table_and_writes_json(files, tmp_path, capsys):
    out, js = tmp_path / "o.npz", tmp_path / "o.json"
    assert _run(files, "--bits", "W8A8", "--mode", "int", "--compare", "--out", str(out), "--json", str(js)) == 0
    text = capsys.readouterr().out
    assert "SQNR fake" in text and "max LSB" in text and "output logits" in text and "accumulator overflows: 0" in text
    doc = json.loads(js.read_text())
    assert doc["compare"]["outputs"]["logits"]["sqnr_int_db"] > 20
    assert {r["node"] for r in doc["compare"]["nodes"]} >= {n for n in doc["quantized_graph"]["config"]}
    with np.load(out) as z:
        assert z.files == ["logits"] and z["logits"].shape == (2, 10)


def test_cli_fake_with_config_and_calibrator(files, tmp_path):
    from hwsim.onnx_import import load_model
    from hwsim.quant import save_config, uniform_config
    g = load_model(files / "m.onnx")
    cfg = uniform_config(g, "W8A8")
    cfg[next(iter(cfg))] = cfg[next(iter(cfg))].__class__(8, 8)
    save_config(tmp_path / "c.yaml", cfg, default="W8A8")
    out = tmp_path / "f.npz"
    assert _run(files, "--config", str(tmp_path / "c.yaml"), "--calibrator", "mse", "--mode", "fake",
                "--out", str(out)) == 0
    assert out.is_file()


@pytest.mark.parametrize("extra, msg", [
    (("--bits", "W4A4"), "pair W4A4 is not supported"),
    (("--bits", "W8A8", "--calibrator", "kl"), "--calibrator 'kl' is not known"),
    (("--bits", "W8A8", "--config", "x.yaml"), "either --bits or --config"),
    (("--config", "__BADLAYER__"), "does not exist"),
    (("--bits", "W8A8", "--calib", "__NAN__"), "NaN/Inf"),
    (("--bits", "W8A8", "--calib", "__EMPTY__"), "empty"),
])
def test_cli_errors_are_one_line_and_leave_no_output(files, tmp_path, capsys, extra, msg):
    extra = list(extra)
    if "__BADLAYER__" in extra:
        (tmp_path / "bad.yaml").write_text("default: W8A8\nlayers: {no_such_conv: W4A8}\n")
        extra[extra.index("__BADLAYER__")] = str(tmp_path / "bad.yaml")
    if "__NAN__" in extra:
        a = np.load(files / "calib.npy")
        a[1, 2, 3, 4] = np.nan
        np.save(tmp_path / "nan.npy", a)
        extra[extra.index("__NAN__")] = str(tmp_path / "nan.npy")
    if "__EMPTY__" in extra:
        np.save(tmp_path / "empty.npy", np.zeros((0, 3, 32, 32), np.float32))
        extra[extra.index("__EMPTY__")] = str(tmp_path / "empty.npy")
    out, js = tmp_path / "o.npz", tmp_path / "o.json"
    assert _run(files, *extra, "--mode", "int", "--out", str(out), "--json", str(js)) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and "\n" not in err and "Traceback" not in err
    assert not out.exists() and not js.exists()
    assert not list(tmp_path.glob(".o.*"))                     # no temp files left behind


def test_cli_wrong_input_shape(files, tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((2, 3, 16, 16), np.float32))
    rc = main(["run", str(files / "m.onnx"), "--input", str(tmp_path / "bad.npy"), "--profile", "cpu_onnxruntime",
               "--bits", "W8A8", "--mode", "int", "--out", str(tmp_path / "o.npz")])
    assert rc == 2 and "expects (N, 3, 32, 32)" in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()


def test_cli_dynamic_mode(files, tmp_path, capsys):
    out = tmp_path / "d.npz"
    rc = main(["run", str(files / "m.onnx"), "--input", str(files / "x.npy"), "--profile", "cpu_onnxruntime",
               "--bits", "W8A8", "--mode", "int", "--dynamic", "--out", str(out)])
    assert rc == 0 and "(dynamic)" in capsys.readouterr().out and out.is_file()


def test_cli_runs_a_prequantized_qdq_model_as_it_is(tmp_path, capsys):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from tests.onnx_models import build_mlp

    onnx.save(build_mlp(batch=1), tmp_path / "f.onnx")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": np.random.default_rng(i).standard_normal((1, 16)).astype(np.float32)}
                            for i in range(8)])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    np.save(tmp_path / "x.npy", np.random.default_rng(42).standard_normal((1, 16)).astype(np.float32))
    base = ["run", str(tmp_path / "q.onnx"), "--input", str(tmp_path / "x.npy"), "--profile", "cpu_onnxruntime"]
    assert main(base + ["--mode", "int", "--compare", "--out", str(tmp_path / "o.npz")]) == 0
    text = capsys.readouterr().out
    assert "already quantized, run as it is" in text and "vs integer: max" in text and (tmp_path / "o.npz").is_file()
    assert main(base + ["--mode", "int", "--bits", "W8A8"]) == 2
    assert "already quantized" in capsys.readouterr().err

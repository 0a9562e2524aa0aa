"""`hwsim run --mode float` in-process through hwsim.cli.main."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from hwsim.cli import main
from tests.onnx_models import build_mobilenet_like, build_transformer_block, run_ort


@pytest.fixture()
def mobilenet(tmp_path):
    m = build_mobilenet_like()
    p = tmp_path / "mnet.onnx"
    onnx.save(m, p)
    return m, p


def test_run_float_npy(tmp_path, mobilenet, capsys):
    m, p = mobilenet
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "sub" / "out.npz"
    assert main(["run", str(p), "--input", str(tmp_path / "x.npy"), "--mode", "float", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "logits" in text and "(2, 10)" in text and "wrote" in text
    with np.load(out) as z:
        assert z.files == ["logits"]
        ref = run_ort(m, {"input": x})["logits"]
        assert np.abs(z["logits"] - ref).max() <= 1e-4 * np.abs(ref).max()
    assert not [f for f in out.parent.iterdir() if f.name.endswith(".tmp")]


def test_run_float_npz_multi_input(tmp_path, capsys):
    m = build_transformer_block()
    p = tmp_path / "tb.onnx"
    onnx.save(m, p)
    feeds = {"x": np.ones((1, 8, 16), np.float32), "mask": np.zeros((1, 1, 1, 8), np.float32)}
    np.savez(tmp_path / "in.npz", **feeds)
    out = tmp_path / "o.npz"
    assert main(["run", str(p), "-i", str(tmp_path / "in.npz"), "-o", str(out)]) == 0
    with np.load(out) as z:
        ref = run_ort(m, feeds)["y"]
        assert np.abs(z["y"] - ref).max() <= 1e-4 * np.abs(ref).max()


@pytest.mark.parametrize("case,needle", [
    ("missing_model", "no such file"),
    ("bad_model", "not an ONNX model"),
    ("bad_shape", "the model expects (N, 3, 32, 32) (axis 1)"),
    ("missing_input", "no such file"),
    ("quant_flag_in_float", "--bits only apply to --mode fake|int"),
    ("int_without_profile", "--mode int needs --profile"),
])
def test_run_errors_are_one_line(tmp_path, mobilenet, capsys, case, needle):
    _, p = mobilenet
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 4, 32, 32) if case == "bad_shape" else (1, 3, 32, 32), np.float32))
    model = str(p)
    extra = []
    if case == "missing_model":
        model = str(tmp_path / "nope.onnx")
    elif case == "bad_model":
        (tmp_path / "bad.onnx").write_text("garbage")
        model = str(tmp_path / "bad.onnx")
    elif case == "missing_input":
        x = tmp_path / "absent.npy"
    elif case == "quant_flag_in_float":
        extra = ["--bits", "W8A8"]
    elif case == "int_without_profile":
        extra = ["--mode", "int"]
    rc = main(["run", model, "--input", str(x), *extra])
    err = capsys.readouterr().err
    assert rc == 2
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_run_help_lists_quant_options(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for opt in ("--mode", "--profile", "--calib", "--bits", "--config", "--calibrator", "--compare", "--out"):
        assert opt in text


def test_run_float_json_summary(tmp_path, mobilenet, capsys):
    import json
    _, p = mobilenet
    np.save(tmp_path / "x.npy", np.ones((3, 3, 32, 32), np.float32))
    assert main(["run", str(p), "--input", str(tmp_path / "x.npy"), "--json", str(tmp_path / "r.json")]) == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["mode"] == "float" and doc["outputs"]["logits"]["shape"] == [3, 10]
    assert doc["inputs"]["input"]["shape"] == [3, 3, 32, 32]
    assert doc["outputs"]["logits"]["min"] <= doc["outputs"]["logits"]["max"]


def test_quant_modes_reach_hwsim_quant(tmp_path, mobilenet, capsys):
    """--mode int goes through hwsim.quant.runner.run_mode (errors stay one line)."""
    _, p = mobilenet
    np.save(tmp_path / "x.npy", np.ones((1, 3, 32, 32), np.float32))
    rc = main(["run", str(p), "--input", str(tmp_path / "x.npy"), "--mode", "int", "--profile",
               str(tmp_path / "missing_profile.yaml")])
    err = capsys.readouterr().err
    assert rc == 2 and "missing_profile.yaml" in err and err.count("\n") == 1


def test_run_with_fixed_dim(tmp_path, capsys):
    from pathlib import Path
    model = Path(__file__).parent / "data" / "models" / "encoder_dynamo_dynseq_op18.onnx"
    np.savez(tmp_path / "in.npz", ids=np.ones((2, 12), np.int64), mask=np.ones((2, 12), np.int64))
    args = ["run", str(model), "--input", str(tmp_path / "in.npz")]
    assert main(args) == 2 and "fixed_dims" in capsys.readouterr().err
    assert main(args + ["--dim", "seq=12", "--out", str(tmp_path / "o.npz")]) == 0
    with np.load(tmp_path / "o.npz") as z:
        assert z["logits"].shape == (2, 3)
    assert main(args + ["--dim", "seq=twelve"]) == 2
    assert "expected NAME=SIZE" in capsys.readouterr().err


def test_run_float_checks_against_onnxruntime(tmp_path, mobilenet, capsys):
    import json
    _, p = mobilenet
    np.save(tmp_path / "x.npy", np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32))
    assert main(["run", str(p), "--input", str(tmp_path / "x.npy"), "--ort", "--json", str(tmp_path / "r.json")]) == 0
    assert "vs onnxruntime  logits" in capsys.readouterr().out
    d = json.loads((tmp_path / "r.json").read_text())["onnxruntime"]["logits"]
    assert 0 <= d["rel_diff"] <= 1e-4 and d["max_abs_ref"] > 0

"""The hwsim command: every subcommand loads, explains every option, and fails in one line."""
import argparse
import subprocess
import sys

import pytest

from hwsim.cli import COMMANDS, build_parser, main


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_option_of_every_command_has_help(command):
    parser = build_parser(command)
    assert parser.description and len(parser.description) > 20
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction,)):
            continue
        assert action.help and action.help != argparse.SUPPRESS, f"hwsim {command}: {action.option_strings or action.dest} has no help"


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_exits_zero(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert f"hwsim {command}" in capsys.readouterr().out


def test_unknown_command_is_one_line_error(capsys):
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'frobnicate'" in err and "compare" in err


def test_console_script_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "hwsim", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for name in COMMANDS:
        assert name in out.stdout


def test_missing_model_file_is_one_line_error_without_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "hwsim", "inspect", str(tmp_path / "none.onnx"),
                          "--profile", "cpu_onnxruntime"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "none.onnx" in out.stderr


def test_dim_fixes_dynamic_spatial_sizes_for_costing(tmp_path, capsys):
    """inspect costs a model with dynamic H/W at the --dim sizes (without: 1x1 images)."""
    import json

    import numpy as np
    from onnx import helper

    from tests.onnx_models import make_model

    w = np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1], name="c")
    path = tmp_path / "dyn.onnx"
    path.write_bytes(make_model([node], [("x", ["N", 3, "H", "W"])], [("y", None)], [("w", w)]).SerializeToString())
    macs = {}
    for dims in ([], ["--dim", "H=16", "--dim", "W=20"]):
        out = tmp_path / f"cost{len(dims)}.json"
        assert main(["inspect", str(path), "--profile", "cpu_onnxruntime", "--json", str(out), *dims]) == 0
        macs[len(dims)] = json.loads(out.read_text())["totals"]["macs"]
    assert macs[4] == 16 * 20 * 8 * 3 * 9 and macs[4] == 320 * macs[0]
    assert main(["inspect", str(path), "--profile", "cpu_onnxruntime", "--dim", "H"]) == 2
    assert "NAME=SIZE" in capsys.readouterr().err


def test_run_executes_quantized_models_as_they_are_without_a_profile(tmp_path, capsys):
    """QDQ and QOperator files written by onnxruntime's quantizer run in integer with their own
    scales; both forms give the same integers; a QOperator model has no fake-quant form."""
    import numpy as np

    from hwsim.demo_data import demo_qdq_model, load_demo_data

    x = load_demo_data()[1][:64]
    np.save(tmp_path / "x.npy", x)
    outs = {}
    for fmt in ("qdq", "qoperator"):
        model = tmp_path / f"{fmt}.onnx"
        model.write_bytes(demo_qdq_model(fmt=fmt))
        assert main(["run", str(model), "--input", str(tmp_path / "x.npy"), "--mode", "int",
                     "--out", str(tmp_path / f"{fmt}.npz")]) == 0
        outs[fmt] = np.load(tmp_path / f"{fmt}.npz")["logits"]
    assert "already quantized" in capsys.readouterr().out
    assert np.array_equal(outs["qdq"], outs["qoperator"])
    assert main(["run", str(tmp_path / "qoperator.onnx"), "--input", str(tmp_path / "x.npy"), "--mode", "fake"]) == 2
    assert "runs only in integer" in capsys.readouterr().err

"""``hwsim inspect``: per-layer table and JSON on models built by tests/onnx_models.py."""
import json

import onnx
import pytest

from hwsim.cli import main
from hwsim.cost import CostModel
from hwsim.onnx_import import load_model
from hwsim.profile import shipped_profile

from .onnx_models import build_mlp, build_mobilenet_like, build_transformer_block


@pytest.fixture(scope="module")
def mnet(tmp_path_factory):
    p = tmp_path_factory.mktemp("m") / "mnet.onnx"
    onnx.save(build_mobilenet_like(), str(p))
    return p


def test_table_and_json(mnet, tmp_path, capsys):
    out = tmp_path / "sub" / "cost.json"
    assert main(["inspect", str(mnet), "--profile", "mobile_npu", "--bits", "W8A8", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    graph = load_model(mnet)
    doc = json.loads(out.read_text())
    assert [n["name"] for n in doc["nodes"]] == [n.name for n in graph.nodes]
    for field in ("name", "op", "pair", "input_shapes", "output_shapes", "macs", "bops", "bytes", "weight_bytes",
                  "latency_s", "energy_j", "bound"):
        assert field in doc["nodes"][0]
    assert {n["bound"] for n in doc["nodes"]} <= {"compute", "memory", "measured", "fused", "none"}
    report = CostModel(graph, shipped_profile("mobile_npu")).evaluate("W8A8")
    assert doc["totals"]["macs"] == report.totals.macs > 0
    assert doc["totals"]["latency_s"] == pytest.approx(report.totals.latency_s)
    assert doc["totals"]["energy_j"] == pytest.approx(report.totals.energy_j)
    assert doc["bits"] == "W8A8" and doc["profile"] == "mobile_npu"
    assert doc["metric"]["name"] == "energy" and doc["metric"]["reference"] == "W8A16"
    assert 0 < doc["metric"]["relative"] < 1          # W8A8 costs less energy than the W8A16 reference
    lines = text.splitlines()
    for n in graph.nodes:
        assert any(line.startswith(n.name + " ") for line in lines), n.name
    assert any(line.startswith("TOTAL") for line in lines)
    assert "memory-bound" in text and f"wrote {out}" in text


def test_profile_by_path_and_default_bits(mnet, capsys):
    path = shipped_profile("micro_npu_ethos_u_like").file
    assert main(["inspect", str(mnet), "--profile", path]) == 0
    text = capsys.readouterr().out
    assert "W8A16" in text and "metric memory" in text and "of the fp32 reference" in text


def test_config_file_with_conversions(tmp_path, capsys):
    m = tmp_path / "mlp.onnx"
    onnx.save(build_mlp(), str(m))
    graph = load_model(m)
    gemms = [n.name for n in graph.nodes if n.op == "Gemm"]
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"default: W8A8\nlayers:\n  {gemms[1]}: W8A16\n")
    out = tmp_path / "c.json"
    assert main(["inspect", str(m), "--profile", "cpu_onnxruntime", "--config", str(cfg), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    pairs = {n["name"]: n["pair"] for n in doc["nodes"]}
    assert pairs[gemms[0]] == "W8A8" and pairs[gemms[1]] == "W8A16"
    assert doc["totals"]["conversions"] == 1 and doc["conversions"][0]["consumer"] == gemms[1]
    t = doc["totals"]
    assert t["latency_s"] == pytest.approx(sum(n["latency_s"] for n in doc["nodes"]) + t["conversion_latency_s"])


def test_transformer_on_every_profile_with_energy(tmp_path, capsys):
    m = tmp_path / "t.onnx"
    onnx.save(build_transformer_block(), str(m))
    for name in ("mobile_npu", "dsp_hexagon_like", "edge_tpu_like"):
        assert main(["inspect", str(m), "--profile", name]) == 0
    text = capsys.readouterr().out
    assert text.count("TOTAL") == 3 and "Softmax" in text


@pytest.mark.parametrize("argv, fragment", [
    (["--profile", "no_such_profile"], "no shipped profile of that name"),
    (["--profile", "edge_tpu_like", "--bits", "W4A8"], "--bits W4A8: not supported by profile 'edge_tpu_like'"),
    (["--profile", "edge_tpu_like", "--bits", "8bit"], "--bits: bit-width pair must look like W8A8"),
    (["--profile", "tests/bad_profiles/negative_clock.yaml"], "cost_model.clock_hz: got -1e+09"),
])
def test_errors_are_one_line(mnet, capsys, argv, fragment):
    import pathlib
    argv = [a if not a.startswith("tests/") else str(pathlib.Path(__file__).parent.parent / a) for a in argv]
    assert main(["inspect", str(mnet), *argv]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err


def test_missing_model(capsys, tmp_path):
    assert main(["inspect", str(tmp_path / "nope.onnx"), "--profile", "cpu_onnxruntime"]) == 2
    assert "no such file" in capsys.readouterr().err

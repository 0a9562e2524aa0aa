"""hwsim compare: shared scores across equal-numerics profiles, winners, files, HTML, CLI errors."""
import json
import math

import pytest
import yaml

from hwsim.cli import main
from hwsim.compare import compare
from hwsim.demo_data import demo_model_path, load_demo_data
from hwsim.hw_profiles import __file__ as _profiles_init
from hwsim.report.compare_report import write_compare
from pathlib import Path

PROFILES_DIR = Path(_profiles_init).parent


@pytest.fixture(scope="module")
def data():
    calib, test_x, test_y = load_demo_data()
    return calib[:64], test_x[:150], test_y[:150]


@pytest.fixture(scope="module")
def twin_profile(tmp_path_factory):
    """cpu_onnxruntime's numerics on twice-as-fast hardware: same scores, different costs."""
    doc = yaml.safe_load((PROFILES_DIR / "cpu_onnxruntime.yaml").read_text())
    doc["name"] = "cpu_twice_the_clock"
    cm = doc["cost_model"]
    cm["clock_hz"] = 2 * float(cm["clock_hz"])
    cm["overhead_s"] = float(cm.get("overhead_s", 0)) / 2
    cm.pop("measured_latency", None)
    doc.get("sources", {}).pop("cost_model.measured_latency", None)
    for level in cm["memory"]["levels"]:
        level["bandwidth_bytes_per_s"] = 2 * float(level["bandwidth_bytes_per_s"])
    path = tmp_path_factory.mktemp("profiles") / "twin.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def result(data, twin_profile, tmp_path_factory):
    calib, test_x, test_y = data
    out = tmp_path_factory.mktemp("cmp")
    r = compare(str(demo_model_path()), ["cpu_onnxruntime", str(twin_profile), "edge_tpu_like"], calib,
                max_drop=1.0, labels=test_y, eval_data=test_x, out_dir=out, jobs=1)
    return r, write_compare(r, out), out


def test_profiles_with_equal_numerics_share_scores(result):
    r, _, _ = result
    cpu, twin = r.outcome("cpu_onnxruntime"), r.outcome("cpu_twice_the_clock")
    assert twin.shared_scores > 0 and cpu.shared_scores == 0
    # phase 1 (every group at every lower candidate) is identical for both: all of it is reused
    assert twin.shared_scores >= twin.search["evaluations"]["phase1"] > 0
    # same numerics -> the same score for the same configuration
    s_cpu = {json.dumps(p["config"], sort_keys=True): p["score"] for p in cpu.pareto if p["score"] is not None}
    s_twin = {json.dumps(p["config"], sort_keys=True): p["score"] for p in twin.pareto if p["score"] is not None}
    common = s_cpu.keys() & s_twin.keys()
    assert common and all(s_cpu[k] == s_twin[k] for k in common)
    # twice-as-fast hardware prices the same config at half the roofline latency
    assert twin.baselines["W8A16"]["latency"] < cpu.baselines["W8A16"]["latency"]


def test_winner_of_each_metric_is_the_cheapest_profile_meeting_the_budget(result):
    r, _, _ = result
    for m, winner in r.winners.items():
        eligible = [(o.chosen[m], o.profile) for o in r.outcomes if o.chosen["meets_budget"] and o.chosen[m] is not None]
        if not eligible:
            assert winner is None
            continue
        assert winner == min(eligible)[1]
    assert r.winners["latency"] == "cpu_twice_the_clock" or r.outcome(r.winners["latency"]).chosen["latency"] <= \
        r.outcome("cpu_twice_the_clock").chosen["latency"]
    assert r.winners["energy"] == "edge_tpu_like"          # the only profile here with energy data
    for o in r.outcomes:
        c = o.chosen
        assert c["meets_budget"] == (c["score"] >= r.target["threshold"])
        assert math.isclose(c["relative_bops"], c["bops"] / (c["macs"] * 1024))


def test_files_are_written_and_consistent(result):
    r, files, out = result
    for name in ("compare.json", "compare.md", "report.html", "fronts.png", "latency_breakdown.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    doc = json.loads((out / "compare.json").read_text())
    assert doc["winners"] == r.winners
    assert [p["profile"] for p in doc["profiles"]] == ["cpu_onnxruntime", "cpu_twice_the_clock", "edge_tpu_like"]
    md = (out / "compare.md").read_text()
    assert f"latency: {r.winners['latency']} wins" in md
    for o in r.outcomes:                     # each profile's search folder with its own results
        assert (out / o.profile / "pareto.json").is_file()
        assert (out / o.profile / "config.yaml").is_file()
    assert not list(out.rglob("*.tmp"))


def test_html_report_renders_plots_and_tables_in_chromium(result):
    from tests.chromium import render

    _, files, _ = result
    seen = render(files["report.html"])
    assert seen["images"] == 2 and seen["images_decoded"] == 2
    assert all(w > 300 for w, _ in seen["image_sizes"])
    assert seen["tables"] == 3
    assert seen["table_rows"][0] == 1 + 3                    # header + one row per profile
    assert seen["external"] == 0
    assert any("Verdict" in h for h in seen["headings"])


def test_each_profile_search_writes_a_rendering_html_report(result):
    from tests.chromium import render

    r, _, out = result
    seen = render(out / r.outcomes[0].profile / "report.html")
    assert seen["images"] == 1 and seen["images_decoded"] == 1
    assert seen["tables"] >= 4 and seen["external"] == 0
    assert "Per-layer precision of the chosen config" in seen["headings"]


def test_cli_compare_bad_profile_is_one_line_and_writes_nothing(tmp_path, capsys, data):
    import numpy as np

    calib, _, _ = data
    np.save(tmp_path / "calib.npy", calib)
    out = tmp_path / "out"
    rc = main(["compare", str(demo_model_path()), "--profiles", "cpu_onnxruntime", str(tmp_path / "nope.yaml"),
               "--calib", str(tmp_path / "calib.npy"), "--target-sqnr", "20", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "nope.yaml" in err
    assert not out.exists()


def test_cli_compare_needs_a_budget(tmp_path, capsys, data):
    import numpy as np

    np.save(tmp_path / "calib.npy", data[0])
    rc = main(["compare", str(demo_model_path()), "--profiles", "cpu_onnxruntime",
               "--calib", str(tmp_path / "calib.npy"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "budget" in capsys.readouterr().err


def test_demo_command_runs_offline_and_prints_the_report_path(tmp_path, capsys):
    rc = main(["demo", "--out", str(tmp_path / "demo"), "--profiles", "mobile_npu", "edge_tpu_like",
               "--jobs", "2", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "report.html" in out and "wins" in out
    assert (tmp_path / "demo" / "report.html").is_file()

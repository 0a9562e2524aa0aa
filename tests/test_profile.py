"""Shipped hardware profiles load, and the profile API answers what quant/search need."""
import pickle

import pytest

from hwsim.bits import BitPair
from hwsim.errors import ProfileError
from hwsim.kernels.schemes import Overflow, Requant, Rounding
from hwsim.opset import OpClass
from hwsim.profile import (COST_CLASSES, HardwareProfile, MetricName, list_shipped_profiles, load_profile,
                           parse_profile, resolve_profile, shipped_profile)

SHIPPED = list_shipped_profiles()


def test_at_least_the_required_profiles_ship():
    assert {"cpu_onnxruntime", "tflite_reference"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_loads_and_is_complete(name):
    p = shipped_profile(name)
    assert isinstance(p, HardwareProfile)
    assert p.name == name
    assert p.identity.sources, "every shipped profile says where its numbers came from"
    for pair in p.candidates:
        for cls in COST_CLASSES:
            assert p.cost_model.macs_per_cycle[pair][cls] > 0
        assert isinstance(p.requant_for(pair), Requant)
        assert p.accumulator_bits_for(pair) >= pair.w + pair.a
    assert isinstance(p.arithmetic.rounding, Rounding)
    assert isinstance(p.arithmetic.overflow, Overflow)
    assert p.highest_candidate == p.candidates[-1]
    # frozen and picklable (search sends profiles to worker processes)
    with pytest.raises(Exception):
        p.file = "x"
    q = pickle.loads(pickle.dumps(p))
    assert q == p and hash(q) == hash(p)


def test_cpu_onnxruntime_semantics():
    p = shipped_profile("cpu_onnxruntime")
    assert [str(c) for c in p.candidates] == ["W4A8", "W8A8", "W8A16"]
    assert p.highest_candidate == BitPair(8, 16)
    assert p.requant_for(BitPair(8, 8)) is Requant.ONNXRUNTIME
    assert p.arithmetic.rounding is Rounding.HALF_EVEN
    assert p.cost_model.clock_hz == 3.9e9
    assert p.cost_model.macs_per_cycle[BitPair(8, 8)][OpClass.CONV] == 128
    assert p.metric.name is MetricName.LATENCY and p.metric.reference == BitPair(8, 8)
    f = p.activation_format(8, nonnegative=False)
    assert (f.qmin, f.qmax) == (0, 255)
    wf = p.weight_format(8)
    assert (wf.qmin, wf.qmax) == (-127, 127)
    assert p.candidates_for("Conv") == p.candidates
    assert not p.shares_scale("Add")


def test_tflite_reference_semantics():
    p = shipped_profile("tflite_reference")
    assert p.requant_for("W8A8") is Requant.TFLITE_REFERENCE
    assert p.requant_for("W8A16") is Requant.TFLITE_16X8
    assert p.accumulator_bits_for("W8A16") == 64 and p.bias_bits_for("W8A16") == 64
    assert p.arithmetic.rounding is Rounding.HALF_AWAY
    assert p.activation_symmetric(16) and not p.activation_symmetric(8)
    assert p.shares_scale("Concat")
    r = p.fixed_output_range("Sigmoid", 8)
    assert (r.scale, r.zero_point) == (1 / 256, -128)
    assert p.fixed_output_range("Relu") is None
    assert p.activation_format(16).qmin == -32768


def test_requant_for_non_candidate_is_error():
    p = shipped_profile("tflite_reference")
    with pytest.raises(ProfileError, match="W4A8 is not a candidate; allowed: W8A8, W8A16"):
        p.requant_for("W4A8")


def test_resolve_profile_by_name_and_path(tmp_path):
    p = resolve_profile("cpu_onnxruntime")
    assert p.name == "cpu_onnxruntime"
    src = shipped_profile("tflite_reference").file
    assert resolve_profile(src).name == "tflite_reference"
    assert load_profile(src) == shipped_profile("tflite_reference")
    with pytest.raises(ProfileError, match=r"no shipped profile of that name \(did you mean 'cpu_onnxruntime'\?\)"):
        resolve_profile("cpu_onnxruntme")
    with pytest.raises(ProfileError, match="no such file"):
        resolve_profile(str(tmp_path / "missing.yaml"))


def _schema_keys(node, out):
    if isinstance(node, dict):
        for k, v in node.get("properties", {}).items():
            out.add(k)
            _schema_keys(v, out)
        for key in ("additionalProperties", "items"):
            if isinstance(node.get(key), dict):
                _schema_keys(node[key], out)
        for alt in node.get("oneOf", []):
            _schema_keys(alt, out)
    return out


def test_readme_documents_every_field_and_profile():
    import json
    import pathlib
    root = pathlib.Path(__file__).resolve().parents[1] / "hw_profiles"
    readme = (root / "README.md").read_text()
    keys = _schema_keys(json.loads((root / "profile.schema.json").read_text()), set())
    assert len(keys) > 40
    missing = [k for k in sorted(keys) if k not in readme]
    assert missing == []
    for name in SHIPPED:
        assert f"`{name}.yaml`" in readme


@pytest.mark.parametrize("name", SHIPPED)
def test_to_dict_round_trips_and_matches_schema(name):
    import json
    import pathlib
    p = shipped_profile(name)
    doc = p.to_dict()
    assert parse_profile(doc, p.file) == p
    js = json.loads(json.dumps(doc))           # JSON-serialisable (int bit keys become strings)
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((pathlib.Path(__file__).resolve().parents[1] / "hw_profiles" / "profile.schema.json").read_text())
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(js)) == []
    s = p.summary()
    assert s["name"] == name and s["candidates"] == [str(c) for c in p.candidates]
    assert set(s["requant"]) == set(s["candidates"])


def test_readme_minimal_profile_loads(tmp_path):
    import pathlib
    import re
    readme = (pathlib.Path(__file__).resolve().parents[1] / "hw_profiles" / "README.md").read_text()
    block = re.search(r"## A minimal profile\n\n```yaml\n(.*?)```", readme, re.S).group(1)
    p = tmp_path / "my_npu.yaml"
    p.write_text(block)
    prof = load_profile(p)
    assert prof.name == "my_npu" and prof.requant_for("W8A16").value == "tflite_16x8"
    assert prof.cost_model.precision_conversion.seconds_per_element == 0.0625 / 1e9

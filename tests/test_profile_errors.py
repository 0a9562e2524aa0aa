"""Malformed profiles: each file in tests/bad_profiles/ must raise ProfileError with its exact message
(tests/bad_profiles/expected.yaml); the JSON Schema accepts every shipped profile and rejects malformed ones."""
import copy
import json
import pathlib

import pytest
import yaml

from hwsim.errors import ProfileError
from hwsim.profile import list_shipped_profiles, load_profile, parse_profile, shipped_profile

ROOT = pathlib.Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "bad_profiles"
EXPECTED = yaml.safe_load((BAD / "expected.yaml").read_text())
SCHEMA = json.loads((ROOT / "hw_profiles" / "profile.schema.json").read_text())


def test_corpus_is_complete():
    files = {p.name for p in BAD.glob("*.yaml")} - {"expected.yaml"}
    assert files == set(EXPECTED), "every bad profile needs an expected message, and vice versa"
    assert len(files) >= 20
    for name in files:
        assert (BAD / name).read_text().startswith("# BAD PROFILE: "), f"{name} must say what is wrong"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_profile_message(name):
    path = BAD / name
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    err = info.value
    text = str(err)
    assert text.startswith(f"{path}: ")
    assert err.file == str(path)
    got = text[len(str(path)) + 2:]
    want = EXPECTED[name]
    if want.endswith(" ..."):
        assert got.startswith(want[:-4]), got
    else:
        assert got == want
    assert "\n" not in text


def _as_json(doc):
    return json.loads(json.dumps(doc))   # what an editor sees: every mapping key a string


def _validator():
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    return jsonschema.Draft202012Validator(SCHEMA)


@pytest.mark.parametrize("name", list_shipped_profiles())
def test_schema_accepts_shipped_profile(name):
    v = _validator()
    doc = yaml.safe_load((ROOT / "hw_profiles" / f"{name}.yaml").read_text())
    errors = [f"{list(e.path)}: {e.message}" for e in v.iter_errors(_as_json(doc))]
    assert errors == []


SCHEMA_REJECTS = ["misspelled_clock", "negative_clock", "utilization_above_one", "clock_is_string", "bad_pair_syntax",
                  "unknown_overflow", "unknown_requant", "unknown_rounding", "unknown_metric", "missing_op_class",
                  "bool_as_integer", "unknown_source_kind", "conversion_both_units", "missing_metric", "empty_candidates"]


@pytest.mark.parametrize("name", SCHEMA_REJECTS)
def test_schema_rejects_bad_profile(name):
    v = _validator()
    doc = yaml.safe_load((BAD / f"{name}.yaml").read_text())
    assert list(v.iter_errors(_as_json(doc))), f"schema accepted {name}"


# --- a few more error paths, on an in-memory document -------------------------------------
def _base():
    return yaml.safe_load((BAD / "missing_metric.yaml").read_text()) | {"metric": {"name": "latency"}}


def test_base_document_is_valid():
    p = parse_profile(_base(), "mem.yaml")
    assert p.name == "bad_base" and str(p.highest_candidate) == "W8A16"


@pytest.mark.parametrize("mutate, key_path, fragment", [
    (lambda d: d.__setitem__("name", "has space"), "name", "allowed: letters, digits"),
    (lambda d: d["cost_model"].__setitem__("overhead_s", -1), "cost_model.overhead_s", "allowed: a number >= 0"),
    (lambda d: d["cost_model"]["memory"]["levels"].append({"name": "sram", "bandwidth_bytes_per_s": 1.0}),
     "cost_model.memory.levels[2].name", "memory level 'sram' is defined twice"),
    (lambda d: d["cost_model"].__setitem__("bops_per_mac", {"W4A4": 3}), "cost_model.bops_per_mac.W4A4",
     "pair W4A4 is not a candidate"),
    (lambda d: d["cost_model"]["macs_per_cycle"]["W8A8"].__setitem__("conv", 0),
     "cost_model.macs_per_cycle.W8A8.conv", "allowed: a number > 0"),
    (lambda d: d["cost_model"].__setitem__("utilization", float("nan")), "cost_model.utilization",
     "allowed: a finite number"),
    (lambda d: d["quantization"]["fixed_output_ranges"].__setitem__("Relu", {8: {"scale": 1, "zero_point": 0}}),
     "quantization.fixed_output_ranges.Relu", "allowed: Softmax, Sigmoid, Tanh"),
    (lambda d: d["cost_model"].__setitem__("measured_latency", [
        {"op": "Conv", "input_shape": [1, 3], "pair": "W8A8", "seconds": 1e-6},
        {"op": "Conv", "input_shape": [1, 3], "pair": "W8A8", "seconds": 2e-6}]),
     "cost_model.measured_latency[1]", "duplicate entry"),
    (lambda d: d["arithmetic"].__setitem__("accumulator_bits", {"W8A8": 32}), "arithmetic.accumulator_bits.W8A16",
     "no entry for candidate pair W8A16 and no 'default'"),
    (lambda d: d.__setitem__("op_overrides", {"Softmax": []}), "op_overrides.Softmax", "got an empty list"),
    (lambda d: d["quantization"]["weight"].update(signed=False), "quantization.weight.narrow_range",
     "narrow range applies to signed weights only"),
])
def test_more_error_paths(mutate, key_path, fragment):
    d = _base()
    mutate(d)
    with pytest.raises(ProfileError) as info:
        parse_profile(d, "mem.yaml")
    assert info.value.key_path == key_path
    assert fragment in info.value.detail


def test_power_of_two_fixed_scale_ok_and_rejected():
    d = _base()
    d["quantization"]["power_of_two_scales"] = True
    assert parse_profile(d, "m.yaml").power_of_two_scales
    d["quantization"]["fixed_output_ranges"]["Sigmoid"][8]["scale"] = 0.003
    with pytest.raises(ProfileError, match="Sigmoid.8.scale: got 0.003; allowed: a power of two"):
        parse_profile(d, "m.yaml")


def test_yaml_1_2_exponent_floats_are_numbers(tmp_path):
    text = (BAD / "missing_metric.yaml").read_text().replace("1000000000.0", "1e9") + "metric: {name: latency}\n"
    p = tmp_path / "p.yaml"
    p.write_text(text)
    assert load_profile(p).cost_model.clock_hz == 1e9


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ProfileError, match="no such file"):
        load_profile(tmp_path / "nope.yaml")
    with pytest.raises(ProfileError, match="is a directory"):
        load_profile(tmp_path)


# --- fuzz: any mutation of a valid profile gives a valid profile or a ProfileError, nothing else ---------
def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


_JUNK = [None, -1, 0, 1.5, float("inf"), True, "x", "W8A8", "", [], {}, ["W8A8"], {"zz": 1}, {8: 1}, [1, 2],
         "per_tensor", "fp32", 64, 3, "default"]


def test_fuzzed_profiles_raise_only_profile_error():
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    shipped = [shipped_profile(n).to_dict() for n in list_shipped_profiles()] + [_base()]

    @hypothesis.settings(max_examples=120, deadline=None, derandomize=True)
    @hypothesis.given(st.integers(0, len(shipped) - 1), st.integers(0, 10_000), st.sampled_from(_JUNK + ["<delete>"]))
    def check(which, where, junk):
        doc = copy.deepcopy(shipped[which])
        paths = [p for p in _paths(doc) if p]
        path = paths[where % len(paths)]
        node = doc
        for k in path[:-1]:
            node = node[k]
        if junk == "<delete>":
            if isinstance(node, dict):
                del node[path[-1]]
            else:
                node.pop(path[-1])
        else:
            node[path[-1]] = copy.deepcopy(junk)
        try:
            parse_profile(doc, "fuzz.yaml")
        except ProfileError as e:
            assert str(e).startswith("fuzz.yaml: ") and "\n" not in str(e)

    check()

"""The demo model quantized by hwsim (calibrated on the packaged digits) and run by the
integer executor: W8A8 keeps float accuracy within 1 point; lower precision costs SQNR."""
import pytest

from hwsim.demo_data import demo_accuracy


@pytest.fixture(scope="module")
def rows():
    return {r["bits"]: r for r in demo_accuracy(("W8A8", "W4A8", "W8A16"), profile="cpu_onnxruntime")}


def test_float_accuracy(rows):
    assert rows["float"]["total"] == 540 and rows["float"]["accuracy"] >= 0.95


def test_w8a8_integer_within_one_point_of_float(rows):
    assert abs(rows["W8A8"]["accuracy"] - rows["float"]["accuracy"]) <= 0.01
    assert rows["W8A8"]["sqnr_db"] > 25


def test_precision_ordering(rows):
    assert rows["W8A16"]["sqnr_db"] > rows["W8A8"]["sqnr_db"] > rows["W4A8"]["sqnr_db"]
    assert abs(rows["W8A16"]["accuracy"] - rows["float"]["accuracy"]) <= 0.01
    assert rows["W4A8"]["accuracy"] > 0.8


def test_tflite_profile_w8a8(rows):
    r = {x["bits"]: x for x in demo_accuracy(("W8A8",), profile="tflite_reference")}
    assert abs(r["W8A8"]["accuracy"] - rows["float"]["accuracy"]) <= 0.01

"""Worker processes: results in order, user errors re-raised as is, crashes with the worker's traceback."""
import pytest

from hwsim.errors import ProfileError
from hwsim.parallel import map_in_processes


def test_results_come_back_in_task_order():
    tasks = [("math", "factorial", (n,), {}) for n in (6, 1, 4)]
    seen = []
    assert map_in_processes(tasks, jobs=2, on_done=lambda i, r: seen.append(i)) == [720, 1, 24]
    assert sorted(seen) == [0, 1, 2]


def test_a_user_error_in_a_worker_is_raised_unchanged(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: x\ncandidates: [W9A9]\n")
    with pytest.raises(ProfileError) as e:
        map_in_processes([("hwsim.profile", "load_profile", (str(bad),), {})], jobs=1)
    assert "broken.yaml" in str(e.value)


def test_a_crash_carries_the_worker_traceback():
    with pytest.raises(RuntimeError, match="ValueError"):
        map_in_processes([("builtins", "int", ("not a number",), {})], jobs=1)


def test_every_error_type_survives_pickling():
    import pickle

    from hwsim import errors

    samples = [errors.ProfileError("f.yaml", "a.b", "bad"), errors.UnsupportedOpError("n1", "Foo", ["Conv"], "why"),
               *(cls("one line") for cls in (errors.ModelError, errors.DataError, errors.ConfigError,
                                             errors.GroupError, errors.KernelError))]
    for e in samples:
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is type(e) and str(back) == str(e)

"""The README stays true: its two set-up commands, its CLI tour and its Python API example run as written."""
import os
import re
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


def test_quick_start_and_test_commands_are_the_documented_ones():
    bash = _blocks("bash")
    assert bash[0].strip() == 'python3 -m pip install -e . && hwsim demo'
    assert bash[1].strip() == 'python3 -m pip install -e ".[test]" && python3 -m pytest -q'
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'python3 -m pip install -q -e ".[test]"' in ci and "python3 -m pytest -q" in ci


def _tour_commands() -> list[list[str]]:
    tour = next(b for b in _blocks("bash") if "hwsim demo --export" in b)
    joined = re.sub(r"\\\n\s*", " ", tour)
    cmds = []
    for line in joined.splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("hwsim "):
            cmds.append(line.split())
    return cmds


def test_cli_tour_runs_as_written(tmp_path):
    cmds = _tour_commands()
    assert [c[1] for c in cmds] == ["demo", "inspect", "run", "run", "groups", "search", "run", "compare",
                                    "validate", "bench"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cwd = tmp_path
    for cmd in cmds:
        if cmd[1] == "bench":            # a benchmark, not a test: measured in bench/
            continue
        proc = subprocess.run([sys.executable, "-m", "hwsim", *cmd[1:]], cwd=cwd, capture_output=True, text=True,
                              env=env, timeout=600)
        assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        assert "Traceback" not in proc.stderr
        if cmd[1] == "demo":
            cwd = tmp_path / "tour"
    for f in ("cost.json", "float.npz", "int.npz", "groups.graphml", "search/report.html", "search/config.yaml",
              "mixed.npz", "cmp/report.html", "cmp/compare.json", "validate.json"):
        assert (cwd / f).is_file(), f


def test_python_api_example_runs_as_written(tmp_path):
    code = _blocks("python")[0]
    # fed on stdin like an interactive user: no file, no main guard
    proc = subprocess.run([sys.executable, "-"], input=code, cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "latency" in proc.stdout

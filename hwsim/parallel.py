"""Run independent tasks in worker processes that never import the caller's ``__main__``.

``multiprocessing``'s spawn and forkserver start methods re-import the main script in
every worker, so a user script without an ``if __name__ == "__main__":`` guard (or code
fed on stdin) would re-run itself; ``fork`` is unsafe after Numba's thread pool has
started. Each worker here is a fresh ``python -m hwsim._worker`` process that receives one
pickled task on stdin and answers with one pickled result on stdout.

A task is ``(module, function, args, kwargs)``; the function must be importable. An
:class:`~hwsim.errors.HwsimError` raised in a worker is raised again, unchanged, in the
caller; any other failure becomes a ``RuntimeError`` carrying the worker's traceback.

Examples
--------
>>> from hwsim.parallel import map_in_processes
>>> map_in_processes([("math", "factorial", (5,), {}), ("math", "gcd", (12, 18), {})], jobs=2)
[120, 6]
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

__all__ = ["map_in_processes"]

Task = tuple[str, str, tuple, dict]


def _run_one(task: Task) -> Any:
    proc = subprocess.run([sys.executable, "-m", "hwsim._worker"], input=pickle.dumps(task),
                          capture_output=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if proc.returncode != 0 or not proc.stdout:
        tail = proc.stderr.decode(errors="replace")[-4000:]
        raise RuntimeError(f"worker for {task[0]}.{task[1]} exited with status {proc.returncode}:\n{tail}")
    status, value = pickle.loads(proc.stdout)
    if status == "ok":
        return value
    if status == "error":        # a user-facing HwsimError: re-raise as is
        raise value
    raise RuntimeError(f"worker for {task[0]}.{task[1]} failed:\n{value}")


def map_in_processes(tasks: Sequence[Task], jobs: int, on_done: Callable[[int, Any], None] | None = None) -> list:
    """Run ``tasks`` in up to ``jobs`` worker processes; results in task order.

    ``on_done(index, result)`` is called in the caller's process as each task finishes
    (progress bars). The first failure is raised after the running tasks end.
    """
    results: list = [None] * len(tasks)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(_run_one, t): i for i, t in enumerate(tasks)}
        from concurrent.futures import as_completed

        for f in as_completed(futures):
            i = futures[f]
            results[i] = f.result()
            if on_done is not None:
                on_done(i, results[i])
    return results

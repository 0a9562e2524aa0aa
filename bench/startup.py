"""Start-up cost: does a new process load every kernel from the Numba cache quickly?

Run: ``python3 bench/startup.py``. Warms the cache in this process, then times a fresh
process: import, Numba's one-time initialisation, and the first call of every fast-path
kernel problem (which only loads cached machine code). Target: first calls < 0.5 s.
"""
from __future__ import annotations

import json

from hwsim.cli.bench import measure_startup

if __name__ == "__main__":
    r = measure_startup()
    print(json.dumps(r, indent=2))
    print(("OK" if r["first_calls_s"] < 0.5 else "SLOW") + f": first calls {r['first_calls_s']:.3f} s "
          f"(+ Numba init {r['numba_init_s']:.3f} s, import {r['import_s']:.3f} s)")

"""Shared test set-up: tests import helper modules as ``tests.x`` or plain ``x``."""
import os
import sys

import matplotlib

matplotlib.use("Agg")

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

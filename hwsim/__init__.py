"""hwsim: hardware simulation of quantized neural-network inference.

The Python API mirrors the ``hwsim`` command line; see README.md for a tour.
"""
__version__ = "0.1.0"

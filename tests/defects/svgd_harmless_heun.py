"""SVGD with Heun (explicit trapezoidal) time steps instead of explicit Euler: a change that vanishes as dt → 0.

Harmless.  Expected verdict: consistent (declares continuum "stein").
"""
from svgd_ok import make_run  # this folder is on sys.path while pdeflow loads the file

run = make_run(heun=True)  # HARMLESS: the one change against svgd_ok.py

"""SVGD whose dynamics use the bandwidth 1.5·sigma while it declares the Stein PDE at sigma.

Defect: kernel.  Expected verdict: inconsistent (declares continuum "stein" at params.sigma).
"""
from svgd_ok import make_run  # this folder is on sys.path while pdeflow loads the file

run = make_run(bandwidth_factor=1.5)  # DEFECT: the one change against svgd_ok.py

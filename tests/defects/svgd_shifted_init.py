"""SVGD started from the initial draw shifted by +0.3 (ρ0(· − 0.3) instead of ρ0).

Defect: initial.  Expected verdict: inconsistent (declares continuum "stein").
"""
from svgd_ok import make_run  # this folder is on sys.path while pdeflow loads the file

run = make_run(init_shift=0.3)  # DEFECT: the one change against svgd_ok.py

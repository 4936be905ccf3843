"""Birth–death started from particles drawn with 0.7× the spread of ρ0 (about its mean).

Defect: initial.  Expected verdict: inconsistent (declares continuum "kde-wfr").
"""
from bd_ok import make_run  # this folder is on sys.path while pdeflow loads the file

run = make_run(init_spread=0.7)  # DEFECT: the one change against bd_ok.py

"""SVGD whose score is evaluated at the shifted point x + 0.3 instead of x.

Defect: drift.  Expected verdict: inconsistent (declares continuum "stein").
"""
from svgd_ok import make_run  # this folder is on sys.path while pdeflow loads the file

run = make_run(score_shift=0.3)  # DEFECT: the one change against svgd_ok.py

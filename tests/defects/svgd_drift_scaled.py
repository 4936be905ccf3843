"""SVGD whose drift uses 0.8·∇log π instead of ∇log π (as if the target had variance 1/0.8).

Defect: drift.  Expected verdict: inconsistent (declares continuum "stein").
"""
from svgd_ok import make_run  # this folder is on sys.path while pdeflow loads the file

run = make_run(score_scale=0.8)  # DEFECT: the one change against svgd_ok.py

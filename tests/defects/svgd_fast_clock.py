"""SVGD whose velocity is 1.25·α·φ̂ instead of α·φ̂ (its clock runs 25 % fast).

Defect: time-scale.  Expected verdict: inconsistent (declares continuum "stein").
"""
from svgd_ok import make_run  # this folder is on sys.path while pdeflow loads the file

run = make_run(clock=1.25)  # DEFECT: the one change against svgd_ok.py

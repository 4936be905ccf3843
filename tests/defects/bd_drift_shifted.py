"""Birth–death whose ULA move evaluates the score at the shifted point x + 0.3 instead of x.

Defect: drift.  Expected verdict: inconsistent (declares continuum "kde-wfr").
"""
from bd_ok import make_run  # this folder is on sys.path while pdeflow loads the file

run = make_run(drift_shift=0.3)  # DEFECT: the one change against bd_ok.py

"""Birth–death whose steps advance its dynamics (ULA move and kill/duplicate rate) by 1.25·h while the clock advances by h.

Defect: time-scale.  Expected verdict: inconsistent (declares continuum "kde-wfr").
"""
from bd_ok import make_run  # this folder is on sys.path while pdeflow loads the file

run = make_run(clock=1.25)  # DEFECT: the one change against bd_ok.py

"""FR reweighting that returns weights ∝ w² (normalized) instead of w: the exponent 2(1 − e^{−βt}) overshoots π.

Defect: weights.  Expected verdict: inconsistent (declares continuum "flow").
"""
from fr_ok import make_run  # this folder is on sys.path while pdeflow loads the file

run = make_run(power=2)  # DEFECT: the one change against fr_ok.py

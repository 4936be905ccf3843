"""FR reweighting with the exponent βt instead of 1 − e^{−βt} (w ∝ (π/ρ0)^{βt}: the linearized clock).

Defect: time-scale.  Expected verdict: inconsistent (declares continuum "flow").
"""
from fr_ok import make_run  # this folder is on sys.path while pdeflow loads the file

run = make_run(exponent="linear")  # DEFECT: the one change against fr_ok.py

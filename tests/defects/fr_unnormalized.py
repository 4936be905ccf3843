"""FR reweighting without the spherical normalization: w_i = w_i(0)(π/ρ0)^{1−e^{−βt}}, mass 0.82 at t = 1 instead of 1.

Defect: weights.  Expected verdict: inconsistent (declares continuum "flow", spherical case fr-kl-gauss-1d).
"""
from fr_ok import make_run  # this folder is on sys.path while pdeflow loads the file

run = make_run(normalize=False)  # DEFECT: the one change against fr_ok.py

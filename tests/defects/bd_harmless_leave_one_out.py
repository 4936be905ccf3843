"""Birth–death with the leave-one-out KDE (j ≠ i, normalized by N − 1 instead of N): an O(1/(Nσ^d)) change that vanishes as N → ∞.

Harmless.  Expected verdict: consistent (declares continuum "kde-wfr").
"""
from bd_ok import make_run  # this folder is on sys.path while pdeflow loads the file

run = make_run(self_term=False)  # HARMLESS: the one change against bd_ok.py

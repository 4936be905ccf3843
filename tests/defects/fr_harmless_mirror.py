"""FR reweighting by mirror (exponential) steps of size ≤ dt of the weight ODE instead of its closed form: vanishes as dt → 0.

Harmless.  Expected verdict: consistent (declares continuum "flow").
"""
from fr_ok import make_run  # this folder is on sys.path while pdeflow loads the file

run = make_run(mirror=True)  # HARMLESS: the one change against fr_ok.py

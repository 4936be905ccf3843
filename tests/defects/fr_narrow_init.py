"""FR reweighting of particles drawn with 0.7× the spread of ρ0 (std 0.49 instead of 0.7) but weighted as if from ρ0.

Defect: initial.  Expected verdict: inconsistent (declares continuum "flow").
"""
from fr_ok import make_run  # this folder is on sys.path while pdeflow loads the file

run = make_run(init_spread=0.7)  # DEFECT: the one change against fr_ok.py

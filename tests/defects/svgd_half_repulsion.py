"""SVGD with the repulsive term Σ_j w_j ∇_{x_j} k(x_j, x_i) halved.

Defect: interaction.  Expected verdict: inconsistent (declares continuum "stein").
"""
from svgd_ok import make_run  # this folder is on sys.path while pdeflow loads the file

run = make_run(repulsion=0.5)  # DEFECT: the one change against svgd_ok.py

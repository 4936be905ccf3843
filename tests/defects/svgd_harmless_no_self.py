"""SVGD that leaves out the self term j = i of φ̂(x_i) (w_i ∇log π(x_i), an O(1/N) change that vanishes as N → ∞).

Harmless.  Expected verdict: consistent (declares continuum "stein").
"""
from svgd_ok import make_run  # this folder is on sys.path while pdeflow loads the file

run = make_run(self_term=False)  # HARMLESS: the one change against svgd_ok.py

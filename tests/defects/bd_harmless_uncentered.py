"""Birth–death with the uncentered rate Λ_i = ξ̂_i (no mean subtracted): the kill/duplicate-a-uniform-partner moves cancel any constant in Λ (mean field −ρ(Λ − <Λ>)), so only the noise changes.

Harmless.  Expected verdict: consistent (declares continuum "kde-wfr").
"""
from bd_ok import make_run  # this folder is on sys.path while pdeflow loads the file

run = make_run(centred=False)  # HARMLESS: the one change against bd_ok.py

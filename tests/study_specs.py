"""Small study specifications shared by the study tests (run in seconds)."""

TINY = """
[study]
name = "tiny"
case = "wfr-kl-gauss-1d"
target = "exact"
metrics = ["L1", "L2", "hellinger"]

[[group]]
label = "tau"
kind = "reference"
n = 400
tau = {start = 0.1, factor = 0.5, levels = 3}

[[group]]
label = "h"
kind = "reference"
n = {start = 25, factor = 2, levels = 3}
tau = {tied = "h^2", coefficient = 1.0}

[[group]]
label = "bd-N"
kind = "approx"
method = "birth-death"
case = "wfr-kl-mixture-1d"
target = "reference"
metrics = ["mmd"]
n_particles = [30, 60]
seeds = 2
dt = 0.05
reference = {n = 100, tau = 0.02}
"""

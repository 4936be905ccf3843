"""Inputs shared by the reliability tests: a quick solve and a small reference study."""

SOLVE = ["solve", "wfr-kl-gauss-1d", "--set", "n=40", "--set", "tau=0.05", "--set", "T=0.2", "--quiet", "--no-plots",
         "--no-estimate"]


def study_spec(name: str, levels: list, tau: float) -> str:
    """A study of one h-ladder on wfr-kl-gauss-1d (T = 0.2): a few seconds."""
    return f"""
[study]
name = "{name}"
case = "wfr-kl-gauss-1d"
target = "exact"
metrics = ["L1"]

[[group]]
label = "h"
kind = "reference"
n = {levels}
tau = {tau}
T = 0.2
"""

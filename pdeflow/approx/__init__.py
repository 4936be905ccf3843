"""Kernel approximations of the flows on weighted particles (MATH §5) — numpy/scipy only.

This package must never import dolfinx: particle methods run anywhere numpy runs.
"""
from .methods import METHODS, MethodParams, run_approximation  # noqa: F401
from .particles import ParticleTrajectory  # noqa: F401

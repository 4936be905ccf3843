"""Immutable description of a gradient-flow problem (MATH §1–§2); knows nothing of solvers.

A :class:`Problem` fixes the domain Ω, the target π, the initial density ρ0, the energy
(KL(ρ|π) = ∫ ρ log(ρ/π) − ρ + π, MATH E1), the flow geometry (α, β, spherical or not; see
:mod:`pdeflow.geometry`) and the final time.  Densities are callables on points of shape (d, n),
returning arrays of shape (n,); they also expose ``log_density`` because the reference scheme
works in the log variable and needs log π at the mesh vertices without under-flow.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol, Sequence

import numpy as np

from .geometry import Flow


class DensityFunction(Protocol):
    """A positive density on R^d evaluated on points of shape (d, n)."""

    dim: int

    def log_density(self, x: np.ndarray) -> np.ndarray: ...

    def __call__(self, x: np.ndarray) -> np.ndarray: ...

    def describe(self) -> dict: ...


def _as_points(x: np.ndarray, dim: int) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[None, :]
    if x.shape[0] < dim:
        raise ValueError(f"points have {x.shape[0]} coordinates, the density needs {dim}")
    return x[:dim]


@dataclass(frozen=True)
class Gaussian:
    """mass · N(mean, cov): a normalized Gaussian density on R^d multiplied by ``mass``."""

    mean: tuple
    cov: tuple  # d × d, as nested tuples
    mass: float = 1.0

    def __post_init__(self):
        mean = np.atleast_1d(np.asarray(self.mean, dtype=float))
        cov = np.atleast_2d(np.asarray(self.cov, dtype=float))
        if cov.shape != (mean.size, mean.size):
            raise ValueError(f"covariance of shape {cov.shape} does not match mean of size {mean.size}")
        if not np.allclose(cov, cov.T) or np.any(np.linalg.eigvalsh(cov) <= 0):
            raise ValueError("covariance must be symmetric positive definite")
        if not self.mass > 0:
            raise ValueError("Gaussian mass must be positive")
        object.__setattr__(self, "mean", tuple(float(v) for v in mean))
        object.__setattr__(self, "cov", tuple(tuple(float(v) for v in row) for row in cov))

    @property
    def dim(self) -> int:
        return len(self.mean)

    @property
    def m(self) -> np.ndarray:
        return np.array(self.mean)

    @property
    def S(self) -> np.ndarray:
        return np.array(self.cov)

    def log_density(self, x):
        x = _as_points(x, self.dim)
        d = x - self.m[:, None]
        P = np.linalg.inv(self.S)
        quad = np.einsum("in,ij,jn->n", d, P, d)
        _, logdet = np.linalg.slogdet(self.S)
        return math.log(self.mass) - 0.5 * (quad + logdet + self.dim * math.log(2 * math.pi))

    def grad_log_density(self, x):
        """∇ log density = −Σ⁻¹(x − m) at points (d, n); shape (d, n).  Analytic, so that the
        ODE oracles of the score-based particle methods (SVGD) are not limited by a difference quotient."""
        x = _as_points(x, self.dim)
        return -np.linalg.solve(self.S, x - self.m[:, None])

    def __call__(self, x):
        return np.exp(self.log_density(x))

    def describe(self) -> dict:
        return {"type": "gaussian", "mass": self.mass, "mean": list(self.mean), "cov": [list(r) for r in self.cov]}


@dataclass(frozen=True)
class GaussianMixture:
    """Σ_k mass_k · N(mean_k, cov_k) — a sum of (mass-weighted) Gaussians."""

    components: tuple

    def __post_init__(self):
        comps = tuple(self.components)
        if not comps:
            raise ValueError("a mixture needs at least one component")
        if len({c.dim for c in comps}) != 1:
            raise ValueError("mixture components have different dimensions")
        object.__setattr__(self, "components", comps)

    @property
    def dim(self) -> int:
        return self.components[0].dim

    @property
    def mass(self) -> float:
        """Total mass on R^d."""
        return float(sum(c.mass for c in self.components))

    @property
    def is_gaussian(self) -> bool:
        return len(self.components) == 1

    def log_density(self, x):
        logs = np.array([c.log_density(x) for c in self.components])
        top = logs.max(axis=0)
        return top + np.log(np.exp(logs - top).sum(axis=0))

    def grad_log_density(self, x):
        """∇ log π = Σ_k γ_k(x) ∇ log π_k(x) with the responsibilities γ_k = π_k/π (computed from
        the log densities, so that far-out points cannot under-flow to 0/0); shape (d, n)."""
        logs = np.array([c.log_density(x) for c in self.components])
        gamma = np.exp(logs - logs.max(axis=0))
        gamma /= gamma.sum(axis=0)
        return sum(g[None, :] * c.grad_log_density(x) for g, c in zip(gamma, self.components))

    def __call__(self, x):
        return np.exp(self.log_density(x))

    def scaled(self, factor: float) -> "GaussianMixture":
        return GaussianMixture(tuple(Gaussian(c.mean, c.cov, c.mass * factor) for c in self.components))

    def describe(self) -> dict:
        return {"type": "gaussian-mixture", "components": [c.describe() for c in self.components]}


@dataclass(frozen=True)
class FunctionDensity:
    """A density given by a log-density callable (used by manufactured solutions)."""

    log_fn: Callable[[np.ndarray], np.ndarray]
    dim: int
    label: str

    def log_density(self, x):
        return np.asarray(self.log_fn(_as_points(x, self.dim)), dtype=float)

    def __call__(self, x):
        return np.exp(self.log_density(x))

    def describe(self) -> dict:
        return {"type": "expression", "expression": self.label}


@dataclass(frozen=True)
class Domain:
    """Ω ⊂ R^d (d = 1, 2, 3): the box Π_k [lower_k, upper_k], or, when ``mesh`` names one of
    :data:`pdeflow.shapes.SHAPES`, that shape (gmsh mesh from ``meshes/``; lower/upper are then its
    bounding box).  Use :meth:`Domain.from_mesh` for the latter."""

    lower: tuple
    upper: tuple
    mesh: Optional[str] = None

    def __post_init__(self):
        lo = tuple(float(v) for v in np.atleast_1d(self.lower))
        hi = tuple(float(v) for v in np.atleast_1d(self.upper))
        if len(lo) != len(hi) or not 1 <= len(lo) <= 3:
            raise ValueError("domain bounds must have the same length, 1 to 3")
        if any(not (b > a) for a, b in zip(lo, hi)):
            raise ValueError("empty domain: every upper bound must exceed its lower bound")
        if self.mesh is not None:
            shape = self.shape  # raises on an unknown name
            if (lo, hi) != (shape.lower, shape.upper):
                raise ValueError(f"mesh {self.mesh!r}: bounds must be its bounding box {shape.lower}..{shape.upper}")
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)

    @classmethod
    def from_mesh(cls, name: str) -> "Domain":
        from .shapes import get_shape

        shape = get_shape(name)
        return cls(shape.lower, shape.upper, name)

    @property
    def shape(self):
        """The :class:`pdeflow.shapes.Shape` of a mesh domain, None for a box."""
        if self.mesh is None:
            return None
        from .shapes import get_shape

        return get_shape(self.mesh)

    @property
    def is_box(self) -> bool:
        return self.mesh is None

    @property
    def dim(self) -> int:
        return len(self.lower)

    @property
    def volume(self) -> float:
        if self.mesh is not None:
            return self.shape.volume
        return float(np.prod(np.subtract(self.upper, self.lower)))

    @property
    def diameter_box(self) -> float:
        """Largest side of the (bounding) box: h = diameter_box / n for every mesh of Ω."""
        return max(b - a for a, b in zip(self.lower, self.upper))

    def contains(self, x: np.ndarray) -> np.ndarray:
        """Mask of the rows of x (N, d) that lie in the closed domain."""
        x = np.asarray(x, dtype=float)
        if self.mesh is not None:
            return self.shape.contains(x)
        return np.all((x >= np.array(self.lower)) & (x <= np.array(self.upper)), axis=1)

    def reflect(self, x: np.ndarray) -> np.ndarray:
        """Mirror rows of x (N, d) that left Ω back into it: at the faces of a box (repeatedly,
        for points that overshoot a whole width), or by the shape's own reflection."""
        x = np.asarray(x, dtype=float)
        if self.mesh is not None:
            return self.shape.reflect(x)
        lo, hi = np.array(self.lower), np.array(self.upper)
        width = hi - lo
        y = np.mod(x - lo, 2 * width)
        y = np.where(y > width, 2 * width - y, y)
        return lo + y

    def distance_to_boundary(self, x: np.ndarray) -> np.ndarray:
        """Distance of the rows of x (N, d), points of Ω, to ∂Ω (the faces of a box, or the shape's
        boundary)."""
        x = np.asarray(x, dtype=float)
        if self.mesh is not None:
            return self.shape.distance_to_boundary(x)
        return np.abs(np.minimum(x - np.array(self.lower), np.array(self.upper) - x).min(axis=1))

    def quadrature(self, panels: Optional[int] = None):
        """Points (d, n) and weights (n,) of an accurate rule on Ω (masses and normalizers)."""
        if self.mesh is not None:
            return self.shape.quadrature() if panels is None else self.shape.quadrature(panels)
        if panels is None:
            panels = {1: 256, 2: 96, 3: 12}[self.dim]  # 3-D: 1.7e6 points, sums agree with 32 panels to 2e-13
        return box_quadrature(self, panels=panels)

    def describe(self) -> dict:
        if self.mesh is not None:
            shape = self.shape
            return {"type": "mesh", "mesh": self.mesh, "geometry": shape.description,
                    "parameters": shape.p, "lower": list(self.lower), "upper": list(self.upper)}
        return {"type": "box", "lower": list(self.lower), "upper": list(self.upper)}


@dataclass(frozen=True)
class Problem:
    """A verification case: the flow of geometry ``flow`` of the energy ``energy`` (a spec of
    :mod:`pdeflow.energies`: ``kl``, ``chi2``, ``reverse-kl``, ``power:p=P``, ``mmd:sigma=L``; KL
    by default) from ρ0 on Ω up to time T.

    ``initial_mass``: when given, ρ0 is rescaled so that ∫_Ω ρ0 = initial_mass (the discrete
    initial mass is then made exact by the solver).  ``source``: a manufactured source term
    f(t, x) added to the right-hand side (MATH §3.5 recipe A), else None.
    """

    name: str
    domain: Domain
    target: DensityFunction
    initial: DensityFunction
    flow: Flow
    T: float = 1.0
    snapshots: tuple = (0.25, 0.5, 1.0)
    initial_mass: Optional[float] = None
    energy: str = "kl"
    description: str = ""
    source: Optional[Callable[[float, np.ndarray], np.ndarray]] = field(default=None, compare=False)
    exact_kind: Optional[str] = None  # "fisher-rao", "gaussian", "mms" or None

    def __post_init__(self):
        from .energies import canonical

        object.__setattr__(self, "energy", canonical(self.energy))  # EnergyError (a ValueError) if bad
        if not (self.T > 0 and math.isfinite(self.T)):
            raise ValueError("T must be a positive finite number")
        if self.target.dim != self.domain.dim or self.initial.dim != self.domain.dim:
            raise ValueError("target, initial density and domain must have the same dimension")
        snaps = tuple(sorted({float(s) for s in self.snapshots if 0 < s <= self.T} | {float(self.T)}))
        object.__setattr__(self, "snapshots", snaps)

    @property
    def dim(self) -> int:
        return self.domain.dim

    @property
    def energy_functional(self):
        """The :class:`pdeflow.energies.Energy` of the spec string ``energy``."""
        from .energies import get_energy

        return get_energy(self.energy)

    def with_changes(self, **kw) -> "Problem":
        from dataclasses import replace

        return replace(self, **kw)

    def snapshot_times(self) -> tuple:
        """Output times, t = 0 included."""
        return (0.0,) + self.snapshots

    def describe(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "domain": self.domain.describe(),
            "target": self.target.describe(),
            "initial": self.initial.describe(),
            "initial_mass": self.initial_mass,
            "flow": self.flow.describe(),
            "energy": self.energy,
            "T": self.T,
            "snapshots": list(self.snapshots),
            "source": self.source is not None,
            "exact": self.exact_kind,
        }


def box_quadrature(domain: Domain, panels: int = 64, order: int = 10):
    """Composite Gauss–Legendre rule on Ω: points (d, n) and weights (n,).

    Used for masses and normalizers of smooth densities (error far below discretization errors).
    """
    g, w = np.polynomial.legendre.leggauss(order)
    pts1, wts1 = [], []
    for a, b in zip(domain.lower, domain.upper):
        edges = np.linspace(a, b, panels + 1)
        mid = 0.5 * (edges[1:] + edges[:-1])
        half = 0.5 * (edges[1:] - edges[:-1])
        pts1.append((mid[:, None] + half[:, None] * g[None, :]).ravel())
        wts1.append((half[:, None] * w[None, :]).ravel())
    grids = np.meshgrid(*pts1, indexing="ij")
    wgrid = np.meshgrid(*wts1, indexing="ij")
    x = np.array([gr.ravel() for gr in grids])
    wt = np.prod(np.array([wg.ravel() for wg in wgrid]), axis=0)
    return x, wt


def integrate(fn: Callable[[np.ndarray], np.ndarray], domain: Domain, panels: Optional[int] = None) -> float:
    """∫_Ω fn by the domain's quadrature (composite Gauss–Legendre on a box)."""
    x, w = domain.quadrature(panels)
    return float(np.dot(w, fn(x)))


def initial_density(problem: Problem) -> DensityFunction:
    """ρ0 rescaled to the requested mass on Ω (if ``initial_mass`` is set)."""
    rho0 = problem.initial
    if problem.initial_mass is None:
        return rho0
    mass = integrate(rho0, problem.domain)
    factor = problem.initial_mass / mass
    if isinstance(rho0, GaussianMixture):
        return rho0.scaled(factor)
    log_factor = math.log(factor)
    return FunctionDensity(lambda x: rho0.log_density(x) + log_factor, rho0.dim, f"{factor!r}*({rho0.describe()})")


def sequence_of_floats(values: Sequence) -> tuple:
    return tuple(float(v) for v in values)

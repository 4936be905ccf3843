"""Distances between densities and (weighted) particle measures (MATH §6) — numpy/scipy/POT only,
usable without dolfinx.

A mesh density is given as a weighted vertex cloud, exactly as the reference solver stores it in
``snapshots.npz``: vertex coordinates ``mesh_x`` (N, d), nodal values ``mesh_rho`` (N,) and lumped
masses ``mesh_m`` (N,) (the vertex-quadrature weights).  The measure used for ρ_h is

    ν_h = Σ_q v_q δ_{y_q},   y_q = mesh_x[q],   v_q = m_q ρ_h(y_q)                  (MATH §6 (c))

which is vertex quadrature of ρ_h dx: adequate for P1, quadrature error O(h²) on general meshes.
(On a *uniform* grid over a region where the density has decayed, vertex quadrature is the
trapezoid rule for smooth, rapidly decaying integrands and converges spectrally; the O(h²)
appears on graded/unstructured meshes or where ρ_h does not vanish at ∂Ω.)  A particle measure
is μ = Σ_i w_i δ_{x_i}.  Points are arrays (n, d); 1-D points may be passed as (n,).

Distances
---------
* **MMD** (MATH §6 (a), recommended primary metric)::

      MMD_k²(μ, ν) = Σ_ij w_i w_j k(x_i, x_j) − 2 Σ_iq w_i v_q k(x_i, y_q) + Σ_qq' v_q v_q' k(y_q, y_q')

  :func:`mmd`, :func:`mmd_to_mesh`, :func:`mmd_multiscale` (Gaussian kernel at several ℓ).
  Exact in the particles, no density estimate, no boundary effect.  Unequal masses are handled
  by MMD directly for positive-definite kernels; the mass error |Σw − Σ m ρ| is reported
  separately (:func:`mass_error`).  With the energy kernel k = −|x−y| (conditionally positive
  definite) MMD² is the energy distance — in 1-D 2∫(F_μ − F_ν)² dx (MATH §3.4 item 2) — but
  only for **equal total masses**: for Σw ≠ Σv the formula is not a squared norm (it changes
  under k → k + c and may be negative).  Compare shapes with ``normalize=True`` and report the
  mass error separately.
* **Gaussian closed form** (MATH §3.4 item 5): for k = exp(−|x−y|²/(2ℓ²)), X ~ N(m₁, Σ₁),
  Y ~ N(m₂, Σ₂) independent,
  E k(X, Y) = ℓ^d det(ℓ²I + Σ₁ + Σ₂)^{−1/2} exp(−½ Δmᵀ(ℓ²I + Σ₁ + Σ₂)^{−1} Δm), and
  MMD²(z₁N₁, z₂N₂) = z₁² E k(X,X') − 2 z₁z₂ E k(X,Y) + z₂² E k(Y,Y').
  :func:`gaussian_kernel_expectation`, :func:`gaussian_mmd_closed_form`.
* **Smoothed L¹/L²** (MATH §6 (b), §3.6): ‖K_σ*μ − K_σ*ρ_h‖ on a grid, both sides smoothed by the
  same normalized Gaussian K_σ = N(0, σ²I).  :func:`smoothed_distances`.  Identity (§3.6):
  ‖K_σ*(μ−ν)‖²_{L²(R^d)} = MMD² with kernel K_σ*K_σ = N(0, 2σ²I), i.e.
  (4πσ²)^{−d/2} · MMD²_{gaussian, ℓ=√2σ}.
* **W₂** (MATH §6 (c)): 1-D exact via quantile functions, W₂² = ∫₀¹|F_μ^{-1} − F_ν^{-1}|² ds
  (:func:`w2_1d`, ``ot.wasserstein_1d``); d ≥ 2 by the exact LP ``ot.emd2(a, b, ot.dist(X, Y))``
  on the clouds (:func:`w2_emd`).  Both measures are normalized to probability vectors (W₂ of
  the *shapes*; for two measures of equal mass M the unnormalized W₂ is √M times it).  Closed
  form between Gaussians (MATH §3.4 item 6):
  W₂² = |m₁−m₂|² + tr(Σ₁ + Σ₂ − 2(Σ₂^{1/2} Σ₁ Σ₂^{1/2})^{1/2}).  :func:`w2_gaussian`.
* **Unbalanced entropic OT** (MATH §6 (c)): :func:`unbalanced_sinkhorn`,
  min_γ≥0 ⟨γ, C⟩ + reg·KL(γ | a⊗b) + reg_m·[KL(γ1 | a) + KL(γᵀ1 | b)], C = |x−y|²,
  solved by POT's generalized Sinkhorn (conventions checked in POT 0.9.7, see the function).
* **Monte-Carlo floor** (MATH §6 (a), (d) 3): :func:`mc_floor` — MMD between n i.i.d. draws from
  ρ_h and ρ_h itself, over several seeds; E MMD² = (1/n)(E k(X,X) − E k(X,X'))·M² (M the mass),
  so MMD ~ n^{−1/2} in any dimension.  A particle method with n particles cannot beat it.
* **Nested P1 distances in 1-D** (:func:`p1_distances_1d`, self-convergence of cases without a
  closed form): the coarse function is interpolated at the fine vertices (exact for nested P1),
  and the piecewise-linear difference d is integrated exactly on every fine cell:

      ∫ |d| = h(|a|+|b|)/2 if ab ≥ 0 else h(a²+b²)/(2(|a|+|b|)),     ∫ d² = h(a²+ab+b²)/3,

  with a, b the values of d at the cell's end points.
"""
from __future__ import annotations

import math
import warnings
from typing import Optional, Sequence

import numpy as np
from scipy import linalg

from .approx.kernels import DEFAULT_CHUNK, Kernel


def _ot():
    """POT, imported on first use: the MMD, smoothed and nested-P1 distances need only numpy, and
    this module is imported by code that may run where POT is not installed (e.g. the system
    Python that carries dolfinx)."""
    try:
        import ot
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the optimal-transport distances need POT: pip install 'pot>=0.9'") from exc
    return ot


# ------------------------------------------------------------------------------------------
# input handling
# ------------------------------------------------------------------------------------------
def _points(x) -> np.ndarray:
    """(n, d) float array; a 1-D array is n points in 1-D."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"points must have shape (n, d) or (n,), got {x.shape}")
    return np.ascontiguousarray(x)


def _weights(w, n: int, name: str = "weights") -> np.ndarray:
    w = np.asarray(w, dtype=float).reshape(-1)
    if w.size != n:
        raise ValueError(f"{name}: {w.size} values for {n} points")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{name} must be finite")
    return w


def mesh_cloud(mesh_x, mesh_rho, mesh_m):
    """The weighted vertex cloud (y, v) of a mesh density: v_q = m_q ρ_h(y_q) (vertex quadrature)."""
    y = _points(mesh_x)
    rho = _weights(mesh_rho, y.shape[0], "mesh_rho")
    m = _weights(mesh_m, y.shape[0], "mesh_m")
    if np.any(m < 0):
        raise ValueError("lumped masses must be non-negative")
    return y, m * rho


def mass_error(w, mesh_rho, mesh_m) -> float:
    """|Σ w_i − Σ_q m_q ρ_q|: the mass discrepancy, reported next to every shape distance."""
    return float(abs(np.sum(w) - np.dot(np.asarray(mesh_m, float), np.asarray(mesh_rho, float))))


def _normalized(w: np.ndarray, v: np.ndarray, normalize: bool, mass_tol: float, what: str):
    """Probability vectors a = w/Σw, b = v/Σv.  Without ``normalize`` the masses must agree to a
    relative ``mass_tol``: a balanced distance between measures of different masses would
    silently compare shapes only, so the caller has to ask for that explicitly."""
    sw, sv = float(w.sum()), float(v.sum())
    if not (sw > 0 and sv > 0):
        raise ValueError(f"{what}: both measures need positive total mass (got {sw:.6g} and {sv:.6g})")
    if np.any(w < 0) or np.any(v < 0):
        raise ValueError(f"{what}: weights must be non-negative")
    if not normalize and abs(sw - sv) > mass_tol * max(sw, sv):
        raise ValueError(
            f"{what}: total masses differ ({sw:.10g} vs {sv:.10g}, relative {abs(sw - sv) / max(sw, sv):.3g} "
            f"> mass_tol={mass_tol:g}); pass normalize=True to compare the normalized shapes "
            "and report the mass error separately (mass_error), or use unbalanced_sinkhorn"
        )
    return w / sw, v / sv


# ------------------------------------------------------------------------------------------
# MMD (MATH §6 (a))
# ------------------------------------------------------------------------------------------
def _mmd_terms(kernel: Kernel, X, w, Y, v, chunk: int):
    """(MMD², scale): MMD² from the three double sums Σ w w k(x, x) − 2 Σ w v k(x, y) + Σ v v k(y, y),
    each a chunked Gram product (memory O(chunk · n), never the full Gram matrix), and the
    magnitude of the summed terms, against which round-off in MMD² is judged.

    Same support (two densities on one mesh): MMD² = dᵀKd with d = w − v — one Gram pass instead
    of three and no cancellation between O(1) terms; the scale |d|ᵀK|d| comes from the same pass
    (a second column)."""
    tol = MMD_SUM_TOL
    if X.shape == Y.shape and np.array_equal(X, Y):
        dlt = w - v
        both = kernel.apply(X, X, np.stack([dlt, np.abs(dlt)], axis=1), chunk, tol=tol, relative_to="sources")
        return float(dlt @ both[:, 0]), abs(float(np.abs(dlt) @ both[:, 1]))
    if kernel.name == "energy" and X.shape[1] == 1 and abs(w.sum() - v.sum()) <= 1e-12 * max(w.sum(), v.sum()):
        return energy_distance2_1d(X[:, 0], w, Y[:, 0], v), 2.0 * float(w.sum()) * (np.ptp(X) + np.ptp(Y))
    xx = float(w @ kernel.apply(X, X, w, chunk, tol=tol, relative_to="sources"))
    xy = float(w @ kernel.apply(X, Y, v, chunk, tol=tol, relative_to="sources"))
    yy = float(v @ kernel.apply(Y, Y, v, chunk, tol=tol, relative_to="sources"))
    return xx - 2.0 * xy + yy, abs(xx) + 2.0 * abs(xy) + abs(yy)


# The kernel sums of an MMD² are asked for an error ≤ 1e-13·Σ|weights| per entry (pdeflow.approx.sums,
# relative_to="sources"): each of the three terms is then exact to 1e-13·(total mass)², far below
# the MMD² of any comparison made here (the Monte-Carlo floor at N = 10⁶ is ~1e-6·mass²).  The
# result-relative contract would make the NUFFT decline (and an exact O(N·M) sum take over) for a
# narrow kernel on a wide cloud, where R ≪ Σ|weights|.
MMD_SUM_TOL = 1e-13


def energy_distance2_1d(x, w, y, v) -> float:
    """MMD² of the energy kernel k = −|x − y| between two measures of equal mass on the line, exactly
    and in O((N + M) log(N + M)):  −Σ ww|x−x'| + 2Σ wv|x−y| − Σ vv|y−y'| = 2∫(F − G)² dt, F and G
    the (unnormalized) distribution functions — piecewise constant between the merged, sorted
    support points (Székely–Rizzo; the double sums would be O(N·M))."""
    pts = np.concatenate([x, y])
    mass = np.concatenate([w, -v])
    order = np.argsort(pts, kind="stable")
    diff = np.cumsum(mass[order])[:-1]  # F − G on each gap
    gaps = np.diff(pts[order])
    return float(2.0 * np.dot(diff * diff, gaps))


def _prepare(x, w, y, v, normalize: bool):
    X, Y = _points(x), _points(y)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"point sets of dimensions {X.shape[1]} and {Y.shape[1]}")
    w, v = _weights(w, X.shape[0]), _weights(v, Y.shape[0])
    if normalize:
        w, v = w / w.sum(), v / v.sum()
    return X, w, Y, v


def mmd_squared(kernel: Kernel, x, w, y, v, normalize: bool = False, chunk: int = DEFAULT_CHUNK) -> float:
    """MMD² by the three double sums of MATH §6 (a), *unclipped*: it may be slightly negative from
    round-off, and for the energy kernel with unequal masses genuinely negative."""
    return _mmd_terms(kernel, *_prepare(x, w, y, v, normalize), chunk)[0]


def mmd(kernel: Kernel, x, w, y, v, normalize: bool = False, chunk: int = DEFAULT_CHUNK) -> float:
    """MMD_k between Σ w_i δ_{x_i} and Σ v_q δ_{y_q} (not squared), MATH §6 (a).

    MMD² is a difference of O(1) sums, so round-off can make it slightly negative; that is clipped
    to 0 — but only when it is round-off (|MMD²| ≤ 1e-10 × the sum of the magnitudes of the three
    terms).  A larger negative value means a kernel that is not positive definite for these
    measures (energy kernel, unequal masses) and raises.  ``normalize``: compare w/Σw with v/Σv
    (shapes only).  For the energy kernel with unequal masses a warning is issued: MMD² is then
    not the energy distance (see the module docstring); report :func:`mass_error` separately.
    """
    X, w, Y, v = _prepare(x, w, y, v, normalize)
    if kernel.name == "energy" and abs(w.sum() - v.sum()) > 1e-8 * max(abs(w.sum()), abs(v.sum())):
        warnings.warn(
            f"energy-kernel MMD between measures of masses {w.sum():.8g} and {v.sum():.8g}: the energy "
            "distance is defined for equal masses; use normalize=True and report mass_error separately",
            stacklevel=2,
        )
    m2, scale = _mmd_terms(kernel, X, w, Y, v, chunk)
    if m2 < 0:
        if m2 < -1e-10 * scale:
            raise ValueError(
                f"MMD² = {m2:.3e} < 0 beyond round-off ({kernel.name} kernel): not a squared norm for these "
                "measures (energy kernel with unequal masses?)"
            )
        m2 = 0.0
    return math.sqrt(m2)


def mmd_to_mesh(kernel: Kernel, x, w, mesh_x, mesh_rho, mesh_m, normalize: bool = False,
                chunk: int = DEFAULT_CHUNK) -> float:
    """MMD_k(Σ w_i δ_{x_i}, ρ_h) with ρ_h by vertex quadrature (v_q = m_q ρ_q)."""
    y, v = mesh_cloud(mesh_x, mesh_rho, mesh_m)
    return mmd(kernel, x, w, y, v, normalize=normalize, chunk=chunk)


def mmd_multiscale(x, w, mesh_x, mesh_rho, mesh_m, scales: Sequence[float] = (0.1, 0.3, 1.0),
                   normalize: bool = False, chunk: int = DEFAULT_CHUNK) -> dict:
    """{ℓ: MMD with the Gaussian kernel of bandwidth ℓ} for each ℓ in ``scales`` (MATH §6 (a):
    several ℓ, e.g. 0.1, 0.3, 1 × the domain scale — a single ℓ is blind to structure much finer
    or much coarser than itself)."""
    y, v = mesh_cloud(mesh_x, mesh_rho, mesh_m)
    return {float(s): mmd(Kernel("gaussian", float(s)), x, w, y, v, normalize=normalize, chunk=chunk)
            for s in scales}


def compare_to_mesh(x, w, mesh_x, mesh_rho, mesh_m, scales: Sequence[float] = (0.1, 0.3, 1.0),
                    chunk: int = DEFAULT_CHUNK, energy: bool = True) -> dict:
    """The primary report of MATH §6 (a): Gaussian MMD at several scales (unnormalized: MMD sees
    mass differences), energy distance of the normalized shapes (``energy``: off for the particle
    counts where its O(N²) double sum in d ≥ 2 is out of reach), and the mass error."""
    y, v = mesh_cloud(mesh_x, mesh_rho, mesh_m)
    out = {
        "mmd_gaussian": {float(s): mmd(Kernel("gaussian", float(s)), x, w, y, v, chunk=chunk) for s in scales},
        "mass_particles": float(np.sum(w)),
        "mass_mesh": float(v.sum()),
        "mass_error": mass_error(w, mesh_rho, mesh_m),
    }
    if energy:
        out["energy_distance_normalized"] = mmd(Kernel("energy"), x, w, y, v, normalize=True, chunk=chunk)
    return out


def boundary_layer_mass(x, w, mesh_x, mesh_rho, mesh_m, distance, width: float) -> dict:
    """Mass near ∂Ω, where kernel methods and the no-flux PDE part ways first.

    With the tent ψ(x) = max(0, 1 − dist(x, ∂Ω)/width) (Lipschitz, so the vertex quadrature of the
    reference converges at O(h²) instead of O(h) for a sharp indicator):

        particles:  Σ_i w_i ψ(x_i),        reference:  Σ_j m_j ρ_j ψ(y_j),

    and ``relative_error`` = (particles − reference)/reference (None, ``measurable`` False, where the
    reference holds less than BOUNDARY_LAYER_THRESHOLD of its mass in the layer), signed: < 0 means the particles
    leave the boundary layer under-populated, > 0 that they pile up there.  ``reference_fraction``
    is the reference's layer mass over its total mass: N times it is the number of equal-weight
    particles the layer should hold, below ~10 of which the relative error is mostly Monte Carlo.  ``distance`` maps
    points (N, d) to their distance to ∂Ω (:meth:`pdeflow.problem.Domain.distance_to_boundary`)."""
    if not width > 0:
        raise ValueError("width must be positive")
    x = np.asarray(x, dtype=float)
    mesh_x = np.asarray(mesh_x, dtype=float)
    tent_p = np.maximum(0.0, 1.0 - distance(x) / width)
    tent_r = np.maximum(0.0, 1.0 - distance(mesh_x) / width)
    a = float(np.dot(np.asarray(w, float), tent_p))
    b = float(np.dot(np.asarray(mesh_m, float) * np.asarray(mesh_rho, float), tent_r))
    total = float(np.dot(np.asarray(mesh_m, float), np.asarray(mesh_rho, float)))
    fraction = b / total if total > 0 else float("nan")
    # below BOUNDARY_LAYER_THRESHOLD of the mass (1e-4: one particle in 10⁴) a relative error is
    # noise over a near-zero denominator (−1 for an empty layer), not a measurement
    measurable = bool(fraction >= BOUNDARY_LAYER_THRESHOLD)
    return {"width": float(width), "particles": a, "reference": b, "reference_fraction": fraction,
            "measurable": measurable, "threshold": BOUNDARY_LAYER_THRESHOLD,
            "relative_error": (a - b) / b if measurable else None}


BOUNDARY_LAYER_THRESHOLD = 1e-4


# ------------------------------------------------------------------------------------------
# Gaussian closed forms (MATH §3.4 items 5 and 6)
# ------------------------------------------------------------------------------------------
def _mean_cov(m, S):
    m = np.atleast_1d(np.asarray(m, dtype=float))
    S = np.atleast_2d(np.asarray(S, dtype=float))
    if S.shape != (m.size, m.size):
        raise ValueError(f"covariance of shape {S.shape} does not match mean of size {m.size}")
    return m, S


def gaussian_kernel_expectation(ell: float, m1, S1, m2, S2) -> float:
    """E k(X, Y) for k = exp(−|x−y|²/(2ℓ²)), X ~ N(m₁, Σ₁), Y ~ N(m₂, Σ₂) independent (MATH §3.4
    item 5).  Σ = 0 is allowed (a point mass), so E_Y k(x, Y) is the case m1 = x, S1 = 0."""
    m1, S1 = _mean_cov(m1, S1)
    m2, S2 = _mean_cov(m2, S2)
    d = m1.size
    A = ell**2 * np.eye(d) + S1 + S2
    dm = m1 - m2
    _, logdet = np.linalg.slogdet(A)
    return float(math.exp(d * math.log(ell) - 0.5 * logdet - 0.5 * dm @ np.linalg.solve(A, dm)))


def gaussian_mmd_squared_closed_form(ell: float, z1: float, m1, S1, z2: float, m2, S2) -> float:
    """MMD² between z₁N(m₁, Σ₁) and z₂N(m₂, Σ₂) with the Gaussian kernel of bandwidth ℓ."""
    e11 = gaussian_kernel_expectation(ell, m1, S1, m1, S1)
    e22 = gaussian_kernel_expectation(ell, m2, S2, m2, S2)
    e12 = gaussian_kernel_expectation(ell, m1, S1, m2, S2)
    return z1 * z1 * e11 - 2.0 * z1 * z2 * e12 + z2 * z2 * e22


def gaussian_mmd_closed_form(ell: float, z1: float, m1, S1, z2: float, m2, S2) -> float:
    """MMD (not squared) between z₁N(m₁, Σ₁) and z₂N(m₂, Σ₂), Gaussian kernel of bandwidth ℓ."""
    return math.sqrt(max(gaussian_mmd_squared_closed_form(ell, z1, m1, S1, z2, m2, S2), 0.0))


def w2_gaussian(m1, S1, m2, S2) -> float:
    """W₂ (not squared) between N(m₁, Σ₁) and N(m₂, Σ₂) (MATH §3.4 item 6)."""
    m1, S1 = _mean_cov(m1, S1)
    m2, S2 = _mean_cov(m2, S2)
    r2 = linalg.sqrtm(S2)
    cross = linalg.sqrtm(r2 @ S1 @ r2)
    # sqrtm may return a complex array with round-off imaginary parts for SPD input
    w2sq = float(np.sum((m1 - m2) ** 2) + np.trace(S1 + S2 - 2.0 * np.real(cross)))
    return math.sqrt(max(w2sq, 0.0))


# ------------------------------------------------------------------------------------------
# smoothed L1 / L2 (MATH §6 (b))
# ------------------------------------------------------------------------------------------
def gaussian_smoothing(points, x, w, sigma: float, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """(K_σ * Σ w_i δ_{x_i})(g) = Σ_i w_i K_σ(g − x_i) at the rows g of ``points``, with the
    *normalized* Gaussian K_σ = N(0, σ²I) density, so that ∫ K_σ*μ = Σ w (mass is preserved)."""
    G, X = _points(points), _points(x)
    w = _weights(w, X.shape[0])
    d = X.shape[1]
    return Kernel("gaussian", sigma).apply(G, X, w, chunk) / (2.0 * math.pi * sigma * sigma) ** (d / 2)


def smoothed_distances(x, w, mesh_x, mesh_rho, mesh_m, sigma: float, grid=None, grid_weights=None,
                       chunk: int = DEFAULT_CHUNK) -> dict:
    """L¹ and L² norms of K_σ*μ − K_σ*ρ_h on a quadrature grid (MATH §6 (b)).

    Both sides are smoothed by the *same* K_σ: comparing K_σ*μ with ρ_h itself would add the
    smoothing bias K_σ*ρ − ρ = (σ²/2)Δρ + O(σ⁴), an O(σ²) error (O(σ) in L¹ near ∂Ω, where
    a truncated KDE loses mass) that dominates the particle error one wants to see.  Smoothing
    both sides turns the L² distance into an MMD (§3.6) — no bias, only the kernel's scale.

    K_σ*ρ_h is evaluated with ρ_h as its weighted vertex cloud (v_q = m_q ρ_q), i.e. a vertex
    quadrature of the convolution: accurate when σ is several mesh sizes.

    ``grid``/``grid_weights``: quadrature points (n_g, d) and weights for the norms; by default
    the mesh vertices with their lumped masses, i.e. the norms over Ω.  Mass of K_σ*μ that
    leaks out of Ω (particles within a few σ of ∂Ω) is then not counted; to evaluate on R^d
    (the §3.6 identity) pass a grid covering the support plus several σ.
    """
    y, v = mesh_cloud(mesh_x, mesh_rho, mesh_m)
    if grid is None:
        g, gw = y, _weights(mesh_m, y.shape[0], "mesh_m")
        if grid_weights is not None:
            raise ValueError("grid_weights given without grid")
    else:
        g = _points(grid)
        if grid_weights is None:
            raise ValueError("a grid needs its quadrature weights (grid_weights)")
        gw = _weights(grid_weights, g.shape[0], "grid_weights")
    diff = gaussian_smoothing(g, x, w, sigma, chunk) - gaussian_smoothing(g, y, v, sigma, chunk)
    return {
        "L1": float(gw @ np.abs(diff)),
        "L2": float(math.sqrt(max(float(gw @ (diff * diff)), 0.0))),
        "sigma": float(sigma),
    }


# ------------------------------------------------------------------------------------------
# Wasserstein-2 (MATH §6 (c))
# ------------------------------------------------------------------------------------------
def w2_1d(x, w, y, v, normalize: bool = False, mass_tol: float = 1e-6) -> float:
    """W₂ (not squared) between two weighted point sets on R, exactly, via quantile functions:
    W₂² = ∫₀¹ |F_μ^{-1}(s) − F_ν^{-1}(s)|² ds.

    Both weight vectors are normalized to probability vectors first — ``ot.wasserstein_1d`` does
    not normalize: it builds the quantile functions from the cumulative weights as given.  The
    masses must agree to the relative ``mass_tol`` unless ``normalize=True``.
    """
    X, Y = _points(x), _points(y)
    if X.shape[1] != 1 or Y.shape[1] != 1:
        raise ValueError("w2_1d needs 1-D points; use w2_emd in d ≥ 2")
    a, b = _normalized(_weights(w, X.shape[0]), _weights(v, Y.shape[0]), normalize, mass_tol, "w2_1d")
    # POT 0.9.7, ot/lp/solver_1d.py, wasserstein_1d docstring: "OT_loss = ∫_0^1 |cdf_u^{-1}(q) −
    # cdf_v^{-1}(q)|^p dq. It is formally the p-Wasserstein distance raised to the power p." —
    # with p=2 it returns W₂², so take the square root.
    w2sq = float(_ot().wasserstein_1d(X[:, 0], Y[:, 0], a, b, p=2))
    return math.sqrt(max(w2sq, 0.0))


def w2_emd(x, w, y, v, normalize: bool = False, mass_tol: float = 1e-6, num_iter_max: int = 10_000_000) -> float:
    """W₂ (not squared) between two weighted point sets in R^d by the exact LP:
    W₂² = ot.emd2(a, b, ot.dist(X, Y)), where ``ot.dist`` defaults to metric='sqeuclidean'
    (|x−y|², POT 0.9.7 ot/utils.py) and ``ot.emd2`` returns the optimal ⟨γ, M⟩.  a, b are the
    normalized weights (ot.emd2 requires equal sums); masses must agree to ``mass_tol`` unless
    ``normalize=True``.  Cost O(n·m) memory and roughly cubic time: meant for clouds up to a few
    thousand points (subsample or coarsen the mesh beyond that)."""
    X, Y = _points(x), _points(y)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"point sets of dimensions {X.shape[1]} and {Y.shape[1]}")
    a, b = _normalized(_weights(w, X.shape[0]), _weights(v, Y.shape[0]), normalize, mass_tol, "w2_emd")
    ot = _ot()
    M = ot.dist(X, Y)  # squared Euclidean
    with warnings.catch_warnings():
        # POT reports non-optimality by a UserWarning *and* the log's result_code (1 = optimal,
        # ot.lp.emd_wrap.check_result); the code is checked instead of matching message text
        warnings.simplefilter("ignore", UserWarning)
        cost, info = ot.emd2(a, b, M, numItermax=num_iter_max, log=True)
    if info["result_code"] != 1:
        raise RuntimeError(f"ot.emd2 did not reach optimality: {info['warning']}")
    cost = float(cost)
    return math.sqrt(max(cost, 0.0))


def w2(x, w, y, v, normalize: bool = False, mass_tol: float = 1e-6) -> float:
    """W₂: exact quantile formula in 1-D (:func:`w2_1d`), network simplex otherwise (:func:`w2_emd`)."""
    if _points(x).shape[1] == 1:
        return w2_1d(x, w, y, v, normalize=normalize, mass_tol=mass_tol)
    return w2_emd(x, w, y, v, normalize=normalize, mass_tol=mass_tol)


def w2_to_mesh(x, w, mesh_x, mesh_rho, mesh_m, normalize: bool = False, mass_tol: float = 1e-6) -> float:
    """W₂ between the particles and the vertex cloud of ρ_h (normalized shapes, see :func:`w2`)."""
    y, v = mesh_cloud(mesh_x, mesh_rho, mesh_m)
    return w2(x, w, y, v, normalize=normalize, mass_tol=mass_tol)


# ------------------------------------------------------------------------------------------
# unbalanced entropic OT (MATH §6 (c), "Unbalanced / WFR")
# ------------------------------------------------------------------------------------------
def _gkl(p: np.ndarray, q: np.ndarray) -> float:
    """Generalized KL Σ p log(p/q) − p + q (0 log 0 = 0)."""
    pos = p > 0
    return float(np.sum(p[pos] * np.log(p[pos] / q[pos])) - p.sum() + q.sum())


def unbalanced_sinkhorn(x, w, y, v, reg: float, reg_m, method: str = "sinkhorn", num_iter_max: int = 200_000,
                        stop_thr: float = 1e-10, log: bool = False):
    """Entropic unbalanced OT between Σ w_i δ_{x_i} and Σ v_q δ_{y_q} with cost C = |x−y|²:

        UOT = min_{γ≥0} ⟨γ, C⟩ + reg·KL(γ | w⊗v) + reg_m·[KL(γ1 | w) + KL(γᵀ1 | v)],

    all KL **generalized**: KL(p|q) = Σ p log(p/q) − p + q ≥ 0.  Returns this minimum (≥ 0); with
    ``log=True`` also a dict: ``linear`` = ⟨γ, C⟩ (the default return value of
    ``ot.unbalanced.sinkhorn_unbalanced2``), ``pot_total`` (its returnCost='total', see below),
    ``plan_mass`` = Σγ, the two masses, the KL terms, the iteration count and the plan.  No
    normalization: comparing masses is the point of unbalanced OT.  ``reg_m`` may be a pair
    (reg_m1, reg_m2), or inf for a hard marginal.

    POT conventions (read in the installed POT 0.9.7: ot/unbalanced/_sinkhorn.py, ot/backend.py):

    * ``sinkhorn_unbalanced``/``sinkhorn_unbalanced2`` document the objective above with
      reg_type='kl' (the default since 0.9.5; reference measure c = a bᵀ) and "KL" unqualified.
      They solve it by the scaling iteration of Chizat et al. (2018), u = (a/Kv)^{reg_m/(reg_m+reg)},
      K = exp(−C/reg)·a bᵀ, whose fixed point is the optimality condition of the **generalized**
      KL (with the mass terms −p + q).  test_compare checks this: the returned plan is stationary
      under γ → tγ for the generalized objective, not for the plain one.
    * ``sinkhorn_unbalanced2`` returns only ⟨γ, C⟩ by default (returnCost='linear').  Its
      returnCost='total' adds the KL terms computed by ``nx.kl_div(p, q)`` with the default
      mass=False, i.e. the *plain* Σ p log(p/q).  At the optimum that sum is exactly
      d/dt F(tγ)|_{t=1} of the generalized objective, hence ≈ 0 (up to the convergence error) —
      not the minimum value.  The objective is therefore assembled here from the plan.
    * reg_m → ∞ recovers balanced entropic OT (equal masses): the marginal penalties vanish like
      O(1/reg_m), ⟨γ, C⟩ → ``ot.sinkhorn2`` and the objective → ⟨γ, C⟩ + reg·KL(γ | a⊗b).

    The plan comes from ``ot.unbalanced.sinkhorn_unbalanced`` (the routine that
    ``sinkhorn_unbalanced2`` wraps, returning only costs — one solve instead of two).  method:
    'sinkhorn' (default; robust, but the total-mass mode contracts only by reg_m/(reg_m+reg) per
    iteration, so large reg_m/reg needs ~(reg_m/reg)·log(1/tol) iterations),
    'sinkhorn_translation_invariant' (Séjourné et al. 2022: fast for large reg_m with nearly
    equal masses; observed to overflow to NaN for large reg_m with unequal masses) or
    'sinkhorn_stabilized' (small reg; observed to fail for reg_m ≳ 10 with default settings).
    Non-convergence and NaN raise RuntimeError.
    """
    X, Y = _points(x), _points(y)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"point sets of dimensions {X.shape[1]} and {Y.shape[1]}")
    a, b = _weights(w, X.shape[0]), _weights(v, Y.shape[0])
    if np.any(a <= 0) or np.any(b <= 0):
        raise ValueError("unbalanced_sinkhorn: weights must be positive (drop empty atoms first)")
    if not reg > 0:
        raise ValueError("reg must be positive")
    r1, r2 = (float(reg_m), float(reg_m)) if np.isscalar(reg_m) else tuple(float(r) for r in reg_m)
    ot = _ot()
    C = ot.dist(X, Y)  # squared Euclidean (metric='sqeuclidean' is ot.dist's default)
    with warnings.catch_warnings():
        # POT signals breakdown by warnings ("Numerical errors at iteration …", "did not converge")
        warnings.simplefilter("error", category=UserWarning)
        warnings.simplefilter("ignore", category=RuntimeWarning)  # overflow: detected below as NaN
        try:
            plan, info = ot.unbalanced.sinkhorn_unbalanced(
                a, b, C, reg, (r1, r2), method=method, reg_type="kl", numItermax=num_iter_max,
                stopThr=stop_thr, log=True,
            )
        except UserWarning as exc:
            raise RuntimeError(f"POT unbalanced Sinkhorn ({method}) failed: {exc}") from exc
    plan = np.asarray(plan)
    errs = info.get("err", [])
    if not np.all(np.isfinite(plan)):
        raise RuntimeError(f"POT unbalanced Sinkhorn ({method}) produced NaN/inf (overflow); "
                           "try method='sinkhorn', a larger reg or a smaller reg_m")
    if len(errs) >= num_iter_max and not errs[-1] < stop_thr:
        raise RuntimeError(f"POT unbalanced Sinkhorn ({method}) did not converge in {num_iter_max} iterations "
                           f"(last change {errs[-1]:.2e} > {stop_thr:g}); raise num_iter_max, or for large "
                           "reg_m with nearly equal masses use method='sinkhorn_translation_invariant'")
    linear = float(np.sum(plan * C))
    ent = _gkl(plan.ravel(), np.outer(a, b).ravel())
    kl1, kl2 = _gkl(plan.sum(1), a), _gkl(plan.sum(0), b)
    total = linear + reg * ent
    total += (r1 * kl1 if math.isfinite(r1) else 0.0) + (r2 * kl2 if math.isfinite(r2) else 0.0)
    if not log:
        return total
    return total, {
        "linear": linear,
        "pot_total": float(info["total_cost"]),
        "entropy_kl": ent,
        "marginal_kl": (kl1, kl2),
        "plan_mass": float(plan.sum()),
        "mass_a": float(a.sum()),
        "mass_b": float(b.sum()),
        "iterations": len(errs),
        "plan": plan,
    }


# ------------------------------------------------------------------------------------------
# Monte-Carlo floor (MATH §6 (a), (d) 3)
# ------------------------------------------------------------------------------------------
def sample_p1_1d(mesh_x, mesh_rho, n: int, rng: np.random.Generator) -> np.ndarray:
    """n i.i.d. points from the piecewise-linear density through (x_k, ρ_k) on a 1-D mesh, exactly:
    a cell is chosen with probability ∝ its mass h(ρ_a+ρ_b)/2, then t ∈ [0, 1] by inverting the
    quadratic CDF F(t) = (ρ_a t + (ρ_b−ρ_a)t²/2)/((ρ_a+ρ_b)/2) in the cancellation-free form
    t = 2c/(ρ_a + √(ρ_a² + 2(ρ_b−ρ_a)c)), c = u(ρ_a+ρ_b)/2 (also right for ρ_a = ρ_b)."""
    xs = np.asarray(mesh_x, float).reshape(-1)
    rho = np.asarray(mesh_rho, float).reshape(-1)
    order = np.argsort(xs)
    xs, rho = xs[order], rho[order]
    if np.any(rho < 0):
        raise ValueError("cannot sample a density with negative nodal values")
    ra, rb, h = rho[:-1], rho[1:], np.diff(xs)
    cell_mass = h * (ra + rb) / 2
    cells = rng.choice(cell_mass.size, size=n, p=cell_mass / cell_mass.sum())
    ra, rb = ra[cells], rb[cells]
    c = rng.random(n) * (ra + rb) / 2
    t = 2 * c / (ra + np.sqrt(np.maximum(ra * ra + 2 * (rb - ra) * c, 0.0)))
    return (xs[cells] + np.clip(t, 0.0, 1.0) * h[cells])[:, None]


def sample_vertex_cloud(mesh_x, mesh_rho, mesh_m, n: int, rng: np.random.Generator, h=None) -> np.ndarray:
    """n i.i.d. points from the vertex cloud Σ m_q ρ_q δ_{y_q} jittered uniformly in ±h/2 per
    coordinate and mirrored back into the mesh's bounding box (like particles.reflect).  Not an
    exact draw from the P1 density: the jitter adds covariance h²/12·I, a bias O(h²) in MMD²
    terms, small against the n^{-1/2} floor when h ≪ the kernel scale.  ``h`` (scalar or one per
    axis): by default median(m)^{1/d}, the spacing of a uniform simplicial box mesh (interior
    lumped mass h^d)."""
    y, v = mesh_cloud(mesh_x, mesh_rho, mesh_m)
    if np.any(v < 0):
        raise ValueError("cannot sample a density with negative nodal values")
    d = y.shape[1]
    if h is None:
        h = float(np.median(np.asarray(mesh_m, float))) ** (1.0 / d)
    h = np.broadcast_to(np.asarray(h, float), (d,))
    idx = rng.choice(y.shape[0], size=n, p=v / v.sum())
    pts = y[idx] + (rng.random((n, d)) - 0.5) * h
    lo, hi = y.min(0), y.max(0)
    width = np.where(hi > lo, hi - lo, 1.0)
    z = np.mod(pts - lo, 2 * width)
    z = np.where(z > width, 2 * width - z, z)
    return np.where(hi > lo, lo + z, pts)


def mc_floor(kernel: Kernel, mesh_x, mesh_rho, mesh_m, n: int, seeds: int = 20,
             rng: Optional[np.random.Generator] = None, chunk: int = DEFAULT_CHUNK) -> dict:
    """The Monte-Carlo floor of MMD_k for n particles: draw n i.i.d. points from ρ_h (weights
    M/n each, M = Σ m ρ), compute MMD(sample, ρ_h), repeat ``seeds`` times.

    1-D: exact draws from the P1 density (:func:`sample_p1_1d`).  d ≥ 2: jittered vertex cloud
    (:func:`sample_vertex_cloud`, an approximation with O(h²) bias).  The MMD is taken against
    the vertex cloud of ρ_h, as in :func:`mmd_to_mesh`.

    Returns mean and std (ddof=1) of MMD over the seeds, the root mean square, and the V-statistic
    prediction √E MMD² = M·√((E k(X,X) − E k(X,X'))/n) under exact sampling from the vertex cloud
    (MATH §6 (a)); a particle method with n particles cannot beat the mean.
    """
    rng = np.random.default_rng() if rng is None else rng
    y, v = mesh_cloud(mesh_x, mesh_rho, mesh_m)
    M = float(v.sum())
    d = y.shape[1]
    vals = np.empty(seeds)
    for s in range(seeds):
        xs = sample_p1_1d(y[:, 0], mesh_rho, n, rng) if d == 1 else sample_vertex_cloud(mesh_x, mesh_rho, mesh_m, n, rng)
        vals[s] = mmd(kernel, xs, np.full(n, M / n), y, v, chunk=chunk)
    p = v / M
    if kernel.name == "bilinear":
        e_xx = float(p @ (1.0 + (y * y).sum(1)))  # k(x, x) = 1 + |x|²
    else:  # translation invariant: k(x, x) = k(0, 0)
        e_xx = float(kernel.gram(np.zeros((1, d)), np.zeros((1, d)))[0, 0])
    e_xy = float(p @ kernel.apply(y, y, p, chunk))
    return {
        "mean": float(vals.mean()),
        "std": float(vals.std(ddof=1)) if seeds > 1 else float("nan"),
        "rms": float(np.sqrt(np.mean(vals**2))),
        "predicted_rms": M * math.sqrt(max(e_xx - e_xy, 0.0) / n),
        "n": int(n),
        "seeds": int(seeds),
        "values": vals,
    }


def mc_floors(scales, mesh_x, mesh_rhos, mesh_m, n: int, seeds: int = 20, rng: Optional[np.random.Generator] = None,
              times=None, chunk: int = DEFAULT_CHUNK) -> dict:
    """The Monte-Carlo floor of :func:`mc_floor` at every snapshot and every Gaussian scale: at each
    snapshot k, ``seeds`` oracle draws of n i.i.d. points from ρ_h(t_k) (weights M_k/n), and the MMD
    of each draw to the vertex cloud of ρ_h(t_k) at each scale — the draws are shared by the scales,
    the mesh self-terms computed once.  The kernel sums go through :mod:`pdeflow.approx.sums` (NUFFT
    for these Gaussians), so n = 10⁶ against a 10⁵-vertex reference costs a few seconds per draw.

    Returns ``mean``, ``std`` (ddof=1), ``rms`` and ``predicted_rms`` (the V-statistic value
    M·√((k(0) − E k(X, X'))/n)), each a (snapshots × scales) list, with ``t``, ``scales``, ``n``, ``seeds``."""
    if seeds < 2:
        raise ValueError("a Monte-Carlo floor needs at least 2 oracle draws (its std uses ddof = 1)")
    rng = np.random.default_rng() if rng is None else rng
    kernels = [Kernel("gaussian", float(s)) for s in scales]
    S, L = len(mesh_rhos), len(kernels)
    vals = np.empty((S, L, seeds))
    pred = np.empty((S, L))
    for k, rho in enumerate(mesh_rhos):
        y, v = mesh_cloud(mesh_x, rho, mesh_m)
        M = float(v.sum())
        yy = [float(v @ ker.apply(y, y, v, chunk, tol=MMD_SUM_TOL, relative_to="sources")) for ker in kernels]
        for i, ker in enumerate(kernels):
            pred[k, i] = M * math.sqrt(max(1.0 - yy[i] / (M * M), 0.0) / n)
        for s in range(seeds):
            xs = sample_p1_1d(y[:, 0], rho, n, rng) if y.shape[1] == 1 else sample_vertex_cloud(mesh_x, rho, mesh_m, n, rng)
            w = np.full(n, M / n)
            for i, ker in enumerate(kernels):
                xx = float(w @ ker.apply(xs, xs, w, chunk, tol=MMD_SUM_TOL, relative_to="sources"))
                xy = float(w @ ker.apply(xs, y, v, chunk, tol=MMD_SUM_TOL, relative_to="sources"))
                vals[k, i, s] = math.sqrt(max(xx - 2.0 * xy + yy[i], 0.0))
    return {
        "t": None if times is None else [float(t) for t in times], "scales": [float(s) for s in scales],
        "n": int(n), "seeds": int(seeds),
        "mean": vals.mean(-1).tolist(), "std": vals.std(-1, ddof=1).tolist(),
        "rms": np.sqrt((vals**2).mean(-1)).tolist(), "predicted_rms": pred.tolist(),
    }


# ------------------------------------------------------------------------------------------
# nested P1 distances in 1-D (self-convergence)
# ------------------------------------------------------------------------------------------
def _check_1d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, float)
    if x.ndim == 2:
        if x.shape[1] != 1:
            raise ValueError("nested P1 distances are implemented in 1-D only")
        x = x[:, 0]
    if np.any(np.diff(x) <= 0):
        raise ValueError("vertex coordinates must be sorted and distinct")
    return x


def p1_distances_1d(x_coarse, rho_coarse, x_fine, rho_fine) -> dict:
    """L1 and L2 distances between two P1 functions, the first on a mesh nested in the second."""
    xc, xf = _check_1d(x_coarse), _check_1d(x_fine)
    if not np.all(np.isin(np.round(xc, 12), np.round(xf, 12))):
        raise ValueError("the coarse mesh is not nested in the fine one")
    d = np.interp(xf, xc, np.asarray(rho_coarse, float)) - np.asarray(rho_fine, float)
    a, b, h = d[:-1], d[1:], np.diff(xf)
    same = a * b >= 0
    denom = np.where(same, 1.0, np.abs(a) + np.abs(b))
    l1 = np.where(same, h * (np.abs(a) + np.abs(b)) / 2, h * (a * a + b * b) / (2 * denom))
    l2 = h * (a * a + a * b + b * b) / 3
    return {"L1": float(l1.sum()), "L2": float(np.sqrt(l2.sum()))}

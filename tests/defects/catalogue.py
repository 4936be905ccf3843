"""Machine-readable catalogue of the external-method fixtures in this folder (seeded defects for
``pdeflow verify CASE --method tests/defects/FILE:run``).

Each entry: ``file`` (in this folder), ``method`` (transport = SVGD, reweighting = FR on fixed
particles, birth-death = Lu–Lu–Nolen with ULA moves), ``touches`` (reference, drift, interaction,
kernel, time-scale, initial, weights or harmless), ``expected`` (the verdict ``pdeflow verify``
must return), ``continuum`` (what the file declares), ``case`` and ``set`` (the ``--set`` values
to verify it on), ``what`` (the change in one line; the module docstring says the same) and
``plan`` (the smallest ``--plan`` of ``pdeflow verify`` whose sweep resolves the verdict; with a
smaller plan a weak defect may come out ``inconclusive``, never the opposite verdict).

Every defect is an O(1) relative change of the dynamics; every harmless variant differs from the
reference by a term that vanishes as dt → 0 or N → ∞ (or, for ``bd_harmless_uncentered``, not at
all in the mean field).  Each defect was checked to be visible above the particle noise: the
Gaussian MMD (scale 0.9) of the defect to the reference version at the same N is ≥ 3× that of two
reference runs with other seeds at some snapshot (SVGD at N = 2000, birth–death at N = 2500, FR at
N = 800; 4 seeds each).  Birth–death defects sit on the bimodal case, where they are largest;
a KDE bandwidth 1.5·sigma, a reaction rate ×1.25 or a ULA drift 0.8·∇log π in birth–death were
below 2× at N = 2500 and are not catalogued.  The FR entries set no ``sigma``: the FR method uses no kernel and its
continuum ``flow`` takes no parameters.

Loaded by file path (this folder is not a package)::

    spec = importlib.util.spec_from_file_location("defect_catalogue", "tests/defects/catalogue.py")
"""
from pathlib import Path

FOLDER = Path(__file__).resolve().parent

_SVGD = {"sigma": 0.5, "dt": 0.02}
_SVGD_MIX = {"beta": 0, "sigma": 0.5, "dt": 0.02}
_FR = {"dt": 0.02}
_BD = {"sigma": 0.5, "dt": 0.02}


def _e(file, method, touches, expected, case, sets, what, plan="standard"):
    continuum = {"transport": "stein", "reweighting": "flow", "birth-death": "kde-wfr"}[method]
    return {"file": file, "method": method, "touches": touches, "expected": expected, "continuum": continuum,
            "case": case, "set": dict(sets), "what": what, "plan": plan}


CATALOGUE = [
    # --- references (controls) ----------------------------------------------------------------
    _e("svgd_ok.py", "transport", "reference", "consistent", "w-kl-gauss-1d", _SVGD,
       "correct SVGD, Gaussian kernel of bandwidth sigma, explicit Euler"),
    _e("svgd_ok.py", "transport", "reference", "consistent", "wfr-kl-mixture-1d", _SVGD_MIX,
       "correct SVGD on the bimodal target"),
    _e("fr_ok.py", "reweighting", "reference", "consistent", "fr-kl-gauss-1d", _FR,
       "exact FR reweighting w ∝ (π/ρ0)^{1−e^{−βt}}"),
    _e("bd_ok.py", "birth-death", "reference", "consistent", "wfr-kl-gauss-1d", _BD,
       "correct stochastic birth–death + ULA, KDE bandwidth sigma"),
    _e("bd_ok.py", "birth-death", "reference", "consistent", "wfr-kl-mixture-1d", _BD,
       "correct birth–death on the bimodal target"),
    # --- transport (SVGD) defects ------------------------------------------------------------------
    _e("svgd_drift_scaled.py", "transport", "drift", "inconsistent", "w-kl-gauss-1d", _SVGD,
       "score 0.8·∇log π"),
    _e("svgd_drift_shifted.py", "transport", "drift", "inconsistent", "wfr-kl-mixture-1d", _SVGD_MIX,
       "score evaluated at x + 0.3"),
    _e("svgd_half_repulsion.py", "transport", "interaction", "inconsistent", "w-kl-gauss-1d", _SVGD,
       "repulsive ∇k term halved"),
    _e("svgd_wide_kernel.py", "transport", "kernel", "inconsistent", "w-kl-gauss-1d", _SVGD,
       "dynamics at bandwidth 1.5·sigma, declared sigma"),
    _e("svgd_fast_clock.py", "transport", "time-scale", "inconsistent", "w-kl-gauss-1d", _SVGD,
       "velocity 1.25·α·φ̂"),
    _e("svgd_shifted_init.py", "transport", "initial", "inconsistent", "w-kl-gauss-1d", _SVGD,
       "initial draw shifted by +0.3"),
    # --- reweighting (FR) defects -------------------------------------------------------------------
    _e("fr_linear_exponent.py", "reweighting", "time-scale", "inconsistent", "fr-kl-gauss-1d", _FR,
       "exponent βt instead of 1 − e^{−βt}"),
    _e("fr_squared_weights.py", "reweighting", "weights", "inconsistent", "fr-kl-gauss-1d", _FR,
       "weights ∝ w² (renormalized)"),
    _e("fr_unnormalized.py", "reweighting", "weights", "inconsistent", "fr-kl-gauss-1d", _FR,
       "no spherical normalization (mass 0.89, 0.84, 0.82 at t = 0.25, 0.5, 1)"),
    _e("fr_narrow_init.py", "reweighting", "initial", "inconsistent", "fr-kl-gauss-1d", _FR,
       "particles drawn with 0.7× the spread of ρ0, weighted as if from ρ0"),
    # --- birth–death defects ----------------------------------------------------------------------
    _e("bd_drift_shifted.py", "birth-death", "drift", "inconsistent", "wfr-kl-mixture-1d", _BD,
       "ULA score evaluated at x + 0.3"),
    _e("bd_fast_clock.py", "birth-death", "time-scale", "inconsistent", "wfr-kl-mixture-1d", _BD,
       "ULA move and kill/duplicate rate advance by 1.25·h per step of h", plan="thorough"),
    _e("bd_narrow_init.py", "birth-death", "initial", "inconsistent", "wfr-kl-mixture-1d", _BD,
       "particles drawn with 0.7× the spread of ρ0 (on the bimodal target the error persists to T)"),
    # --- harmless variants --------------------------------------------------------------------------
    _e("svgd_harmless_heun.py", "transport", "harmless", "consistent", "w-kl-gauss-1d", _SVGD,
       "Heun steps instead of Euler (vanishes as dt → 0)"),
    _e("svgd_harmless_no_self.py", "transport", "harmless", "consistent", "w-kl-gauss-1d", _SVGD,
       "self term j = i left out (O(1/N))"),
    _e("fr_harmless_mirror.py", "reweighting", "harmless", "consistent", "fr-kl-gauss-1d", _FR,
       "mirror steps of the weight ODE instead of the closed form (O(dt))", plan="thorough"),
    _e("bd_harmless_leave_one_out.py", "birth-death", "harmless", "consistent", "wfr-kl-mixture-1d", _BD,
       "leave-one-out KDE normalized by N − 1 (O(1/(Nσ)))"),
    _e("bd_harmless_uncentered.py", "birth-death", "harmless", "consistent", "wfr-kl-gauss-1d", _BD,
       "rate Λ_i = ξ̂_i without the mean (cancels in the mean field; more events, more noise)"),
]

DEFECTS = [e for e in CATALOGUE if e["expected"] == "inconsistent"]
HARMLESS = [e for e in CATALOGUE if e["touches"] == "harmless"]


def path(entry) -> Path:
    return FOLDER / entry["file"]


def spec(entry) -> str:
    """The ``--method`` value: ``<path to the file>:run``."""
    return f"{path(entry)}:run"


def set_args(entry) -> list:
    """``["sigma=0.5", "dt=0.02", ...]``: the ``--set`` values of the entry."""
    return [f"{k}={v}" for k, v in entry["set"].items()]


def verify_argv(entry, root: Path = None) -> list:
    """argv of ``pdeflow verify`` for the entry (file path relative to ``root`` when given)."""
    file = path(entry) if root is None else path(entry).relative_to(Path(root).resolve())
    argv = ["verify", entry["case"], "--method", f"{file}:run"]
    for item in set_args(entry):
        argv += ["--set", item]
    if entry["plan"] != "standard":
        argv += ["--plan", entry["plan"]]
    return argv

"""Forward work-precision: error at t1 against function evaluations and wall time.

For each problem, method and tolerance (rtol = atol = tol, from loose to tight), one solve
of y' = rhs(t, y) on [t0, t1] reports

    error = max_i |y_i(t1) − y_ref_i(t1)|,   nfe,   seconds (best of ``repeats``).

refnode's adaptive methods run through :func:`refnode.solve`; SciPy's RK45 and DOP853
through ``scipy.integrate.solve_ivp`` on the same right-hand side. A method's sweep stops
at the first tolerance that needs more than ``max_steps`` steps (low-order pairs at tight
tolerances), which is recorded, not hidden.
"""

import time

import numpy as np
from scipy.integrate import solve_ivp

from .. import StepControl, solve
from ..methods import ADAPTIVE_METHODS

#: SciPy's methods drawn beside refnode's: Dormand-Prince 5(4) and Hairer's DOP853.
SCIPY_METHODS = ("RK45", "DOP853")


def best_of(fn, repeats):
    """(smallest wall time of ``repeats`` calls of fn, the last result)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def refnode_solve(problem, method, tol, max_steps):
    """(y(t1), nfe) from refnode.solve."""
    def f(t, z, theta):
        return problem.rhs(t, z)
    sol = solve(f, problem.y0, np.array([problem.t0, problem.t1]), method=method, rtol=tol,
                atol=tol, control=StepControl(max_steps=max_steps))
    return sol.z[-1], sol.stats["nfe"]


def scipy_solve(problem, method, tol, max_steps):
    """(y(t1), nfe) from scipy.integrate.solve_ivp."""
    sol = solve_ivp(problem.rhs, (problem.t0, problem.t1), problem.y0, method=method,
                    rtol=tol, atol=tol)
    if not sol.success:
        raise RuntimeError(sol.message)
    return sol.y[:, -1], sol.nfev


def sweep(problem, library, method, tolerances, repeats, max_steps):
    """One record per tolerance, loose to tight; stops after the first failed solve."""
    run = refnode_solve if library == "refnode" else scipy_solve
    records = []
    for tol in sorted(tolerances, reverse=True):
        record = dict(part="forward", problem=problem.name, library=library, method=method,
                      tol=tol)
        try:
            seconds, (y_end, nfe) = best_of(lambda: run(problem, method, tol, max_steps), repeats)
        except RuntimeError as exc:                 # refnode.errors.SolverError, SciPy failure
            records.append(dict(record, failed=f"{type(exc).__name__}: {exc}"[:200]))
            break
        error = float(np.max(np.abs(y_end - problem.y_end)))
        records.append(dict(record, error=error, nfe=int(nfe), seconds=seconds))
    return records


def run_forward(problems, tolerances, repeats=3, max_steps=20000, methods=ADAPTIVE_METHODS):
    """Records for every problem × (refnode's ``methods`` + SciPy's) × tolerance."""
    records = []
    for problem in problems:
        for method in methods:
            records += sweep(problem, "refnode", method, tolerances, repeats, max_steps)
        for method in SCIPY_METHODS:
            records += sweep(problem, "scipy", method, tolerances, repeats, max_steps)
    return records

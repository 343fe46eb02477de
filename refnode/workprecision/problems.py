"""Standard non-stiff test problems with reference solutions at the end of the interval.

Each problem is y' = rhs(t, y) on [t0, t1] with y(t0) = y0, as NumPy code shared by refnode
and SciPy. The reference y(t1) is closed form where one exists (Arenstorf: the orbit is
periodic; DETEST B5: Jacobi elliptic functions) and otherwise a SciPy DOP853 solve at
rtol = 3e-14, atol = 1e-16, computed at run time; ``reference_spread`` is then the change of
that reference against one at 100× looser tolerances, a bound on its own error.
"""

import dataclasses

import numpy as np
from scipy.integrate import solve_ivp
from scipy.special import ellipj

#: Tightest tolerances SciPy accepts for DOP853 (rtol >= 100 eps) and an absolute floor.
REFERENCE_RTOL, REFERENCE_ATOL = 3e-14, 1e-16

#: Arenstorf orbit, HNW I, §II.0, eqs. (0.1)-(0.2): Moon mass ratio, start, period.
ARENSTORF_MU = 0.012277471
ARENSTORF_Y0 = (0.994, 0.0, 0.0, -2.00158510637908252240537862224)
ARENSTORF_PERIOD = 17.0652165601579625588917206249

#: Pleiades (HNW I, §II.10, problem PLEI): seven bodies of mass j = 1..7, t in [0, 3].
PLEIADES_X0 = (3, 3, -1, -3, 2, -2, 2)
PLEIADES_Y0 = (3, -3, 2, 0, 0, -4, 4)
PLEIADES_VX0 = (0, 0, 0, 0, 0, 1.75, -1.5)
PLEIADES_VY0 = (0, 0, 0, -1.25, 1, 0, 0)

#: Lotka-Volterra x' = a x - b x y, y' = -c y + d x y (a common teaching choice).
LOTKA_VOLTERRA = dict(a=1.5, b=1.0, c=3.0, d=1.0)

#: DETEST problem B5 (Hull, Enright, Fellen & Sedgwick, SIAM J. Numer. Anal. 9 (1972)):
#: Euler's equations of a rigid body, y = (sn, cn, dn)(t | m = 0.51), t in [0, 20].
DETEST_B5_M = 0.51


@dataclasses.dataclass
class Problem:
    """y' = rhs(t, y) on [t0, t1], y(t0) = y0; ``y_end`` the reference y(t1)."""

    name: str
    rhs: object
    y0: np.ndarray
    t0: float
    t1: float
    source: str
    y_end: np.ndarray = None
    reference: str = ""
    reference_spread: float = 0.0


def arenstorf_rhs(t, y):
    mu, mu1 = ARENSTORF_MU, 1.0 - ARENSTORF_MU
    y1, y2, v1, v2 = y
    d1 = ((y1 + mu) ** 2 + y2 ** 2) ** 1.5
    d2 = ((y1 - mu1) ** 2 + y2 ** 2) ** 1.5
    return np.array([v1, v2,
                     y1 + 2 * v2 - mu1 * (y1 + mu) / d1 - mu * (y1 - mu1) / d2,
                     y2 - 2 * v1 - mu1 * y2 / d1 - mu * y2 / d2])


def pleiades_rhs(t, y):
    """y = (x_1..7, y_1..7, x'_1..7, y'_1..7); x_i'' = Σ_j m_j (x_j − x_i) / r_ij³, m_j = j."""
    x, yy, vx, vy = y[:7], y[7:14], y[14:21], y[21:]
    m = np.arange(1.0, 8.0)
    dx, dy = x[None, :] - x[:, None], yy[None, :] - yy[:, None]      # [i, j]: x_j − x_i
    r3 = (dx ** 2 + dy ** 2) ** 1.5
    np.fill_diagonal(r3, np.inf)                                     # no self-force
    return np.concatenate([vx, vy, (m * dx / r3).sum(axis=1), (m * dy / r3).sum(axis=1)])


def lotka_volterra_rhs(t, y):
    p = LOTKA_VOLTERRA
    return np.array([p["a"] * y[0] - p["b"] * y[0] * y[1], -p["c"] * y[1] + p["d"] * y[0] * y[1]])


def detest_b5_rhs(t, y):
    return np.array([y[1] * y[2], -y[0] * y[2], -DETEST_B5_M * y[0] * y[1]])


def _tight_reference(problem):
    """y(t1) from SciPy DOP853 at the tightest tolerances, and its spread (see module doc)."""
    def solve(rtol, atol):
        sol = solve_ivp(problem.rhs, (problem.t0, problem.t1), problem.y0, method="DOP853",
                        rtol=rtol, atol=atol)
        if not sol.success:
            raise RuntimeError(f"reference solve of {problem.name} failed: {sol.message}")
        return sol.y[:, -1]
    y_end = solve(REFERENCE_RTOL, REFERENCE_ATOL)
    spread = float(np.max(np.abs(y_end - solve(100 * REFERENCE_RTOL, 100 * REFERENCE_ATOL))))
    problem.y_end, problem.reference_spread = y_end, spread
    problem.reference = f"SciPy DOP853, rtol={REFERENCE_RTOL:g}, atol={REFERENCE_ATOL:g}"
    return problem


def arenstorf():
    p = Problem("Arenstorf orbit", arenstorf_rhs, np.array(ARENSTORF_Y0), 0.0, ARENSTORF_PERIOD,
                "HNW I, §II.0, eq. (0.1)")
    p.y_end, p.reference = p.y0.copy(), "closed form: periodic, y(T) = y(0)"
    return p


def pleiades():
    y0 = np.array(PLEIADES_X0 + PLEIADES_Y0 + PLEIADES_VX0 + PLEIADES_VY0, dtype=float)
    return _tight_reference(Problem("Pleiades", pleiades_rhs, y0, 0.0, 3.0,
                                    "HNW I, §II.10, problem PLEI"))


def lotka_volterra():
    return _tight_reference(Problem("Lotka-Volterra", lotka_volterra_rhs, np.array([1.0, 1.0]),
                                    0.0, 10.0, "a=1.5, b=1, c=3, d=1, y0=(1, 1)"))


def detest_b5():
    t1 = 20.0
    p = Problem("DETEST B5 (rigid body)", detest_b5_rhs, np.array([0.0, 1.0, 1.0]), 0.0, t1,
                "Hull et al. 1972, problem B5")
    sn, cn, dn, _ = ellipj(t1, DETEST_B5_M)
    p.y_end, p.reference = np.array([sn, cn, dn]), "closed form: (sn, cn, dn)(t | 0.51)"
    return p


#: The forward problems by short name.
PROBLEMS = {"arenstorf": arenstorf, "pleiades": pleiades, "lotka_volterra": lotka_volterra,
            "detest_b5": detest_b5}

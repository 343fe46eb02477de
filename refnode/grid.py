"""The step grid of a solve, as fixed affine functions of the output times.

The discrete adjoint and the autograd oracle differentiate *the computed solution*: the
same steps, replayed. To give that solution a derivative with respect to the output
times t_i, every step point is a fixed affine combination of two output times,

    τ_n = (1 - s_n) t[lo_n] + s_n t[hi_n],      h_n = τ_{n+1} - τ_n,

with the fractions s_n held fixed (step-size selection is not differentiated):

* fixed grid — interval [t_i, t_{i+1}] cut into m_i equal steps: lo = i, hi = i + 1,
  s = j / m_i; every output time is a step point;
* adaptive — the accepted points stretch with the whole interval: lo = 0, hi = N - 1,
  s_n = (τ_n - t_0) / (t_{N-1} - t_0); outputs between points are dense output.
"""

from dataclasses import dataclass

import numpy as np


@dataclass
class StepGrid:
    """Step points and where each output time lies.

    Attributes
    ----------
    s : ndarray, shape (L + 1,)
        Fraction of each step point within its anchor interval.
    lo, hi : ndarray of int, shape (L + 1,)
        Indices of the output times the point is anchored to.
    out_step : ndarray of int, shape (N,)
        For output i >= 1, the step n whose interval (τ_n, τ_{n+1}] contains t_i
        (-1 for i = 0, which is the initial state itself).
    out_at_end : ndarray of bool, shape (N,)
        True where t_i is the step's end point τ_{n+1} (then z_i = y_{n+1} exactly).
    """

    s: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    out_step: np.ndarray
    out_at_end: np.ndarray

    @property
    def n_steps(self):
        return len(self.s) - 1

    def points(self, t):
        """τ_n for every point, from the output times ``t`` (any backend, traced or not).

        NumPy times give Python floats, which never promote a float32 state.
        """
        if isinstance(t, np.ndarray):
            t = t.tolist()
        return [(1.0 - s) * t[lo] + s * t[hi]
                for s, lo, hi in zip(self.s.tolist(), self.lo.tolist(), self.hi.tolist())]

    def point_time_gradient(self, tau_bar, n_times):
        """Σ_n τ̄_n ∂τ_n/∂t_i for every output i: shape (n_times,)."""
        t_bar = np.zeros(n_times)
        np.add.at(t_bar, self.lo, (1.0 - self.s) * tau_bar)
        np.add.at(t_bar, self.hi, self.s * tau_bar)
        return t_bar


def fixed_step_grid(n_per_interval):
    """The grid of a fixed-step solve with ``n_per_interval[i]`` steps in interval i."""
    s, lo, hi, out_step = [0.0], [0], [1], [-1]
    for i, m in enumerate(n_per_interval):
        s.extend(j / m for j in range(1, m + 1))
        lo.extend([i] * m)
        hi.extend([i + 1] * m)
        out_step.append(len(s) - 2)
    at_end = np.array([False] + [True] * len(n_per_interval))
    return StepGrid(np.array(s), np.array(lo), np.array(hi), np.array(out_step), at_end)


def adaptive_grid(t, accepted_points):
    """The grid of an adaptive solve from its accepted step points (``Solution.grid``)."""
    t = np.asarray(t, dtype=np.float64)
    tau = np.asarray(accepted_points, dtype=np.float64)
    span = t[-1] - t[0]
    s = (tau - t[0]) / span
    s[0], s[-1] = 0.0, 1.0                        # τ_0 = t_0 and τ_L = t_{N-1} exactly
    out_step, at_end = [-1], [False]
    direction = np.sign(span)
    n = 0
    for t_i in t[1:]:
        while (tau[n + 1] - t_i) * direction < 0:  # advance to the step containing t_i
            n += 1
        out_step.append(n)
        at_end.append(bool(tau[n + 1] == t_i))
    L = len(tau)
    return StepGrid(s, np.zeros(L, dtype=int), np.full(L, len(t) - 1), np.array(out_step),
                    np.array(at_end))

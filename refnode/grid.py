"""The step grid of a solve, as fixed affine functions of the output times.

The discrete adjoint and the autograd oracle differentiate *the computed solution*: the
same steps, replayed. To give that solution a derivative with respect to the output
times t_i, every step point is a fixed affine combination of two output times,

    τ_n = (1 - s_n) t[lo_n] + s_n t[hi_n],      h_n = τ_{n+1} - τ_n,

with the fractions s_n held fixed (step-size selection is not differentiated):

* fixed grid — interval [t_i, t_{i+1}] cut into m_i equal steps: lo = i, hi = i + 1,
  s = j / m_i; every output time is a step point;
* adaptive — the accepted points stretch with the whole interval: lo = 0, hi = N - 1,
  s_n = (τ_n - t_0) / (t_{N-1} - t_0); outputs between points are dense output;
* adaptive with a step size per sample (``batch="independent"``) — the same, with one
  row of fractions per sample, s of shape (B, L+1): step n takes sample b from τ_{b,n} to
  τ_{b,n+1}, a step of length 0 once b has run out of steps.
"""

from dataclasses import dataclass

import numpy as np

from .backend import to_numpy


@dataclass
class StepGrid:
    """Step points and where each output time lies.

    Attributes
    ----------
    s : ndarray, shape (L + 1,) or (B, L + 1)
        Fraction of each step point within its anchor interval (per sample: 2-D).
    lo, hi : ndarray of int, shape (L + 1,)
        Indices of the output times the point is anchored to.
    out_step : ndarray of int, shape (N,) or (B, N)
        For output i >= 1, the step n whose interval (τ_n, τ_{n+1}] contains t_i
        (-1 for i = 0, which is the initial state itself).
    out_at_end : ndarray of bool, shape (N,) or (B, N)
        True where t_i is the step's end point τ_{n+1} (then z_i = y_{n+1} exactly).
    """

    s: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    out_step: np.ndarray
    out_at_end: np.ndarray

    @property
    def n_steps(self):
        return self.s.shape[-1] - 1

    @property
    def per_sample(self):
        return self.s.ndim == 2

    def points(self, t, xp=np):
        """τ_n for every point, from the output times ``t`` (any backend, traced or not).

        One grid: Python floats, which never promote a float32 state. Per sample: a
        (B,) array of module ``xp`` for each point.
        """
        if isinstance(t, np.ndarray):
            t = t.tolist()
        if not self.per_sample:
            return [(1.0 - s) * t[lo] + s * t[hi]
                    for s, lo, hi in zip(self.s.tolist(), self.lo.tolist(), self.hi.tolist())]
        return [xp.asarray((1.0 - s) * t[lo] + s * t[hi])
                for s, lo, hi in zip(self.s.T, self.lo.tolist(), self.hi.tolist())]

    def outputs_of_step(self, n, xp=np):
        """[(i, in_step, at_end)] for the outputs i >= 1 that step n reaches.

        ``in_step`` and ``at_end`` are bools, or (B,) masks of module ``xp`` per sample.
        """
        if not self.per_sample:
            return [(i, True, bool(self.out_at_end[i]))
                    for i in np.flatnonzero(self.out_step == n).tolist() if i >= 1]
        hits = self.out_step == n
        return [(i, xp.asarray(hits[:, i]), xp.asarray(self.out_at_end[:, i]))
                for i in range(1, self.out_step.shape[1]) if hits[:, i].any()]

    def point_time_gradient(self, tau_bar, n_times):
        """Σ_n τ̄_n ∂τ_n/∂t_i for every output i: shape (n_times,) (summed over samples).

        ``tau_bar`` holds one cotangent per step point: floats, or (B,) arrays per sample.
        """
        tau_bar = np.array([to_numpy(v) for v in tau_bar], dtype=np.float64)   # (L+1,) or (L+1, B)
        s = self.s if not self.per_sample else self.s.T
        t_bar = np.zeros(n_times)
        np.add.at(t_bar, self.lo, np.reshape((1.0 - s) * tau_bar, (len(self.lo), -1)).sum(1))
        np.add.at(t_bar, self.hi, np.reshape(s * tau_bar, (len(self.hi), -1)).sum(1))
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
    """The grid of an adaptive solve from its accepted step points.

    Parameters
    ----------
    t : array, shape (N,)
    accepted_points : array, shape (L + 1,), or (B, L + 1) per sample
        ``Solution.grid``: the accepted step points (per sample: padded with t[-1]).
    """
    t = np.asarray(t, dtype=np.float64)
    tau = np.atleast_2d(np.asarray(accepted_points, dtype=np.float64))     # (B, L+1)
    direction = np.sign(t[-1] - t[0])
    s = (tau - t[0]) / (t[-1] - t[0])
    s[:, 0] = 0.0                                   # τ_0 = t_0 and τ_L = t_{N-1} exactly
    s[tau == t[-1]] = 1.0
    u, u_t = direction * tau, direction * t
    out_step = np.sum(u[:, 1:, None] < u_t[None, None, :], axis=1)        # (B, N)
    end = np.take_along_axis(tau, np.minimum(out_step + 1, tau.shape[1] - 1), axis=1)
    at_end = (end == t[None, :]) & (out_step >= 0)
    out_step[:, 0], at_end[:, 0] = -1, False
    L = tau.shape[1]
    lo, hi = np.zeros(L, dtype=int), np.full(L, len(t) - 1)
    if np.ndim(accepted_points) == 1:
        return StepGrid(s[0], lo, hi, out_step[0], at_end[0])
    return StepGrid(s, lo, hi, out_step, at_end)

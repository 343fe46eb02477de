"""The result of a solve: states at the requested times, statistics, an optional trace,
and the dense solution between the step points (``Solution.dense``)."""

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .backend import array_module, concatenate
from .dense_output import interpolate_steps
from .errors import InputError


@dataclass
class StepRecord:
    """One attempted step, for tutorials and diagnosis.

    Attributes
    ----------
    t : float
        Time at the start of the step.
    h : float
        Step size tried.
    error_ratio : float
        Scaled RMS error (accept when <= 1); ``nan`` for fixed-step methods.
    accepted : bool
    """

    t: float
    h: float
    error_ratio: float
    accepted: bool


@dataclass
class Solution:
    """What :func:`refnode.solve` returns.

    Attributes
    ----------
    t : array, shape (N,)
        The requested output times.
    z : array, shape (N, *z0.shape)
        The state at each output time; ``z[0]`` is ``z0``.
    stats : dict
        ``nfe`` (evaluations of f), ``n_steps`` (attempted), ``n_accepted``, ``n_rejected``.
    trace : list of StepRecord or None
        Every attempted step, when ``trace=True`` was asked for.
    grid : list of float or None
        The accepted step points t_0 < t_1 < ... (or decreasing): what the discrete
        adjoint and the autograd oracle replay (None when solved with keep_grid=False).
    dense : callable
        With ``dense=True``: ``sol.dense(tau)`` evaluates the interpolant at any time
        ``tau`` inside the solved interval. Without it, calling ``sol.dense`` raises an
        InputError that says so (and ``bool(sol.dense)`` is False).
    next_step : float or None
        Adaptive solves: the step the controller would try next (the step it wanted
        before the last one was shortened to land on t[-1]); a solve that continues
        from here can start with it instead of estimating a first step.
    states : list of arrays or None
        The state at every point of ``grid``, when the driver was asked to keep them
        (the discrete gradient reverses the steps from these; None otherwise).
    """

    t: object
    z: object
    stats: dict
    trace: list = None
    grid: list = field(default_factory=list)
    dense: object = None
    next_step: float = None
    states: list = None

    def __post_init__(self):
        if self.dense is None:
            self.dense = NoDenseSolution()

    @property
    def nfe(self):
        """Number of evaluations of f."""
        return self.stats["nfe"]


class DenseStep(NamedTuple):
    """What an accepted step keeps for dense output.

    ``t_next`` is the step's recorded end: the last one is exactly t[-1], which
    ``t_n + h`` may miss by rounding.
    """

    t_n: float
    t_next: float
    h: float
    y0: object
    y1: object
    k: list
    f1: object


class DenseSolution:
    """The solution between the step points of an adaptive solve: ``sol.dense(tau)``.

    Parameters
    ----------
    tableau : ButcherTableau
    steps : list of DenseStep
    direction : float
    t0 : float
        The initial time (the whole solved interval when ``steps`` is empty).
    y0 : array
        The initial state.
    """

    def __init__(self, tableau, steps, direction, t0, y0):
        self.tableau, self.steps, self.direction = tableau, steps, direction
        self.t_start, self.y0 = t0, y0
        self.t_end = steps[-1].t_next if steps else t0

    def __call__(self, tau):
        """The interpolated state at the time(s) ``tau``: shape (*z0.shape) or (M, *z0.shape).

        Raises
        ------
        InputError
            For times that are not finite real numbers, or lie outside the solved
            interval (refnode never extrapolates).
        """
        try:
            taus = np.asarray(tau)
        except (TypeError, ValueError):
            taus = np.asarray(None)
        if taus.dtype.kind not in "fiu" or taus.ndim > 1:
            raise InputError(f"tau must be a real time or a 1-D array of times; got {tau!r}.")
        taus = np.atleast_1d(taus.astype(np.float64))
        if not np.all(np.isfinite(taus)):
            raise InputError(f"tau must be finite; got {tau!r}.")
        self._check_inside(taus)
        if not taus.size:                               # an empty list of times
            return array_module(self.y0).zeros((0,) + tuple(self.y0.shape), dtype=self.y0.dtype)
        out = self._at(taus)
        return out[0] if np.ndim(tau) == 0 else out

    def _check_inside(self, taus):
        """Refuse the first time outside [t_start, t_end]: refnode never extrapolates."""
        outside = (((taus - self.t_start) * self.direction < 0)
                   | ((taus - self.t_end) * self.direction > 0))
        if outside.any():
            tau = float(taus[outside.argmax()])
            raise InputError(f"tau = {tau!r} lies outside the solved interval "
                             f"[{self.t_start!r}, {self.t_end!r}]; refnode never extrapolates.")

    def _at(self, taus):
        """The states at the times ``taus`` (inside the interval), shape (M, *z0.shape):
        each in the first step that ends at or after it. The times are put in the
        direction of the solve, so that each step's lie together, and interpolated step
        by step, all weights at once (:func:`~refnode.dense_output.interpolate_steps`);
        the rows then go back to the order of ``taus``."""
        xp = array_module(self.y0)
        if not self.steps:                  # t was the initial time alone: copies of z0
            return xp.stack([self.y0 + 0 * self.y0 for _ in taus])
        order = np.argsort(self.direction * taus, kind="stable")
        ends = self.direction * np.array([step.t_next for step in self.steps])
        index = np.minimum(np.searchsorted(ends, self.direction * taus[order]),
                           len(self.steps) - 1)
        used, counts = np.unique(index, return_counts=True)
        steps = [self.steps[i] for i in used.tolist()]
        out = concatenate(interpolate_steps(self.tableau, steps, taus[order], counts.tolist()))
        rows = np.empty_like(order)
        rows[order] = np.arange(len(order))              # where each τ's row went
        return xp.take(out, xp.asarray(rows), axis=0)


class NoDenseSolution:
    """``sol.dense`` of a solve that kept no steps: calling it says how to get one."""

    def __call__(self, tau):
        raise InputError("this solve kept no dense output: pass dense=True to refnode.solve "
                         "(an adaptive method, batch='shared') to evaluate the solution between "
                         "output times.")

    def __bool__(self):
        return False

"""Dense output: the solution inside an accepted step, y(t_n + θh), 0 <= θ <= 1.

Two interpolants (HNW I §II.6):

* the method's own continuous extension, linear in the stages
      y(t_n + θh) = y_n + h Σ_i k_i P_i(θ),   P_i(θ) = Σ_m P[i][m-1] θ^m
  (dopri5 and tsit5 of order 4, dop853 of order 7 with three extra stages);
* cubic Hermite interpolation from the end points and slopes (order 3), for every
  other method:
      y(θ) = h00(θ) y_n + h10(θ) h f_n + h01(θ) y_{n+1} + h11(θ) h f_{n+1}.

Many output times inside one step cost one evaluation each and never shorten a step.
θ and h are numbers, or (B,) arrays with one value per sample (``batch="independent"``,
each sample at its own fraction of its own step; see :func:`refnode.per_sample.scale`).
"""

from typing import NamedTuple

import numpy as np

from .backend import array_module
from .errors import InputError
from .params import tree_map
from .rk_step import combine, weighted_sum


def hermite_weights(theta):
    """Cubic Hermite basis (h00, h10, h01, h11) at θ (a float or array)."""
    theta2 = theta * theta
    theta3 = theta2 * theta
    return (2 * theta3 - 3 * theta2 + 1,
            theta3 - 2 * theta2 + theta,
            -2 * theta3 + 3 * theta2,
            theta3 - theta2)


def hermite(theta, h, y0, f0, y1, f1):
    """Cubic Hermite interpolant at one θ (or one θ_b per sample); arrays like y."""
    h00, h10, h01, h11 = hermite_weights(theta)
    return weighted_sum(1.0, [(h00, y0), (h10 * h, f0), (h01, y1), (h11 * h, f1)])


def stage_weights(P, theta):
    """[P_i(θ) for each stage i], the weights of the continuous extension at θ."""
    weights = []
    for row in P:
        w, power = 0.0, theta
        for p in row:
            w = w + p * power
            power = power * theta
        weights.append(w)
    return weights


def extra_stages(f, tableau, t, y, h, theta, k):
    """The stages a continuous extension needs beyond the step's own (dop853: three).

    Returns
    -------
    list of arrays
        ``k`` followed by the extra stages.
    """
    dense = tableau.dense
    k = list(k)
    for a_row, c_i in zip(dense.A_extra, dense.c_extra):
        terms = [(float(a), k[j]) for j, a in enumerate(a_row) if a != 0]
        k.append(f(t + float(c_i) * h, combine(y, h, terms), theta))
    return k


def continuous_extension(P, theta, h, y0, k):
    """y_n + h Σ_i k_i P_i(θ) at one θ; ``k`` holds every stage P needs."""
    weights = stage_weights(P.tolist(), theta)
    return combine(y0, h, [(w, k_i) for w, k_i in zip(weights, k)])


def interpolate(tableau, thetas, h, y0, y1, k, f1):
    """The dense solution at every θ in ``thetas``, as one block.

    Parameters
    ----------
    tableau : ButcherTableau
    thetas : sequence of float, length m
        Fractions of the step in (0, 1]; θ = 1 gives y1 itself (not its interpolant).
    h : float
        The step size.
    y0, y1 : arrays, shape like y (or trees of arrays)
        Solution at the start and end of the step.
    k : list of arrays
        The step's stages (plus the extra dense stages for dop853).
    f1 : array, shape like y
        f(t_n + h, y1), used by Hermite interpolation.

    Returns
    -------
    array, shape (m, *y.shape) (a tree of such arrays for a tree state)
    """
    if isinstance(y0, (tuple, list, dict)):
        return tree_map(lambda *leaves: array_module(*leaves).stack(leaves),
                        *[y1 if th == 1.0 else interpolate_one(tableau, th, h, y0, y1, k, f1)
                          for th in thetas])
    xp = array_module(y0, y1)
    inner = [th for th in thetas if th != 1.0]
    blocks = []
    if inner:
        W = dense_weights(tableau, xp.asarray(inner, dtype=y0.dtype))
        if tableau.dense is not None:
            blocks.append(y0 + h * _matmul_leading(W, xp.stack(k[:W.shape[1]])))
        else:
            blocks.append(_matmul_leading(W, xp.stack([y0, h * k[0], y1, h * f1])))
    if len(inner) < len(thetas):
        blocks.append(y1[None])
    return blocks[0] if len(blocks) == 1 else xp.concatenate(blocks)


def _matmul_leading(W, K):
    """Σ_i W[:, i] K[i]: (m, s) weights on a stack K of shape (s, *shape) -> (m, *shape)."""
    xp = array_module(W, K)
    return xp.reshape(W @ xp.reshape(K, (K.shape[0], -1)), (W.shape[0],) + tuple(K.shape[1:]))


def dense_weights(tableau, thetas):
    """Weights of the interpolant at each θ: shape (m, s) on the stages for the method's
    own extension, or (m, 4) on (y0, h f0, y1, h f1) for cubic Hermite."""
    xp = array_module(thetas)
    if tableau.dense is not None:
        P = float_P(tableau.dense)                            # (s, q)
        if not type(thetas).__module__.startswith("autograd"):
            P = xp.asarray(P, dtype=thetas.dtype)             # the state's precision and device
        powers = xp.stack([thetas ** (m + 1) for m in range(P.shape[1])], axis=1)  # (m, q)
        return powers @ P.T
    return xp.stack(hermite_weights(thetas), axis=1)


def interpolate_one(tableau, theta, h, y0, y1, k, f1):
    """The method's own interpolant if it has one, else cubic Hermite, at one θ."""
    if tableau.dense is not None:
        return continuous_extension(float_P(tableau.dense), theta, h, y0, k)
    return hermite(theta, h, y0, k[0], y1, f1)


def needs_extra_stages(tableau):
    """True when the continuous extension uses stages beyond the step's own."""
    return tableau.dense is not None and len(tableau.dense.A_extra) > 0


_FLOAT_P = {}


def float_P(dense):
    """The interpolant's P matrix as a float64 array, shape (s, q) (converted once)."""
    key = id(dense)
    if key not in _FLOAT_P:
        _FLOAT_P[key] = (dense, np.array([[float(p) for p in row] for row in dense.P]))
    return _FLOAT_P[key][1]


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
        out = [self._at(float(x)) for x in taus]
        if not out:                                     # an empty list of times
            return array_module(self.y0).zeros((0,) + tuple(self.y0.shape), dtype=self.y0.dtype)
        return out[0] if np.ndim(tau) == 0 else array_module(*out).stack(out)

    def _at(self, tau):
        outside = ((tau - self.t_start) * self.direction < 0
                   or (tau - self.t_end) * self.direction > 0)
        if outside:
            raise InputError(f"tau = {tau!r} lies outside the solved interval "
                             f"[{self.t_start!r}, {self.t_end!r}]; refnode never extrapolates.")
        if not self.steps:
            return self.y0 + 0 * self.y0                # a copy: t was the initial time alone
        for step in self.steps:
            if (tau - step.t_next) * self.direction <= 0:
                theta = 1.0 if tau == step.t_next else (tau - step.t_n) / step.h
                return interpolate(self.tableau, [theta], step.h, step.y0, step.y1, step.k,
                                   step.f1)[0]
        return self.steps[-1].y1


class NoDenseSolution:
    """``sol.dense`` of a solve that kept no steps: calling it says how to get one."""

    def __call__(self, tau):
        raise InputError("this solve kept no dense output: pass dense=True to refnode.solve "
                         "(an adaptive method, batch='shared') to evaluate the solution between "
                         "output times.")

    def __bool__(self):
        return False

"""Dense output: the solution inside an accepted step, y(t_n + θh), 0 <= θ <= 1.

Two interpolants (HNW I §II.6):

* the method's own continuous extension, linear in the stages
      y(t_n + θh) = y_n + h Σ_i k_i P_i(θ),   P_i(θ) = Σ_m ``P[i][m-1]`` θ^m
  (dopri5 and tsit5 of order 4, dop853 of order 7 with three extra stages);
* cubic Hermite interpolation from the end points and slopes (order 3), for every
  other method:
      y(θ) = h00(θ) y_n + h10(θ) h f_n + h01(θ) y_{n+1} + h11(θ) h f_{n+1}.

Each kind is written once — :func:`hermite` and :func:`continuous_extension`, both
traceable by autograd (the discrete gradient's replay uses them); :func:`interpolate_one`
chooses the method's kind, and :func:`interpolate` evaluates the same polynomials at many
θ as one matrix product; :func:`interpolate_steps` does so for several steps, their
weights formed at once. Where an output lies in its step is :func:`step_fraction`. The
solutions that hold the steps (``Solution.dense``) are in :mod:`refnode.solution`. Many
output times inside one step cost one evaluation each and never shorten a step.
θ and h are numbers, or (B,) arrays with one value per sample (``batch="independent"``,
each sample at its own fraction of its own step; see :func:`refnode.per_sample.scale`).
"""

import numpy as np

from .backend import array_module, concatenate, stack
from .params import tree_map
from .per_sample import divide, where
from .rk_step import combine, weighted_sum
from .tableau import sparse_terms


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
    return weighted_sum(1.0, [(0, h00), (1, h10 * h), (2, h01), (3, h11 * h)], [y0, f0, y1, f1])


def stage_weights(P, theta):
    """[P_i(θ) for each stage i], the weights of the continuous extension at θ.

    ``P_i(θ) = Σ_m P[i][m] θ^(m+1)``; the powers θ, θ², ... are formed once for every stage.
    """
    powers = [theta]
    for _ in P[0][1:]:
        powers.append(powers[-1] * theta)
    weights = []
    for row in P:
        w = 0.0
        for p, power in zip(row, powers):
            w = w + p * power
        weights.append(w)
    return weights


def extra_stages(f, tableau, t, y, h, theta, k):
    """The stages a continuous extension needs beyond the step's own (dop853: three).

    Returns
    -------
    list of arrays
        ``k`` followed by the extra stages (``k`` alone for a method without them).
    """
    dense = tableau.dense
    k = list(k)
    if dense is None:
        return k
    for a_row, c_i in zip(dense.A_extra, dense.c_extra):
        terms = sparse_terms([float(a) for a in a_row])
        k.append(f(t + float(c_i) * h, combine(y, h, terms, k), theta))
    return k


def continuous_extension(dense, theta, h, y0, k):
    """y_n + h Σ_i k_i P_i(θ) at one θ (or one θ_b per sample); ``k`` holds every stage
    ``dense.P`` needs (the extra ones from :func:`extra_stages`)."""
    weights = stage_weights(dense.P_float, theta)
    return combine(y0, h, list(enumerate(weights)), k)


def step_fraction(t_i, t_n, h, t_next):
    """θ = (t_i - t_n) / h of an output inside the step; exactly 1.0 at the step's end.

    Numbers, or arrays (one θ per output, or per sample: a finished sample's h = 0 gives
    θ = 0, :func:`refnode.per_sample.divide`).
    """
    return where(t_i == t_next, 1.0, divide(t_i - t_n, h))


def interpolate(tableau, thetas, h, y0, y1, k, f1, weights=None):
    """The dense solution at every θ in ``thetas``, as one block.

    Parameters
    ----------
    tableau : ButcherTableau
    thetas : sequence of float, length m
        Fractions of the step in (0, 1], nondecreasing; θ = 1 gives y1 itself (not its
        interpolant), also for an output just before the step's end whose θ rounds to 1.
    h : float
        The step size.
    y0, y1 : arrays, shape like y (or trees of arrays)
        Solution at the start and end of the step.
    k : list of arrays
        The step's stages (plus the extra dense stages for dop853).
    f1 : array, shape like y
        f(t_n + h, y1), used by Hermite interpolation.
    weights : host array, shape (m, r), optional
        ``dense_weights(tableau, thetas)``, if already formed (:func:`interpolate_steps`).

    Returns
    -------
    array, shape (m, *y.shape) (a tree of such arrays for a tree state)
    """
    if isinstance(y0, (tuple, list, dict)):
        return tree_map(lambda *leaves: stack(leaves),
                        *[y1 if th == 1.0 else interpolate_one(tableau, float(th), h, y0, y1,
                                                               k, f1)
                          for th in thetas])
    xp = array_module(y0, y1)
    m = n_inner = len(thetas)
    while n_inner and thetas[n_inner - 1] == 1.0:   # θ is nondecreasing: the 1.0s come last
        n_inner -= 1
    blocks = []
    if n_inner:
        W = dense_weights(tableau, thetas[:n_inner]) if weights is None else weights[:n_inner]
        W = xp.asarray(W, dtype=y0.dtype)
        if tableau.dense is not None:
            blocks.append(y0 + h * _matmul_leading(W, stack(k[:W.shape[1]])))
        else:
            blocks.append(_matmul_leading(W, stack([y0, h * k[0], y1, h * f1])))
    if n_inner < m:
        blocks.append(stack([y1] * (m - n_inner)))
    return concatenate(blocks)


def interpolate_steps(tableau, steps, times, counts):
    """The dense solution at times inside several accepted steps: one block per step.

    Every time's fraction θ of its step (:func:`step_fraction`) and the weights of every
    θ below 1 (:func:`dense_weights`, one host matrix) are formed at once; each step then
    makes its block (:func:`interpolate`).

    Parameters
    ----------
    tableau : ButcherTableau
    steps : sequence of DenseStep, length S
    times : host array, shape (N,)
        The times, step after step, each in (t_n, t_next] of its step (nondecreasing
        along the step's direction within a step).
    counts : sequence of S ints
        How many of ``times`` lie in each step (N in all).

    Returns
    -------
    list of S arrays, shapes (counts[j], *y.shape) (trees of such arrays for a tree state)
    """
    ends = np.repeat([(step.t_n, step.h, step.t_next) for step in steps], counts, axis=0)
    thetas = step_fraction(times, ends[:, 0], ends[:, 1], ends[:, 2])
    inside = (thetas < 1.0).any()                 # else every output is a step's end, y1
    weights = dense_weights(tableau, thetas) if inside else None
    blocks, start = [], 0
    for step, m in zip(steps, counts):
        rows = slice(start, start + m)
        blocks.append(interpolate(tableau, thetas[rows], step.h, step.y0, step.y1, step.k,
                                  step.f1, None if weights is None else weights[rows]))
        start += m
    return blocks


def _matmul_leading(W, K):
    """Σ_i W[:, i] K[i]: (m, s) weights on a stack K of shape (s, *shape) -> (m, *shape)."""
    return (W @ K.reshape((K.shape[0], -1))).reshape((W.shape[0],) + tuple(K.shape[1:]))


def dense_weights(tableau, thetas):
    """The polynomials of :func:`stage_weights` / :func:`hermite_weights` at m values θ
    as one host float64 matrix: shape (m, s) on the stages for the method's own
    extension, or (m, 4) on (y0, h f0, y1, h f1) for cubic Hermite.

    The θ are host numbers, so the weights are formed on the host, in float64, and reach
    the state's device and dtype once, as one matrix.
    """
    thetas = np.asarray(thetas, dtype=np.float64)
    if tableau.dense is not None:
        P = tableau.dense.P_array                                     # (s, q)
        powers = thetas[:, None] ** np.arange(1, P.shape[1] + 1)       # θ, θ², ..., θ^q
        return powers @ P.T
    return np.stack(hermite_weights(thetas), axis=1)


def interpolate_one(tableau, theta, h, y0, y1, k, f1):
    """The method's own interpolant if it has one, else cubic Hermite, at one θ (or one
    θ_b per sample). ``k`` includes the extra stages where the method needs them."""
    if tableau.dense is not None:
        return continuous_extension(tableau.dense, theta, h, y0, k)
    return hermite(theta, h, y0, k[0], y1, f1)

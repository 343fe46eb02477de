"""Error norm, step-size controller and starting step (HNW I, §II.4).

The error of a step is measured by the RMS norm used by SciPy, torchdiffeq and
Hairer's codes (HNW I eq. (4.11)):

    ratio = sqrt( mean_i ( e_i / (atol_i + rtol_i · max(|y0_i|, |y1_i|)) )² )

and the step is accepted when ratio <= 1. The mean runs over the whole state (one
ratio, a Python float: ``batch="shared"``) or over each sample of a batch (a (B,) array
of ratios: ``batch="independent"``); everything downstream of the ratio — controller,
starting step — takes either, elementwise.

Controller: the elementary "I" controller (HNW I eq. (4.13))

    h_new = h · min(MAX_FACTOR, max(MIN_FACTOR, SAFETY · ratio^(-1/q)))

with q the power of h in the error estimate (``tableau.error_power()``: p̂ + 1 for an
embedded pair of orders p(p̂)). We use I rather than PI control because it is what
SciPy's RK45/DOP853 and torchdiffeq's dopri5 use: users compare refnode's NFE and step
sequences against them. After a rejected step the factor is capped at 1 (no growth right
after a failure).
"""

import math

import numpy as np

from .backend import array_module, to_float, to_numpy
from .errors import InputError
from .params import tree_leaves, tree_map
from .per_sample import all_true, any_true, clip, isfinite, isnan, power, where
from .rk_step import combine

#: Safety factor on the optimal step (SciPy rk.py ``SAFETY``; HNW I p. 168 suggests 0.8–0.9).
SAFETY = 0.9
#: Largest shrink per step (SciPy ``MIN_FACTOR``; HNW I p. 168 ``facmin``).
MIN_FACTOR = 0.2
#: Largest growth per step (SciPy ``MAX_FACTOR``; HNW I p. 168 ``facmax``, 1.5–5 there).
MAX_FACTOR = 10.0


def scaled_error(error, y0, y1, rtol, atol):
    """e / (atol + rtol · max(|y0|, |y1|)), elementwise; arrays or trees like y."""
    if isinstance(error, (tuple, list, dict)):
        return tree_map(lambda e, a, b: scaled_error(e, a, b, rtol, atol), error, y0, y1)
    xp = array_module(error, y0, y1)
    return error / (atol + rtol * xp.maximum(xp.abs(y0), xp.abs(y1)))


def mean_square(x, per_sample=False):
    """The mean of x² over all elements of an array or tree, or over each sample's.

    A sum of squares, ``(x * x).sum()``, in both cases: a BLAS dot would round
    differently for each length, and a sample would not get the same ratio alone as in
    a batch.

    Returns a 0-d array (on x's device), or with ``per_sample=True`` an array of shape
    (B,) (the leaves lead with the batch axis B).
    """
    if not per_sample and not isinstance(x, (tuple, list, dict)):
        return (x * x).sum() / max(x.size, 1)             # one array: the frequent case
    leaves = tree_leaves(x)
    xp = array_module(*leaves)
    if per_sample:
        rows = [xp.reshape(leaf, (leaf.shape[0], -1)) for leaf in leaves]
        total = sum(xp.sum(r * r, axis=1) for r in rows)
        return total / max(sum(r.shape[1] for r in rows), 1)
    total = sum((leaf * leaf).sum() for leaf in leaves)
    return total / max(sum(leaf.size for leaf in leaves), 1)


def rms(x, per_sample=False):
    """Root mean square over all elements of an array or tree, or over each sample's.

    Returns a Python float (one host read on a GPU), or with ``per_sample=True`` an
    array of shape (B,) on x's device.
    """
    ms = mean_square(x, per_sample)
    return array_module(ms).sqrt(ms) if per_sample else math.sqrt(to_float(ms))


def error_ratio(error, y0, y1, rtol, atol, per_sample=False):
    """The scaled RMS error of a step; accept the step where it is <= 1.

    Parameters
    ----------
    error : array, shape like y (or a tree)
        Embedded error estimate h Σ (b_i - b̂_i) k_i.
    y0, y1 : arrays, shape like y
        The state before and after the step.
    rtol, atol : float or array broadcastable to y
    per_sample : bool
        One ratio per sample (shape (B,), device array) instead of one Python float.
    """
    return rms(scaled_error(error, y0, y1, rtol, atol), per_sample)


class rms_norm:
    """The default error norm ``norm(error, y0, y1) -> ratio`` of a solve.

    Every norm, the user's included, has this one signature for every method; a method
    with several estimates (dop853) calls it once per estimate. ``per_sample=True``
    gives one ratio per sample, shape (B,).
    """

    def __init__(self, rtol, atol, per_sample=False):
        self.rtol, self.atol, self.per_sample = rtol, atol, per_sample

    def __call__(self, error, y0, y1):
        return error_ratio(error, y0, y1, self.rtol, self.atol, self.per_sample)


def step_factor(ratio, q, after_rejection=False):
    """The factor h_new / h of the I controller for a step with error ``ratio``.

    ``ratio`` (and ``after_rejection``) is a number, or a (B,) array for per-sample steps.
    A non-finite ratio shrinks by MIN_FACTOR, a zero ratio grows by MAX_FACTOR.
    """
    positive = isfinite(ratio) & (ratio > 0.0)
    optimal = SAFETY * power(where(positive, ratio, 1.0), -1.0 / q)
    factor = where(positive, clip(optimal, MIN_FACTOR, MAX_FACTOR),
                   where(isfinite(ratio), MAX_FACTOR, MIN_FACTOR))
    return where(after_rejection, clip(factor, 0.0, 1.0), factor)


def initial_step(f, t0, y0, f0, theta, direction, q, norm):
    """Hairer's starting step (HNW I p. 169, algorithm "(a)–(f)"). Costs one f evaluation.

    ``norm(x, y0, y1)`` is the solve's error norm (:class:`rms_norm` by default); a
    per-sample norm gives one starting step per sample, with ``t0`` of shape (B,).

    Returns
    -------
    h : float or array, shape (B,)
        Signed first step (its sign is ``direction``).

    Raises
    ------
    InputError
        When the norm of z0 or f(t0, z0) is NaN (a norm that returns NaN for finite
        input), or |f(t0, z0)| is too large for its scaled norm to be a float (no step
        size can be chosen from it).
    """
    with np.errstate(over="ignore"):          # an overflow shows as d1 = inf, refused below
        d0, d1 = norm(y0, y0, y0), norm(f0, y0, y0)
    if not all_true(isfinite(d0) & isfinite(d1)):
        raise InputError(starting_norm_message(t0, d0, d1))
    small = (d0 < 1e-5) | (d1 < 1e-5)
    h0 = where(small, 1e-6, 0.01 * d0 / where(small, 1.0, d1))
    h0 = where(h0 > 0.0, h0, 1e-6)          # d0/d1 underflowed: start from Hairer's floor
    f1 = f(t0 + direction * h0, combine(y0, direction * h0, [(0, 1.0)], [f0]), theta)
    d2 = norm(combine(f1, -1.0, [(0, 1.0)], [f0]), y0, y0) / h0
    d_max = where(d1 > d2, d1, d2)
    flat = d_max <= 1e-15
    h1 = where(flat, clip(h0 * 1e-3, 1e-6, np.inf), power(0.01 / where(flat, 1.0, d_max), 1.0 / q))
    h1 = where(isfinite(h1), h1, h0)         # f1 overflowed: the first trial step will shrink
    return direction * where(100 * h0 < h1, 100 * h0, h1)


def starting_norm_message(t0, d0, d1):
    """Why no starting step can be chosen: the norm returned NaN, or f(t0, z0) overflows it."""
    at = f"at t0 = {float(np.min(to_numpy(t0)))!r}"
    if not any_true(isnan(d0) | isnan(d1)):
        return (f"f(t0, z0) {at} is so large that its scaled norm overflows float64, so no "
                "starting step can be chosen: rescale the problem or pass a first_step.")
    return (f"the error norm returned NaN for the finite z0 or f(t0, z0) {at}: a norm must "
            "return a number >= 0 (finite for finite arrays). Check the norm "
            "(StepControl(norm=...)).")

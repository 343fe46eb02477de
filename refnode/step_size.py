"""Error norm, step-size controller and starting step (HNW I, §II.4).

The error of a step is measured by the RMS norm used by SciPy, torchdiffeq and
Hairer's codes (HNW I eq. (4.11)):

    ratio = sqrt( mean_i ( e_i / (atol_i + rtol_i · max(|y0_i|, |y1_i|)) )² )

and the step is accepted when ratio <= 1.

Controller: the elementary "I" controller (HNW I eq. (4.13))

    h_new = h · min(MAX_FACTOR, max(MIN_FACTOR, SAFETY · ratio^(-1/q)))

with q the power of h in the error estimate (p̂ + 1 for an embedded pair of orders
p(p̂)). We use I rather than PI control because it is what SciPy's RK45/DOP853 and
torchdiffeq's dopri5 use: users compare refnode's NFE and step sequences against them.
After a rejected step the factor is capped at 1 (no growth right after a failure).
"""

import numpy as np

from .backend import array_module, to_float
from .params import tree_leaves, tree_map
from .rk_step import combine

#: Safety factor on the optimal step (SciPy rk.py ``SAFETY``; HNW I p. 168 suggests 0.8–0.9).
SAFETY = 0.9
#: Largest shrink per step (SciPy ``MIN_FACTOR``; HNW I p. 168 ``facmin``).
MIN_FACTOR = 0.2
#: Largest growth per step (SciPy ``MAX_FACTOR``; HNW I p. 168 ``facmax``, 1.5–5 there).
MAX_FACTOR = 10.0
#: Weight of the third-order estimate in dop853's combined error (Hairer's DOP853, ``bhh``).
DOP853_ERR3_WEIGHT = 0.01


def scaled_error(error, y0, y1, rtol, atol):
    """e / (atol + rtol · max(|y0|, |y1|)), elementwise; arrays or trees like y."""
    if isinstance(error, (tuple, list, dict)):
        return tree_map(lambda e, a, b: scaled_error(e, a, b, rtol, atol), error, y0, y1)
    xp = array_module(error, y0, y1)
    return error / (atol + rtol * xp.maximum(xp.abs(y0), xp.abs(y1)))


def rms(x):
    """Root mean square over all elements of an array or a tree of arrays."""
    if not isinstance(x, (tuple, list, dict)):
        xp = array_module(x)
        flat = xp.reshape(x, (-1,))
        return xp.sqrt((flat @ flat) / flat.shape[0])   # a dot product: cheaper than mean
    leaves = tree_leaves(x)
    xp = array_module(*leaves)
    total = sum(xp.sum(leaf * leaf) for leaf in leaves)
    count = sum(int(np.size(leaf)) for leaf in leaves)
    return xp.sqrt(total / max(count, 1))


def error_ratio(error, y0, y1, rtol, atol, error3=None):
    """The scaled RMS error of a step as a Python float; accept the step if <= 1.

    Parameters
    ----------
    error : array, shape like y
        Embedded error estimate h Σ (b_i - b̂_i) k_i.
    y0, y1 : arrays, shape like y
        The state before and after the step.
    rtol, atol : float or array broadcastable to y
    error3 : array, optional
        dop853's third-order estimate; when given, the combined estimate of Hairer's
        DOP853 is used: err5 · |err5| / sqrt(|err5|² + 0.01 |err3|²).
    """
    err5 = to_float(rms(scaled_error(error, y0, y1, rtol, atol)))
    if error3 is None:
        return err5
    err3 = to_float(rms(scaled_error(error3, y0, y1, rtol, atol)))
    denom = float(np.sqrt(err5 ** 2 + DOP853_ERR3_WEIGHT * err3 ** 2))
    return 0.0 if denom == 0.0 else err5 * err5 / denom


def step_factor(ratio, q, after_rejection=False):
    """The factor h_new / h of the I controller for a step with error ``ratio``."""
    if not np.isfinite(ratio):
        return MIN_FACTOR
    if ratio == 0.0:
        factor = MAX_FACTOR
    else:
        factor = min(MAX_FACTOR, max(MIN_FACTOR, SAFETY * ratio ** (-1.0 / q)))
    if after_rejection:
        factor = min(1.0, factor)
    return factor


def initial_step(f, t0, y0, f0, theta, direction, q, rtol, atol, norm=None):
    """Hairer's starting step (HNW I p. 169, algorithm "(a)–(f)"). Costs one f evaluation.

    Returns
    -------
    h : float
        Signed first step (its sign is ``direction``).
    """
    norm = norm or (lambda x, y: to_float(rms(scaled_error(x, y, y, rtol, atol))))
    d0, d1 = norm(y0, y0), norm(f0, y0)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    y1 = combine(y0, direction * h0, [(1.0, f0)])
    f1 = f(t0 + direction * h0, y1, theta)
    d2 = norm(combine(f1, -1.0, [(1.0, f0)]), y0) / h0
    if max(d1, d2) <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / q)
    return direction * min(100 * h0, h1)

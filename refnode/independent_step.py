"""Per-sample arithmetic of the independent-steps driver (:mod:`refnode.independent`).

The same formulas as the shared driver's — one RK step, the RMS error ratio, the I
controller, Hairer's starting step, dense output — with the step size h, the time t and
the error ratio as arrays of shape (B,), one entry per sample, broadcast over each
sample's state. States may be arrays or trees whose leaves lead with the batch axis B.
"""

import numpy as np

from .backend import array_module
from .dense_output import float_P, hermite, stage_weights
from .params import tree_leaves, tree_map
from .step_size import DOP853_ERR3_WEIGHT, MAX_FACTOR, MIN_FACTOR, SAFETY


# -- per-sample array helpers (states may be arrays or trees whose leaves lead with B) --------

def per_sample(v, leaf):
    """A (B,) array reshaped to (B, 1, ..., 1) to broadcast over ``leaf``, in its dtype."""
    xp = array_module(v, leaf)
    if v.dtype != leaf.dtype:
        v = v.astype(leaf.dtype)
    return xp.reshape(v, (v.shape[0],) + (1,) * (leaf.ndim - 1))


def select(mask, y_true, y_false):
    """Per sample: y_true where ``mask`` (shape (B,)) holds, else y_false (arrays or trees)."""
    return tree_map(lambda a, b: array_module(a, b).where(per_sample(mask, a), a, b), y_true,
                    y_false)


def increment(h, terms):
    """h_b Σ_j w_j k_j per sample, for ``terms = [(w_j, k_j)]`` (k_j arrays or trees)."""
    def leafwise(*leaves):
        acc = terms[0][0] * leaves[0]
        for (w, _), k in zip(terms[1:], leaves[1:]):
            acc = acc + w * k
        return per_sample(h, acc) * acc
    return tree_map(leafwise, *[k for _, k in terms])


def advance(y, h, terms):
    """y + h_b Σ_j w_j k_j per sample; an empty ``terms`` returns y."""
    if not terms:
        return y
    return tree_map(lambda a, b: a + b, y, increment(h, terms))


def sample_sum(x):
    """Σ over each sample's components: (B, ...) -> (B,) (trees: summed over leaves)."""
    total = 0.0
    for leaf in tree_leaves(x):
        xp = array_module(leaf)
        total = total + xp.sum(xp.reshape(leaf, (leaf.shape[0], -1)), axis=1)
    return total


def sample_rms(x):
    """RMS over each sample's components: (B, ...) -> (B,) (trees: over all leaves)."""
    leaves = tree_leaves(x)
    if len(leaves) == 1:
        xp = array_module(x)
        rows = xp.reshape(x, (x.shape[0], -1))
        return xp.sqrt(xp.mean(rows * rows, axis=1))
    count = sum(int(np.prod(leaf.shape[1:])) for leaf in leaves)
    return array_module(*leaves).sqrt(sample_sum(tree_map(lambda v: v * v, x)) / count)


def sample_ratio(error, y0, y1, rtol, atol, error3=None):
    """The scaled RMS error of each sample's step, shape (B,); accept where <= 1.

    The norm of :func:`refnode.step_size.error_ratio`, taken per sample; with ``error3``
    dop853's combined estimate err5² / sqrt(err5² + 0.01 err3²).
    """
    def scaled(e):
        return tree_map(lambda e_, a, b: e_ / (atol + rtol * array_module(a).maximum(
            array_module(a).abs(a), array_module(b).abs(b))), e, y0, y1)
    err5 = sample_rms(scaled(error))
    if error3 is None:
        return err5
    xp = array_module(err5)
    denom = xp.sqrt(err5 * err5 + DOP853_ERR3_WEIGHT * sample_rms(scaled(error3)) ** 2)
    return xp.where(denom == 0.0, 0.0, err5 * err5 / xp.where(denom == 0.0, 1.0, denom))


def step_factors(ratio, q, after_rejection):
    """h_new / h of the I controller per sample (the rule of :func:`~refnode.step_size.step_factor`)."""
    xp = array_module(ratio)
    finite = xp.isfinite(ratio)
    positive = finite & (ratio > 0.0)
    factor = SAFETY * xp.where(positive, ratio, 1.0) ** (-1.0 / q)
    factor = xp.minimum(MAX_FACTOR, xp.maximum(MIN_FACTOR, factor))
    factor = xp.where(positive, factor, xp.where(finite, MAX_FACTOR, MIN_FACTOR))
    return xp.where(after_rejection, xp.minimum(factor, 1.0), factor)


def initial_steps(f, t0, y0, f0, theta, direction, q, norm):
    """Hairer's starting step (HNW I p. 169) for every sample at once; costs one f call."""
    d0, d1 = norm(y0, y0, y0), norm(f0, y0, y0)
    xp = array_module(d0)
    small = (d0 < 1e-5) | (d1 < 1e-5)
    h0 = xp.where(small, 1e-6, 0.01 * d0 / xp.where(small, 1.0, d1))
    f1 = f(t0 + direction * h0, advance(y0, direction * h0, [(1.0, f0)]), theta)
    d2 = norm(tree_map(lambda a, b: a - b, f1, f0), y0, y0) / h0
    d_max = xp.maximum(d1, d2)
    flat = d_max <= 1e-15
    h1 = xp.where(flat, xp.maximum(1e-6, h0 * 1e-3), (0.01 / xp.where(flat, 1.0, d_max)) ** (1.0 / q))
    return direction * xp.minimum(100 * h0, h1)


# -- one masked step and its dense output ------------------------------------------------------

def batch_rk_step(f, tableau, t, y, h, theta, k1):
    """One RK step with a time t_b and step h_b per sample (t, h of shape (B,)).

    Returns ``(y1, error, k, Y)``: as :func:`refnode.rk_step.rk_step`, plus the stage
    inputs Y_i (Y_0 = y), which the independent adjoint needs for its θ̄ integral.
    """
    k, Y, y1 = [k1], [y], None
    for i in range(1, tableau.stages):
        Y_i = advance(y, h, [(a_ij, k[j]) for j, a_ij in tableau.a_rows[i]])
        k.append(f(t + tableau.c_float[i] * h, Y_i, theta))
        Y.append(Y_i)
        if tableau.fsal and i == tableau.stages - 1:
            y1 = Y_i
    if y1 is None:
        y1 = advance(y, h, [(b, k_i) for b, k_i in zip(tableau.b_float, k) if b != 0.0])
    error = increment(h, [(e, k_i) for e, k_i in zip(tableau.e_float, k) if e != 0.0])
    return y1, error, k, Y


def batch_extra_stages(f, tableau, t, y, h, theta, k):
    """The continuous extension's extra stages (dop853) with per-sample t and h."""
    k = list(k)
    for a_row, c_i in zip(tableau.dense.A_extra, tableau.dense.c_extra):
        terms = [(float(a), k[j]) for j, a in enumerate(a_row) if a != 0]
        k.append(f(t + float(c_i) * h, advance(y, h, terms), theta))
    return k


def batch_dense(tableau, fraction, h, y0, y1, k, f1):
    """Each sample's interpolant at its own fraction θ_b of its step (θ, h of shape (B,))."""
    th, h_y = per_sample(fraction, y0), per_sample(h, y0)
    if tableau.dense is None:
        return hermite(th, h_y, y0, k[0], y1, f1)
    weights = stage_weights(float_P(tableau.dense).tolist(), th)
    return advance(y0, h, list(zip(weights, k)))


# -- the driver -------------------------------------------------------------------------------

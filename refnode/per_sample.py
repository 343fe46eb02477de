"""One formula for one value or one per sample: the float-or-(B,) helpers.

The solvers keep the time t, the step size h and the error ratio either as one Python
float for the whole state (``batch="shared"``) or as an array of shape (B,), one per
sample of a batch whose leaves lead with the batch axis (``batch="independent"``). Every
rule of a step (the controller, the landing on the end time, the failure checks, the
step's arithmetic) is written once, with the helpers below, and serves both.

Why the shared mode keeps Python floats rather than 0-d arrays: under NumPy's promotion
rules (NEP 50) a Python float is "weak" and never promotes a float32 state to float64,
whereas a NumPy float64 scalar or array does. A float is also the fast path: no array is
made for it, and reading it needs no host synchronisation. The per-sample arrays are
float64 and are cast to the state's dtype where they meet the state (:func:`scale`).
"""

import math

import numpy as np

from .backend import array_module, to_float, to_numpy
from .params import tree_map


def is_per_sample(c):
    """True if ``c`` is a (B,) array of per-sample values rather than one number."""
    return type(c) is not float and getattr(c, "ndim", 0) == 1   # floats: the common case


def where(condition, x, y):
    """x where ``condition`` holds, else y: for one bool or elementwise for arrays."""
    if getattr(condition, "ndim", 0) >= 1:      # an array (one bool is the frequent case)
        return array_module(condition).where(condition, x, y)
    return x if condition else y


def clip(x, low, high):
    """min(high, max(low, x)) for a float or elementwise for an array."""
    if is_per_sample(x):
        return array_module(x).clip(x, low, high)
    return min(high, max(low, x))


def isfinite(x):
    return array_module(x).isfinite(x) if is_per_sample(x) else math.isfinite(x)


def isnan(x):
    return array_module(x).isnan(x) if is_per_sample(x) else math.isnan(x)


def spacing(t, h):
    """The distance from t to the next float64 in the direction of h (any sign of t or h)."""
    if is_per_sample(t):
        xp = array_module(t, h)
        return abs(xp.nextafter(t, xp.where(h < 0, -np.inf, np.inf)) - t)
    return abs(math.nextafter(t, math.copysign(math.inf, h)) - t)


def power(x, e):
    """x ** e for a float, or elementwise for a (B,) array: NumPy's array power in both.

    Python's float ``**`` (the C library's pow) and NumPy's array power (its own SIMD
    code on CPUs with AVX-512) can differ in the last bit; one routine for both keeps a
    one-sample batch on the shared loop's steps exactly.
    """
    if is_per_sample(x):
        return array_module(x).power(x, e)
    return float(np.power(np.array([x], dtype=np.float64), e)[0])


def all_true(x):
    """True if x (a bool, or a (B,) array of bools) holds everywhere (one host sync)."""
    return bool(to_numpy(array_module(x).all(x))) if is_per_sample(x) else bool(x)


def any_true(x):
    """True if x (a bool, or a (B,) array of bools) holds anywhere (one host sync)."""
    return bool(to_numpy(array_module(x).any(x))) if is_per_sample(x) else bool(x)


def divide(x, h):
    """x / h, where a finished sample's step of length 0 gives 0 (not a division by 0)."""
    if not is_per_sample(h):
        return x / h
    xp = array_module(h)
    return xp.where(h == 0.0, 0.0, x / xp.where(h == 0.0, 1.0, h))


def scale(c, x):
    """c · x, where c is a number or a (B,) array broadcast along x's leading axis.

    c may also be an (m, B) array, m values per sample (the fractions θ of m output
    times in each sample's step): then the product has shape (m, *x.shape).
    """
    if type(c) is float or getattr(c, "ndim", 0) == 0:
        return c * x
    if c.dtype != x.dtype:
        c = c.astype(x.dtype)
    return array_module(c, x).reshape(c, c.shape + (1,) * (x.ndim - 1)) * x


def select(mask, y_true, y_false):
    """y_true where ``mask`` holds, else y_false: per sample for a (B,) mask, or one bool.

    An (m, B) mask chooses per sample in m rows; the leaves then lead with those axes,
    (m, B, ...) (or (1, B, ...), the same for every row).
    """
    if getattr(mask, "ndim", 0) == 0:
        return y_true if mask else y_false
    def leafwise(a, b):
        xp = array_module(a, b)
        return xp.where(xp.reshape(mask, mask.shape + (1,) * (a.ndim - mask.ndim)), a, b)
    return tree_map(leafwise, y_true, y_false)


def dot(x, y, per_sample=False):
    """Σ x·y over all elements (a 0-d array), or over each sample's, shape (B,)."""
    xp = array_module(x, y)
    if per_sample:
        return xp.sum(xp.reshape(x * y, (x.shape[0], -1)), axis=1)
    return xp.sum(x * y)


def inner(x, y, like):
    """Σ x·y: over all elements as a Python float, or per sample (B,) if ``like`` is (B,)."""
    if is_per_sample(like):
        return dot(x, y, per_sample=True)
    return to_float(dot(x, y))


def host(v, like):
    """A value as a Python float (one for the whole state), or kept as a (B,) array."""
    return v if is_per_sample(like) else to_float(v)

"""Input validation: every check runs before any work is done, and says what to do."""

import math

import numpy as np

from .backend import array_module, to_numpy
from .errors import InputError, RefnodeError
from .params import copy_leaf, tree_leaves

#: The smallest rtol accepted: 100 float64 epsilons (about 2.2e-14); below it the
#: scaled error is rounding noise.
MIN_RTOL = 100 * np.finfo(np.float64).eps


def check_times(t):
    """t as a new 1-D float64 NumPy array: finite, at least one point, strictly monotonic.

    Always a copy, never the caller's array (a solution or gradient closure keeps it).

    Returns
    -------
    t : ndarray, shape (N,)
    direction : float
        +1.0 for increasing times, -1.0 for decreasing (and +1.0 for a single point).
    """
    t = to_numpy(t) if hasattr(t, "dtype") else _numeric_array(t, "t")
    if getattr(t, "dtype", None) is None or t.dtype.kind not in "fiu":
        raise InputError(f"t must be real numbers; got dtype {getattr(t, 'dtype', None)}. "
                         "Complex or non-numeric times are not supported.")
    t = np.array(t, dtype=np.float64)
    if t.ndim != 1:
        raise InputError(f"t must be a 1-D array of times; got shape {t.shape}. "
                         "Pass e.g. np.linspace(t0, t1, n).")
    if t.size < 1:
        raise InputError("t is empty: give at least the initial time t[0].")
    if not np.isfinite(t).all():           # array methods: NumPy's np.all adds ~1 µs a call
        bad = np.flatnonzero(~np.isfinite(t))[:5].tolist()
        raise InputError(f"t has non-finite entries at indices {bad}.")
    if t.size == 1:
        return t, 1.0
    with np.errstate(over="ignore"):
        dt = t[1:] - t[:-1]
    if not np.isfinite(dt).all():
        i = int(np.flatnonzero(~np.isfinite(dt))[0])
        raise InputError(f"t[{i + 1}] - t[{i}] = {float(t[i + 1])!r} - {float(t[i])!r} overflows "
                         "float64: no step can cross that interval. Rescale time.")
    if (dt > 0).all():
        return t, 1.0
    if (dt < 0).all():
        return t, -1.0
    i = int(np.flatnonzero(np.sign(dt) != np.sign(dt[0]))[0]) if np.any(dt != 0) else 0
    raise InputError(
        f"t must be strictly increasing or strictly decreasing; t[{i}] = {float(t[i])!r} and "
        f"t[{i + 1}] = {float(t[i + 1])!r} break the order. Sort the times (and drop repeats).")


def check_state(z0, name="z0"):
    """z0 as a new floating-point array of its own backend, finite.

    Lists and Python numbers become NumPy arrays; integer and boolean arrays become
    float64 (an ODE state is real-valued). Always a copy, never the caller's array (a
    solution or gradient closure keeps it).
    """
    if isinstance(z0, (np.matrix, np.ma.MaskedArray)):
        raise InputError(f"{name} is a {type(z0).__module__}.{type(z0).__name__}, whose "
                         "arithmetic is not an array's (matrix products, masked entries "
                         f"solved as if present): pass np.asarray({name}) (or "
                         f"{name}.filled(value) for a masked array).")
    given = z0
    if isinstance(z0, (list, tuple, int, float, complex)):
        z0 = _numeric_array(z0, name)
    if not hasattr(z0, "dtype") or not hasattr(z0, "shape"):
        raise InputError(f"{name} must be an array; got {type(z0).__name__}.")
    xp = array_module(z0)
    kind = getattr(z0.dtype, "kind", "f")
    if kind not in "fiub":
        raise InputError(f"{name} must be real-valued; got dtype {z0.dtype}. refnode solves real "
                         "ODEs: split a complex state into real and imaginary parts.")
    if _is_numpy_dtype(z0.dtype) and kind != "f":
        z0 = xp.asarray(z0, dtype=xp.float64)
    if _is_numpy_dtype(z0.dtype) and not z0.dtype.isnative:      # e.g. >f8 from a file:
        z0 = z0.astype(z0.dtype.newbyteorder("="))                # f returns native floats
    if _is_numpy_dtype(z0.dtype) and z0.dtype.itemsize < 4:
        raise InputError(f"{name} has dtype {z0.dtype}: half precision cannot hold the error "
                         "estimates of an adaptive solve (eps = 1e-3). Use float32 or float64.")
    if math.prod(z0.shape) == 0:
        raise InputError(f"{name} is empty (shape {tuple(z0.shape)}): give at least one state "
                         "component.")
    if not bool(to_numpy(xp.isfinite(z0).all())):          # an explicit host sync
        raise InputError(f"{name} has non-finite entries (NaN or inf): fix the initial state.")
    return copy_leaf(z0) if z0 is given else z0


def _numeric_array(value, name):
    """A NumPy array of numbers from a list, tuple or scalar; ragged or text refused."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as err:
        raise InputError(f"{name} must be a (non-ragged) array of numbers: {err}") from None
    if arr.dtype.kind not in "fiubc":
        raise InputError(f"{name} must be numbers; got {arr.dtype} values.")
    return arr


def _is_numpy_dtype(dtype):
    return isinstance(dtype, np.dtype)


def check_tolerances(rtol, atol, z0, per_sample=False):
    """rtol and atol: positive scalars or positive arrays broadcastable to z0.shape.

    With ``per_sample`` (``batch="independent"``) an array may not have the batch axis:
    the samples that finish leave the batch, so a tolerance per row would be misaligned.
    """
    for name, tol in (("rtol", rtol), ("atol", atol)):
        values = tol if type(tol) is float else tolerance_array(name, tol, z0, per_sample)
        if not positive_and_finite(values):
            raise InputError(f"{name} must be positive and finite; got {tol!r}. Typical values: "
                             "rtol=1e-7, atol=1e-9 (refnode's defaults).")
        if getattr(values, "ndim", 0) == 0 and name == "rtol" and float(values) < MIN_RTOL:
            raise InputError(f"rtol={float(values)!r} is below what float64 can resolve; "
                             "use rtol >= 1e-13.")


def positive_and_finite(values):
    """True if a float, or every entry of an array, is positive and finite."""
    if type(values) is float:                   # the frequent case, kept fast
        return math.isfinite(values) and values > 0
    return bool(np.isfinite(values).all() and (values > 0).all())


def tolerance_array(name, tol, z0, per_sample):
    """A tolerance other than a Python float as a float64 NumPy array, its shape checked."""
    if isinstance(tol, (str, bytes, bool, np.bool_)) or tol is None:
        raise InputError(f"{name} must be a positive number or array; got {tol!r}.")
    arr = to_numpy(tol) if hasattr(tol, "dtype") else _numeric_array(tol, name)
    if arr.dtype.kind not in "fiu":
        raise InputError(f"{name} must be real; got dtype {arr.dtype}.")
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim > 0:
        try:
            broadcasts = np.broadcast_shapes(arr.shape, tuple(z0.shape)) == tuple(z0.shape)
        except ValueError:
            broadcasts = False
        if not broadcasts:  # e.g. (2, 2) with a (2,) state would enlarge the error norm
            raise InputError(f"{name} has shape {arr.shape}, which does not broadcast "
                             f"to the state's shape {tuple(z0.shape)}.")
        if per_sample and arr.ndim == len(z0.shape) and arr.shape[0] != 1:
            raise InputError(f"{name} has shape {arr.shape}, one tolerance per sample: with "
                             "batch='independent' a tolerance array must broadcast to one "
                             f"sample's shape {tuple(z0.shape[1:])} (the same for every "
                             "sample). Solve samples that need other tolerances apart.")
    return arr


def first_derivative(f, t0, z0, theta):
    """f(t0, z0, theta), checked: the first call tells whether f fits the problem at all.

    An exception from that first call (f does not accept this z0 or theta) becomes an
    InputError that names the call, chained to the original.
    """
    try:
        dz = f(t0, z0, theta)
    except RefnodeError:
        raise
    except Exception as err:
        raise InputError(f"f(t0, z0, theta) raised {type(err).__name__}: {err}. Check that f "
                         f"accepts f(t, z, theta) with z of shape {tuple(getattr(z0, 'shape', ()))} "
                         "and this theta.") from err
    check_derivative(dz, z0, t0)
    return dz


def check_theta_differentiable(theta):
    """theta for a gradient: None, or a tree whose leaves are real floating-point values."""
    if theta is None:
        return
    for leaf in tree_leaves(theta):
        kind = getattr(getattr(leaf, "dtype", None), "kind", None)
        if kind is None and isinstance(leaf, float):
            continue
        if kind != "f":
            raise InputError(f"theta must hold real floating-point arrays (or floats) to be "
                             f"differentiated; got a leaf of type {type(leaf).__name__}"
                             f"{' dtype ' + str(leaf.dtype) if kind else ''}. Convert it, e.g. "
                             "np.asarray(theta, dtype=float).")


def check_derivative(dz, z0, t0):
    """The first f(t0, z0, theta): the shape and dtype of z0, and finite."""
    if tree_leaves(dz) and isinstance(z0, (tuple, list, dict)):
        return
    if not hasattr(dz, "shape") or tuple(dz.shape) != tuple(z0.shape):
        shape = getattr(dz, "shape", type(dz).__name__)
        raise InputError(f"f(t, z, theta) returned shape {shape} for a state of shape "
                         f"{tuple(z0.shape)}: dz/dt must have the state's shape.")
    if dz.dtype != z0.dtype:
        raise InputError(f"f(t, z, theta) returned dtype {dz.dtype} for a state of dtype "
                         f"{z0.dtype}: keep the dynamics in the state's precision.")
    xp = array_module(dz)
    if not bool(to_numpy(xp.isfinite(dz).all())):
        raise InputError(f"f(t0, z0, theta) is not finite at t0 = {float(np.min(to_numpy(t0)))!r}: check the dynamics "
                         "and the initial state.")


def check_real(value, name, *, positive=False, allow_none=False, allow_zero=True):
    """``value`` as a Python float: a real, finite number (positive if asked)."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise InputError(f"{name} must be a real number; got {value!r} "
                         f"({type(value).__name__}).")
    try:
        value = float(value)
    except OverflowError:
        raise InputError(f"{name} = {value!r} is too large for a float.") from None
    if not np.isfinite(value) or value < 0 or (value == 0 and (positive or not allow_zero)):
        need = "a positive" if positive or not allow_zero else "a non-negative"
        raise InputError(f"{name} must be {need} number (and finite); got {value!r}.")
    return value


def check_positive_int(value, name):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise InputError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)


def check_theta_tree(theta):
    """theta may be any tree of arrays and numbers, but not one that contains itself.

    A list or dict holding a reference to itself has no leaves to walk: refuse it here
    rather than recurse without end inside a solve.
    """
    def walk(node, path):
        if isinstance(node, (list, tuple, dict)):
            if id(node) in path:
                raise InputError("theta contains itself (a list, tuple or dict that holds a "
                                 "reference to itself, or to a container around it): pass a "
                                 "tree without cycles.")
            path.add(id(node))
            for child in (node.values() if isinstance(node, dict) else node):
                walk(child, path)
            path.discard(id(node))
    walk(theta, set())


class CheckedNorm:
    """A user's error norm, its every answer checked: a real number (shared steps), or
    one real number per sample, shape (B,) (``batch="independent"``)."""

    def __init__(self, norm, per_sample):
        self.norm, self.per_sample = norm, per_sample

    def __call__(self, error, y0, y1):
        ratio = self.norm(error, y0, y1)
        expected = (error.shape[0],) if self.per_sample else ()
        if isinstance(ratio, (int, float)) and not isinstance(ratio, bool) and not self.per_sample:
            return ratio
        kind = getattr(getattr(ratio, "dtype", None), "kind", None)
        if kind in ("f", "i", "u") and tuple(getattr(ratio, "shape", ())) == expected:
            return ratio
        what = (f"shape {tuple(ratio.shape)} dtype {ratio.dtype}" if kind is not None
                else f"a {type(ratio).__name__}")
        want = ("an array of shape (B,) = " + str(expected) + ", one ratio per sample"
                if self.per_sample else "one real number")
        raise InputError(f"the error norm (StepControl(norm=...)) returned {what}; it must "
                         f"return {want} (accept the step where ratio <= 1).")

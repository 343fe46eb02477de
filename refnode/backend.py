"""The array module ``xp``: the arrays decide it.

refnode's solvers, adjoints and layers never import an array library directly for
their arithmetic. They ask :func:`array_module` for the module that owns their inputs:

* NumPy arrays (and Python scalars) -> :mod:`numpy`;
* CuPy arrays -> :mod:`cupy` (imported only if such an array is seen);
* autograd's traced boxes -> :mod:`autograd.numpy`, so autograd can differentiate the
  very same solver code (the "autograd" gradient oracle);
* any other array with ``__array_namespace__`` (e.g. ``array_api_strict``) -> its own
  namespace, which lets the CPU tests catch stray NumPy calls on device arrays.
"""

import numpy as np


def _is_autograd_box(x):
    return type(x).__module__.startswith("autograd")


def array_module(*arrays):
    """Return the array module that owns ``arrays``.

    Parameters
    ----------
    *arrays : array-like
        Arrays (or nested lists/tuples/dicts of arrays); ``None`` and scalars are ignored.

    Returns
    -------
    module
        ``numpy``, ``cupy``, ``autograd.numpy`` or an array-API namespace.
    """
    for x in arrays:       # the common case, kept fast: NumPy arrays and Python numbers
        if not (isinstance(x, _HOST_TYPES) or _all_host(x)):
            break
    else:
        return np
    found = np
    for x in _leaves(arrays):
        if _is_autograd_box(x):
            import autograd.numpy as anp

            return anp
        mod = type(x).__module__.split(".")[0]
        if mod == "cupy":
            import cupy

            found = cupy
        elif mod not in ("numpy", "builtins") and hasattr(x, "__array_namespace__"):
            found = x.__array_namespace__()
    return found


#: Leaf types that mean NumPy: host arrays, NumPy scalars, Python numbers, None.
_HOST_TYPES = (np.ndarray, np.generic, float, int, bool, type(None))


def _all_host(tree):
    """True if every leaf of ``tree`` is one of :data:`_HOST_TYPES` (a plain loop: this
    runs on every evaluation of f, with θ a nested list of dicts)."""
    if isinstance(tree, _HOST_TYPES):          # a leaf: the most frequent case
        return True
    if isinstance(tree, (list, tuple)):
        for item in tree:
            if not _all_host(item):
                return False
        return True
    if isinstance(tree, dict):
        for item in tree.values():
            if not _all_host(item):
                return False
        return True
    return False


def _leaves(tree):
    if isinstance(tree, (list, tuple)):
        for item in tree:
            yield from _leaves(item)
    elif isinstance(tree, dict):
        for item in tree.values():
            yield from _leaves(item)
    elif tree is not None:
        yield tree


def to_numpy(x):
    """Copy ``x`` to a host NumPy array (CuPy -> ``.get()``; boxes -> their value)."""
    while _is_autograd_box(x):
        x = x._value
    if type(x).__module__.split(".")[0] == "cupy" or type(x).__module__ == "refnode.strict":
        return x.get()                  # the explicit device -> host copy (refnode.strict too)
    return np.asarray(x)


def to_float(x):
    """A Python float from a 0-d array of any backend (a host synchronisation on GPU)."""
    if isinstance(x, (np.generic, np.ndarray, float)):    # on the host already: read it
        return float(x)
    return float(to_numpy(x))


def stack(arrays):
    """Stack equally shaped arrays along a new first axis (any backend).

    For NumPy arrays ``np.array`` builds the same array as ``np.stack`` without its
    Python-level argument checks (about 3 µs a call, paid once per step and output).
    """
    xp = array_module(*arrays)
    return np.array(arrays) if xp is np else xp.stack(arrays)


def concatenate(blocks):
    """Concatenate arrays along their first axis; one block is returned as it is."""
    return blocks[0] if len(blocks) == 1 else array_module(*blocks).concatenate(blocks)

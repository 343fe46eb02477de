"""A strict "device" array for CPU tests: it fails where CuPy code would go wrong.

``StrictArray`` wraps a NumPy array and behaves like a CuPy array whose host is far away:

* NumPy cannot see into it: ``np.asarray(x)`` / ``__array__`` raise, NumPy ufuncs and
  functions refuse it (``np.exp(x)``, ``np.sum(x)``), and mixing it with an
  ``np.ndarray`` in arithmetic, indexing or an ``xp`` function raises — CuPy raises
  ``TypeError`` on all of these (a NumPy array is host memory). Python and NumPy
  scalars mix freely, as they do on CuPy. Shape queries (``np.shape``, ``np.ndim``,
  ``np.size``) are allowed: they read metadata only.
* No implicit host synchronisation: ``float(x)``, ``int(x)``, ``bool(x)`` (so ``if x:``),
  ``x.item()`` and ``x.tolist()`` raise. CuPy would allow them, silently waiting for the
  GPU; refnode synchronises only through :func:`refnode.backend.to_numpy` /
  :func:`~refnode.backend.to_float`, which call :meth:`StrictArray.get` (CuPy's name) —
  and :data:`TRANSFERS` counts those, so a test can bound the syncs per step.
* In-place writes (``x[i:j] += y``) work, as on CuPy, with device values only; traced
  code never uses them (docs/design.md), which autograd, not this array, checks.
* Its module, ``xp = array_module(x)``, is :data:`namespace`: NumPy's functions with
  strict arrays in and out; ``xp.asarray(host_array)`` is the explicit upload. Its
  reductions and ``where`` refuse a Python or NumPy scalar as first argument
  (:data:`ARRAY_FIRST`; ``xp.any(False)`` raises, as CuPy does).

Why not ``array_api_strict``: it also refuses NumPy-only names (``xp.transpose``,
``xp.pad``, ``x.astype``) that CuPy and autograd.numpy share with NumPy, so refnode
would need a second spelling of its array code. This wrapper keeps the one NumPy
spelling that runs on NumPy, CuPy and autograd, and fails exactly on the GPU's hazards:
host arrays mixed in, NumPy called on device data, hidden synchronisation.

    >>> import numpy as np
    >>> from refnode.strict import to_device
    >>> x = to_device(np.ones(3))
    >>> float(x.sum())
    Traceback (most recent call last):
    ...
    TypeError: implicit host synchronisation (float()) on a device array; ...
"""

import types

import numpy as np

#: Number of explicit device-to-host transfers (:meth:`StrictArray.get`) so far.
TRANSFERS = [0]

#: NumPy functions that only read shapes, allowed on strict arrays (as on CuPy).
METADATA_FUNCTIONS = {np.shape, np.ndim, np.size}

#: ``xp`` functions whose first argument must be a device array: CuPy checks it
#: (``any``, ``all``, ``nonzero``, ``flatnonzero``, ``argwhere``: "'a' must be a
#: cupy.ndarray") or calls its methods (``where``'s condition ``.astype``, ``sum`` ->
#: ``a.sum``, ...), so a Python or NumPy scalar there fails on the GPU alone.
ARRAY_FIRST = {"any", "all", "nonzero", "flatnonzero", "argwhere", "where", "sum", "prod",
               "min", "max", "amin", "amax", "mean", "var", "std", "argmin", "argmax"}


def _unwrap(x, where):
    """The NumPy data inside (nested lists/tuples too); refuses host ndarrays."""
    if isinstance(x, StrictArray):
        return x._data
    if type(x) is np.ndarray:
        raise TypeError(f"{where}: a NumPy (host) array mixed with device arrays; move it with "
                        "xp.asarray(...) first (CuPy raises TypeError here).")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(item, where) for item in x)
    return x


def _wrap(x):
    if type(x) is np.ndarray or isinstance(x, np.generic):   # NumPy scalars: 0-d results
        return StrictArray(x)
    if isinstance(x, tuple):
        return tuple(_wrap(item) for item in x)
    if isinstance(x, list):
        return [_wrap(item) for item in x]
    return x


def _sync_error(what):
    return TypeError(f"implicit host synchronisation ({what}) on a device array; use "
                     "refnode.backend.to_numpy / to_float where a host value is really needed.")


class StrictArray:
    """A NumPy array posing as device memory (see the module docstring)."""

    __array_priority__ = 1000
    __array_ufunc__ = None          # NumPy ufuncs and ndarray operators defer, then fail

    def __init__(self, data):
        self._data = np.asarray(data)

    def __array_namespace__(self, api_version=None):
        return namespace

    def __array__(self, dtype=None, copy=None):
        raise TypeError("implicit conversion of a device array to NumPy; use "
                        "refnode.backend.to_numpy (CuPy raises TypeError here).")

    def __array_function__(self, func, types_, args, kwargs):
        if func in METADATA_FUNCTIONS:
            return func(*[a._data if isinstance(a, StrictArray) else a for a in args], **kwargs)
        raise TypeError(f"numpy.{func.__name__} called on a device array; use "
                        "xp = refnode.backend.array_module(x) and xp.{func.__name__}.")

    def get(self):
        """The explicit device-to-host copy (CuPy's ``ndarray.get``); counted in TRANSFERS."""
        TRANSFERS[0] += 1
        return self._data.copy()

    # metadata
    shape = property(lambda self: self._data.shape)
    dtype = property(lambda self: self._data.dtype)
    ndim = property(lambda self: self._data.ndim)
    size = property(lambda self: self._data.size)
    T = property(lambda self: StrictArray(self._data.T))

    def __len__(self):
        return len(self._data)

    def __repr__(self):
        return f"StrictArray(shape={self.shape}, dtype={self.dtype})"

    # no implicit synchronisation
    def __float__(self):
        raise _sync_error("float()")

    def __int__(self):
        raise _sync_error("int()")

    def __index__(self):
        raise _sync_error("operator.index")

    def __bool__(self):
        raise _sync_error("bool(), e.g. `if x:`")

    def item(self, *args):
        raise _sync_error(".item()")

    def tolist(self):
        raise _sync_error(".tolist()")

    def __iter__(self):
        return (StrictArray(row) for row in self._data)

    # indexing, methods
    def __getitem__(self, key):
        return _wrap(self._data[_unwrap(key, "indexing")])

    def __setitem__(self, key, value):
        """In-place writes, as CuPy allows them (hand-written VJPs accumulate, e.g. col2im);
        the key and the value must be device data or Python numbers, as on CuPy."""
        self._data[_unwrap(key, "indexing")] = _unwrap(value, "item assignment")

    def __iadd__(self, other):
        """In-place addition into the data (a view writes through to its base, as on CuPy);
        device data or Python numbers only."""
        self._data += _unwrap(other, "operator +=")
        return self

    def __getattr__(self, name):
        if name.startswith("__"):       # no __array_interface__ etc.: NumPy must not see in
            raise AttributeError(name)
        attr = getattr(self._data, name)
        if not callable(attr):
            return _wrap(attr)
        return lambda *a, **k: _wrap(attr(*_unwrap(a, f".{name}"), **_unwrap_kwargs(k, name)))


def _unwrap_kwargs(kwargs, where):
    return {k: _unwrap(v, where) for k, v in kwargs.items()}


def _binary(op):
    def method(self, other):
        return _wrap(op(self._data, _unwrap(other, f"operator {op.__name__}")))
    return method


def _reflected(op):
    def method(self, other):
        return _wrap(op(_unwrap(other, f"operator {op.__name__}"), self._data))
    return method


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or",
              "xor", "lt", "le", "gt", "ge", "eq", "ne"):
    _op = getattr(__import__("operator"), _name if _name not in ("and", "or") else _name + "_")
    setattr(StrictArray, f"__{_name}__", _binary(_op))
    if _name not in ("lt", "le", "gt", "ge", "eq", "ne"):
        setattr(StrictArray, f"__r{_name}__", _reflected(_op))
StrictArray.__neg__ = lambda self: StrictArray(-self._data)
StrictArray.__pos__ = lambda self: self
StrictArray.__abs__ = lambda self: StrictArray(np.abs(self._data))
StrictArray.__invert__ = lambda self: StrictArray(~self._data)
StrictArray.__hash__ = None


class _Namespace(types.ModuleType):
    """``xp`` for strict arrays: NumPy's functions, strict arrays in and out."""

    def __getattr__(self, name):
        attr = getattr(np, name)
        if name in ("asarray", "array"):          # the explicit host -> device copy
            return lambda x, *a, **k: StrictArray(np.array(
                x._data if isinstance(x, StrictArray) else x, *a, **k))
        if isinstance(attr, types.ModuleType) or not callable(attr) or isinstance(attr, type):
            return attr                           # constants, dtypes (xp.float64), submodules

        def call(*a, **k):
            if name in ARRAY_FIRST and a and not isinstance(a[0], StrictArray):
                raise TypeError(f"xp.{name} of a {type(a[0]).__name__}: its first argument must "
                                "be a device array (CuPy raises TypeError or AttributeError "
                                "here); make it one with xp.asarray(...).")
            return _wrap(attr(*_unwrap(a, f"xp.{name}"), **_unwrap_kwargs(k, name)))
        return call


#: The array module of strict arrays (what ``refnode.backend.array_module`` returns).
namespace = _Namespace("refnode.strict.namespace")


def to_device(tree):
    """Copy an array, or a tuple/list/dict tree of arrays, into strict arrays."""
    if isinstance(tree, dict):
        return {k: to_device(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)) and not hasattr(tree, "_fields"):
        return type(tree)(to_device(v) for v in tree)
    return StrictArray(np.asarray(tree))

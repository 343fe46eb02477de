"""The dynamics protocol: ``f(t, z, theta)`` and ``f.vjp(t, z, theta, a)``.

refnode writes dynamics time first, as SciPy, torchdiffeq and diffrax do::

    dz/dt = f(t, z, theta)

The paper writes f(z(t), t, θ); JAX's ``odeint`` and autograd's examples use
``func(y, t, *args)``. Mind the order when porting code.

The adjoint and the discrete adjoint need vector-Jacobian products

    f.vjp(t, z, theta, a) -> (a_z, a_theta, a_t)
        a_z     = aᵀ ∂f/∂z       same shape as z
        a_theta = aᵀ ∂f/∂θ       same structure as theta, summed over a batch
        a_t     = aᵀ ∂f/∂t       a scalar, summed over a batch

Layers in :mod:`refnode.nn` provide hand-derived VJPs. A plain callable gets one
derived by autograd (:func:`as_dynamics`).

Dynamics may also offer ``f.linearize(t, z, theta) -> (f(t, z, θ), vjp)``, with
``vjp(a) -> (a_z, a_theta, a_t)`` at that same point: the forward pass once, its VJP
later and as often as needed, without computing f again (:func:`linearize`; the discrete
adjoint's reverse steps use it).
"""

import numpy as np
from autograd import make_vjp

from .backend import array_module, to_numpy
from .errors import InputError, RefnodeError, describe_call_error, shape_hint
from .params import as_plain, like, tree_leaves


class AutogradDynamics:
    """Wrap a plain ``f(t, z, theta)`` and derive its VJP with autograd.

    Parameters
    ----------
    f : callable
        ``f(t, z, theta) -> dz/dt`` written with ``autograd.numpy`` (or operators only).
    """

    def __init__(self, f):
        self.f = f
        self.__name__ = getattr(f, "__name__", type(f).__name__)

    def __call__(self, t, z, theta):
        return self.f(t, z, theta)

    def vjp(self, t, z, theta, a):
        """(aᵀ∂f/∂z, aᵀ∂f/∂θ, aᵀ∂f/∂t), derived by autograd; see module docstring."""
        return self.value_and_vjp(t, z, theta, a)[1:]

    def value_and_vjp(self, t, z, theta, a):
        """(f, aᵀ∂f/∂z, aᵀ∂f/∂θ, aᵀ∂f/∂t) from one autograd trace.

        ``theta=None`` (dynamics without parameters) gives ``a_theta=None``.
        """
        dz, vjp = self.linearize(t, z, theta)
        return (dz,) + vjp(a)

    def linearize(self, t, z, theta):
        """(f(t, z, θ), vjp): the autograd trace of f, its VJP to be taken later."""
        xp = array_module(z)
        t = xp.asarray(t, dtype=z.dtype)
        if theta is None:
            vjp_fn, dz = make_vjp(lambda args: self.f(args[0], args[1], None))((t, z))

            def vjp(a):
                a_t, a_z = vjp_fn(a)
                return a_z, None, a_t
            return dz, vjp
        traced = lambda args: self.f(args[0], args[1], like(theta, args[2]))  # noqa: E731
        vjp_fn, dz = make_vjp(traced)((t, z, as_plain(theta)))   # autograd: plain containers

        def vjp(a):
            a_t, a_z, a_theta = vjp_fn(a)
            return a_z, like(theta, a_theta), a_t
        return dz, vjp

    def __repr__(self):
        return f"AutogradDynamics({self.__name__})"


def as_dynamics(f):
    """Return ``f`` if it has a ``.vjp``; otherwise wrap it with :class:`AutogradDynamics`."""
    if not callable(f):
        raise InputError(f"dynamics must be callable as f(t, z, theta); got {type(f).__name__}.")
    if hasattr(f, "vjp"):
        return f
    return AutogradDynamics(f)


def value_and_vjp(f, t, z, theta, a):
    """(f(t, z, θ), aᵀ∂f/∂z, aᵀ∂f/∂θ, aᵀ∂f/∂t): one pass if f offers it, else two calls."""
    if hasattr(f, "value_and_vjp"):
        return f.value_and_vjp(t, z, theta, a)
    return (f(t, z, theta),) + tuple(f.vjp(t, z, theta, a))


def linearize(f, t, z, theta):
    """(f(t, z, θ), vjp), ``vjp(a) -> (aᵀ∂f/∂z, aᵀ∂f/∂θ, aᵀ∂f/∂t)`` at the same point.

    One forward pass if f offers ``linearize``; otherwise its VJP is ``f.vjp`` at that
    point (which may compute f again).
    """
    if hasattr(f, "linearize"):
        return f.linearize(t, z, theta)
    return f(t, z, theta), lambda a: tuple(f.vjp(t, z, theta, a))


def check_vjp_output(f, t, z, theta, a):
    """Call ``f.vjp`` once and check what it returns (:func:`check_vjp_result`)."""
    out = call_vjp(getattr(f, "__name__", type(f).__name__), lambda: f.vjp(t, z, theta, a))
    check_vjp_result(f, out, t, z, theta)


def call_vjp(name, call):
    """``call()``, a call of f's VJP; an exception that is not refnode's own becomes an
    InputError saying what the VJP is called with."""
    try:
        return call()
    except RefnodeError:
        raise
    except Exception as err:
        raise InputError(describe_call_error(err, f"{name}.vjp(t, z, theta, a)",
                                             "the VJP accepts the time, the state, theta and a "
                                             "cotangent of the state's shape")) from err


def check_vjp_result(f, out, t, z, theta, per_sample=False):
    """Check what f's VJP returned at (t, z, theta), before a reverse pass relies on it.

    A hand-written VJP that returns the wrong shapes, a list or a 2-tuple, ``None`` for a
    θ-gradient that exists, or non-finite values would otherwise fail deep inside the
    reverse pass or, worse, give a wrong gradient silently. ``a_t`` may be a scalar, or
    with per-sample times one value per sample, shape (B,) or t's shape.

    Raises
    ------
    InputError
        Naming what is wrong with the VJP's output and what it should be.
    """
    name = getattr(f, "__name__", type(f).__name__)
    if not isinstance(out, tuple) or len(out) != 3:
        raise InputError(f"{name}.vjp(t, z, theta, a) must return a 3-tuple (a_z, a_theta, a_t); "
                         f"got {type(out).__name__}"
                         f"{' of length ' + str(len(out)) if isinstance(out, (tuple, list)) else ''}.")
    a_z, a_theta, a_t = out
    if getattr(a_z, "shape", None) != getattr(z, "shape", None):
        raise InputError(f"{name}.vjp returned a_z of shape {getattr(a_z, 'shape', None)}; it must "
                         f"have the state's shape {getattr(z, 'shape', None)}.")
    if theta is not None:
        got = [getattr(g, "shape", None) for g in tree_leaves(a_theta)]
        want = [tuple(getattr(p, "shape", ())) for p in tree_leaves(theta)]
        if got != want:
            hints = [shape_hint(g, w) for g, w in zip(got, want) if g is not None and g != w]
            raise InputError(f"{name}.vjp returned a_theta with leaf shapes {got}; it must match "
                             f"theta's leaves {want} (one gradient per parameter, summed over "
                             f"the batch).{hints[0] if hints else ''}")
    t_shape = tuple(getattr(a_t, "shape", ()))
    if t_shape not in ((), (z.shape[0],) if per_sample else (), tuple(np.shape(t))):
        raise InputError(f"{name}.vjp returned a_t of shape {t_shape}; it must be a scalar "
                         f"(aᵀ∂f/∂t summed over the batch){' or (B,) per sample' if per_sample else ''}.")
    leaves = [a_z, a_t] + ([] if theta is None else tree_leaves(a_theta))
    xp = array_module(a_z)
    finite = xp.stack([xp.all(xp.isfinite(xp.asarray(leaf))) for leaf in leaves])
    if not bool(to_numpy(xp.all(finite))):                      # one host sync
        raise InputError(f"{name}.vjp returned non-finite values (NaN or inf) at t = "
                         f"{float(np.max(to_numpy(t)))!r}: check the hand-written VJP.")


class CheckedDynamics:
    """The user's f, with every value it returns checked against the state it was given.

    Every evaluation of f — each stage of every step, in both batch modes, the dense
    output's extra stages, the discrete gradient's replay and the adjoint's augmented
    dynamics — goes through :meth:`__call__` or :meth:`value_and_vjp`, so an f that
    returns another shape, another dtype or a list at some later time is refused there,
    by name, instead of failing deep inside a step. The check compares two attributes
    (cheap next to any f).

    The first VJP of f that a gradient takes (:meth:`vjp`, :meth:`value_and_vjp` or the
    ``vjp`` of :meth:`linearize`) is checked too, as it comes: its structure, shapes and
    finiteness (:func:`check_vjp_result`). No extra call of ``f.vjp`` is made for it.
    """

    def __init__(self, f):
        self.f = f
        self.__name__ = getattr(f, "__name__", type(f).__name__)
        self.vjp_checked = False

    def __call__(self, t, z, theta):
        return self.checked(self.f(t, z, theta), t, z)

    def vjp(self, t, z, theta, a):
        return self.checked_vjp(lambda: self.f.vjp(t, z, theta, a), t, z, theta)

    def value_and_vjp(self, t, z, theta, a):
        if not self.vjp_checked:                # the first VJP, checked as it comes
            dz, vjp = self.linearize(t, z, theta)
            return (dz,) + vjp(a)
        dz, a_z, a_theta, a_t = value_and_vjp(self.f, t, z, theta, a)
        return self.checked(dz, t, z), a_z, a_theta, a_t

    def linearize(self, t, z, theta):
        if self.vjp_checked:
            dz, vjp = linearize(self.f, t, z, theta)
            return self.checked(dz, t, z), vjp
        if hasattr(self.f, "linearize"):
            dz, f_vjp = self.f.linearize(t, z, theta)
        else:
            dz, f_vjp = self.f(t, z, theta), lambda a: self.f.vjp(t, z, theta, a)
        return (self.checked(dz, t, z),
                lambda a: self.checked_vjp(lambda: f_vjp(a), t, z, theta))

    def checked_vjp(self, call, t, z, theta):
        """``call()``, a VJP of f at (t, z, theta); the first one refnode takes is checked
        (:func:`check_vjp_result`, with one host read), the later ones pass through."""
        if self.vjp_checked:
            return call()
        out = call_vjp(self.__name__, call)
        check_vjp_result(self, out, t, z, theta, per_sample=np.ndim(t) > 0)
        self.vjp_checked = True
        return out

    @staticmethod
    def checked(dz, t, z):
        """``dz``, after checking it has the shape and dtype of ``z``."""
        try:
            if dz.shape == z.shape and dz.dtype == z.dtype:
                return dz
        except AttributeError:
            pass
        at = f"at t = {float(np.min(to_numpy(t)))!r}"
        shape = getattr(dz, "shape", None)
        if shape is None or tuple(shape) != tuple(z.shape):
            got = type(dz).__name__ if shape is None else tuple(shape)
            raise InputError(f"f(t, z, theta) returned shape {got} {at} for a state of shape "
                             f"{tuple(z.shape)}: dz/dt must have the state's shape at every "
                             "time (an array, not a list).")
        raise InputError(f"f(t, z, theta) returned dtype {dz.dtype} {at} for a state of dtype "
                         f"{z.dtype}: keep the dynamics in the state's precision at every time.")

    def __repr__(self):
        return f"CheckedDynamics({self.__name__})"

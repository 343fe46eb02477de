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
"""

from autograd import make_vjp

from .backend import array_module
from .errors import InputError


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
        xp = array_module(z)
        t = xp.asarray(t, dtype=z.dtype)
        if theta is None:
            vjp_fn, dz = make_vjp(lambda args: self.f(args[0], args[1], None))((t, z))
            a_t, a_z = vjp_fn(a)
            return dz, a_z, None, a_t
        vjp_fn, dz = make_vjp(lambda args: self.f(*args))((t, z, theta))
        a_t, a_z, a_theta = vjp_fn(a)
        return dz, a_z, a_theta, a_t

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

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
        xp = array_module(z)
        packed = (xp.asarray(t, dtype=z.dtype), z, theta)
        vjp_fn, _ = make_vjp(lambda args: self.f(*args))(packed)
        a_t, a_z, a_theta = vjp_fn(a)
        return a_z, a_theta, a_t

    def __repr__(self):
        return f"AutogradDynamics({self.__name__})"


def as_dynamics(f):
    """Return ``f`` if it has a ``.vjp``; otherwise wrap it with :class:`AutogradDynamics`."""
    if not callable(f):
        raise TypeError(f"dynamics must be callable as f(t, z, theta); got {type(f).__name__}")
    if hasattr(f, "vjp"):
        return f
    return AutogradDynamics(f)

"""JAX: ``jax.experimental.ode.odeint`` (dopri5; its VJP is an adjoint with time gradients).

Conventions mapped here: JAX calls ``func(y, t, *args)`` (refnode: ``f(t, z, theta)``), and
its odeint returns NaN states, without an error, when t decreases (measured with jax
0.10.2), so a problem with decreasing t is solved in s = −t, dz/ds = −f(−s, z); then
∂L/∂t = −∂L/∂s. float64 is switched on.
"""

import jax
import jax.numpy as jnp
from jax.experimental.ode import odeint

from . import kind_of, results
from .jax_fields import as_numpy, dynamics, inputs

DESCRIPTION = {"adjoint": "jax.experimental.ode.odeint (dopri5, adjoint)"}


def versions():
    import jaxlib
    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__}


def solve(problem, gradient="adjoint"):
    """States and gradients of L = Σ ⟨g_i, z(t_i)⟩ by JAX's odeint (refnode verify's callable)."""
    z0, params, t, g = inputs(problem)
    sign = 1.0 if float(t[-1]) > float(t[0]) else -1.0      # −1: solve in s = −t
    compiled = _compiled(problem["name"], kind_of(problem), sign, problem["rtol"], problem["atol"])
    zs, grads = compiled(z0, params, t, g)
    dz0, dtheta, dt = as_numpy(grads)
    return results(as_numpy(zs), dz0, dtheta, dt, problem)


_CACHE = {}


def _compiled(name, kind, sign, rtol, atol):
    """The jitted (states, gradients) of one problem at one rtol, atol (odeint takes them
    as static arguments)."""
    key = (name, sign, rtol, atol)
    if key not in _CACHE:
        f = dynamics(kind)

        def func(y, s, p):                               # JAX's order: func(y, t, *args)
            return sign * f(sign * s, y, p)

        def loss(z0, p, t, g):
            zs = odeint(func, z0, sign * t, p, rtol=rtol, atol=atol)
            return jnp.sum(zs * g), zs

        grad = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)
        _CACHE[key] = jax.jit(lambda *a: (lambda out: (out[0][1], out[1]))(grad(*a)))
    return _CACHE[key]

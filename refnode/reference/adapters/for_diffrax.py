"""diffrax: ``diffeqsolve`` with Dopri5 and a PID controller, three ways to the gradient.

* ``recursive-checkpoint``: ``RecursiveCheckpointAdjoint`` (backprop through the solver,
  with checkpointing): discretise-then-optimise;
* ``backsolve``: ``BacksolveAdjoint`` (the continuous adjoint, z rebuilt backwards). It
  does not differentiate with respect to the output times ``SaveAt(ts=...)``: ∂L/∂t is
  "n/s";
* ``direct``: ``DirectAdjoint`` (plain reverse-mode through a bounded loop).

States come from ``SaveAt(ts=t)``; diffrax integrates backwards when t decreases.
``max_steps`` is raised from diffrax's default 4096 to :data:`MAX_STEPS`.
"""

import diffrax
import equinox
import jax
import jax.numpy as jnp

from . import kind_of, results
from .jax_fields import as_numpy, dynamics, inputs

DESCRIPTION = {"recursive-checkpoint": "diffeqsolve, RecursiveCheckpointAdjoint (Dopri5)",
               "backsolve": "diffeqsolve, BacksolveAdjoint (Dopri5)",
               "direct": "diffeqsolve, DirectAdjoint (Dopri5)"}
ADJOINTS = {"recursive-checkpoint": diffrax.RecursiveCheckpointAdjoint,
            "backsolve": diffrax.BacksolveAdjoint, "direct": diffrax.DirectAdjoint}
#: Enough for rtol = 1e-10 on every reference problem (the stiff one takes ~500 steps).
MAX_STEPS = 100_000


def versions():
    return {"jax": jax.__version__, "diffrax": diffrax.__version__,
            "equinox": equinox.__version__}


def solve(problem, gradient="recursive-checkpoint"):
    """States and gradients of L = Σ ⟨g_i, z(t_i)⟩ by diffrax (refnode verify's callable)."""
    z0, params, t, g = inputs(problem)
    tolerances = jnp.asarray(problem["rtol"]), jnp.asarray(problem["atol"])
    zs, grads = _compiled(problem["name"], kind_of(problem), gradient)(z0, params, t, g,
                                                                       *tolerances)
    zs, grads = as_numpy(zs), as_numpy(grads)
    if gradient != "backsolve":
        return results(zs, grads[0], grads[1], grads[2], problem)
    return results(zs, grads[0], grads[1], None, problem,
                   {"t": "BacksolveAdjoint does not differentiate SaveAt(ts=...)"})


_CACHE = {}


def _compiled(name, kind, gradient):
    """The jitted (states, gradients) of one problem and mode; rtol and atol are traced, so
    one compilation serves every tolerance."""
    key = (name, gradient)
    if key not in _CACHE:
        term = diffrax.ODETerm(dynamics(kind))
        argnums = (0, 1) if gradient == "backsolve" else (0, 1, 2)

        def loss(z0, p, t, g, rtol, atol):
            controller = diffrax.PIDController(rtol=rtol, atol=atol)
            sol = diffrax.diffeqsolve(term, diffrax.Dopri5(), t0=t[0], t1=t[-1], dt0=None,
                                      y0=z0, args=p, saveat=diffrax.SaveAt(ts=t),
                                      stepsize_controller=controller,
                                      adjoint=ADJOINTS[gradient](), max_steps=MAX_STEPS)
            return jnp.sum(sol.ys * g), sol.ys

        grad = jax.value_and_grad(loss, argnums=argnums, has_aux=True)
        _CACHE[key] = jax.jit(lambda *a: (lambda out: (out[0][1], out[1]))(grad(*a)))
    return _CACHE[key]

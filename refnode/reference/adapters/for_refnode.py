"""refnode itself, as a row of the conformance matrix: ``odeint_vjp`` by dopri5.

* ``adjoint``: the continuous adjoint (Algorithm 2);
* ``discrete``: the discrete adjoint, the exact gradient of the computed solution.
"""

from ... import __version__
from ...gradients import odeint_vjp
from . import results

DESCRIPTION = {"adjoint": "odeint_vjp(gradient='adjoint') (dopri5)",
               "discrete": "odeint_vjp(gradient='discrete') (dopri5)"}


def versions():
    return {"refnode": __version__}


def solve(problem, gradient="adjoint"):
    """States and gradients of L = Σ ⟨g_i, z(t_i)⟩ by refnode (refnode verify's callable)."""
    z, vjp = odeint_vjp(problem["f"], problem["z0"], problem["t"], problem["parameters"],
                        method="dopri5", rtol=problem["rtol"], atol=problem["atol"],
                        gradient=gradient)
    dz0, dtheta, dt = vjp(problem["cotangents"])
    return results(z, dz0, dtheta, dt, problem)

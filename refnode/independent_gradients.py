"""Gradients of an independent-steps solve (``batch="independent"``): the VJPs that
:func:`refnode.odeint_vjp` returns. The reverse passes themselves live in
:mod:`refnode.independent_discrete` (``"discrete"``) and
:mod:`refnode.independent_adjoint` (``"adjoint"``).
"""

from .gradients import _VJP
from .independent import SampleTimeDynamics
from .independent_adjoint import adjoint_sweep
from .independent_discrete import discrete_vjp, replay, sample_grid


class IndependentDiscreteVJP(_VJP):
    """vjp(dL_dz) by the reverse of every sample's own recorded steps."""

    def __init__(self, f, tableau, z0, t, theta, sol):
        super().__init__(sol.z.shape, sol.stats)
        self.f, self.tableau, self.t, self.theta = f, tableau, t, theta
        self.grid = sample_grid(t, sol.grid)
        _, self.ys = replay(f, tableau, z0, theta, t, self.grid)

    def __call__(self, dL_dz):
        dz0, dtheta, dt = discrete_vjp(self.f, self.tableau, self.theta, self.t, self.grid,
                                       self.ys, self.check(dL_dz))
        self.backward_stats = dict(n_steps=self.grid.n_steps)
        return dz0, dtheta, dt


class IndependentAdjointVJP(_VJP):
    """vjp(dL_dz) by Algorithm 2 with per-sample reverse steps."""

    def __init__(self, f, t, theta, sol, settings):
        super().__init__(sol.z.shape, sol.stats)
        self.f, self.t, self.theta, self.zs, self.settings = f, t, theta, sol.z, settings

    def __call__(self, dL_dz):
        s = self.settings
        dz0, dtheta, dt, self.backward_stats = adjoint_sweep(
            self.f, s["method"], self.t, self.zs, self.check(dL_dz), self.theta, rtol=s["rtol"],
            atol=s["atol"], seminorm=s["seminorm"], reset=s["reset"])
        return dz0, dtheta, dt


def independent_vjp(f, tableau, z0, t, theta, sol, gradient, settings):
    """``(z, vjp)`` for :func:`refnode.odeint_vjp` with ``batch="independent"``."""
    f = SampleTimeDynamics(f, z0.dtype)
    if gradient == "discrete":
        return sol.z, IndependentDiscreteVJP(f, tableau, z0, t, theta, sol)
    return sol.z, IndependentAdjointVJP(f, t, theta, sol, settings)

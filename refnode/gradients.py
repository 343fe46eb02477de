"""``odeint_vjp``: the states and a function that pulls loss gradients back through them.

Three ways to the same gradient (the public API contract):

* ``"adjoint"`` — the continuous adjoint, Algorithm 2 (:mod:`refnode.adjoint`): O(1)
  memory in the number of steps; its error is controlled by the reverse solve's
  tolerances, so it differs from the discrete gradient by about the solver tolerance;
* ``"discrete"`` — the hand-derived reverse of the recorded steps
  (:mod:`refnode.discrete_adjoint`): the exact gradient of the computed solution;
* ``"autograd"`` — the same replayed steps traced by autograd: an independent oracle
  for ``"discrete"``.

For ``"discrete"`` and ``"autograd"`` the step-size selection is not differentiated:
the grid of step points is held fixed relative to the output times (:mod:`refnode.grid`).
"""

import numpy as np
from autograd import make_vjp

from .adjoint import adjoint_sweep
from .backend import array_module, to_numpy
from .checks import check_state, check_times, check_tolerances
from .discrete_adjoint import discrete_vjp, replay
from .dynamics import as_dynamics
from .errors import InputError
from .grid import adaptive_grid, fixed_step_grid
from .methods import get_method
from .odeint import DEFAULT_ATOL, DEFAULT_RTOL, fixed_grid, solve

#: The gradient methods of :func:`odeint_vjp`.
GRADIENTS = ("adjoint", "discrete", "autograd")


def odeint_vjp(f, z0, t, theta=None, method="dopri5", rtol=DEFAULT_RTOL, atol=DEFAULT_ATOL,
               gradient="adjoint", *, adjoint_method=None, adjoint_rtol=None, adjoint_atol=None,
               seminorm=False, reset=True, step_size=None, n_steps=None, batch="shared",
               **options):
    """Solve dz/dt = f(t, z, theta) and return the states with their VJP.

    Parameters
    ----------
    f, z0, t, theta, method, rtol, atol, step_size, n_steps, **options
        As in :func:`refnode.solve`. ``f`` without a ``.vjp`` gets one from autograd.
    gradient : {"adjoint", "discrete", "autograd"}
    adjoint_method, adjoint_rtol, adjoint_atol
        Method and tolerances of the adjoint's reverse solves (default: the forward's).
    seminorm : bool
        Adjoint only: error control on z and a alone (Kidger et al. 2021).
    reset : bool
        Adjoint only: restart z from the stored forward state at each output time.
    batch : {"shared", "independent"}
        As in :func:`refnode.solve`. "independent" supports "discrete" and "adjoint"
        (see :mod:`refnode.independent_gradients`).

    Returns
    -------
    z : array, shape (N, *z0.shape)
    vjp : callable
        ``vjp(dL_dz) -> (dz0, dtheta, dt)`` with ``dL_dz.shape == z.shape``;
        dz0 like z0, dtheta like theta (None if theta is None), dt of shape (N,).
        ``vjp.forward_stats`` and, after a call, ``vjp.backward_stats`` hold the NFE
        and step counts.
    """
    if gradient not in GRADIENTS:
        raise InputError(f"unknown gradient {gradient!r}; choose one of {', '.join(GRADIENTS)}.")
    f = as_dynamics(f)
    t_checked, _ = check_times(t)
    if len(t_checked) < 2:
        raise InputError("odeint_vjp needs at least two times (an initial and a final one).")
    z0 = check_state(z0)
    if batch == "independent" and gradient == "autograd":
        raise InputError("gradient='autograd' replays one shared step grid; with "
                         "batch='independent' use gradient='discrete' or 'adjoint'.")
    tableau = get_method(method)
    settings = dict(method=get_method(adjoint_method or method),         # the reverse solves
                    rtol=rtol if adjoint_rtol is None else adjoint_rtol,
                    atol=atol if adjoint_atol is None else adjoint_atol,
                    seminorm=seminorm, reset=reset, step_size=step_size, n_steps=n_steps)
    check_tolerances(settings["rtol"], settings["atol"], z0)
    sol = solve(f, z0, t_checked, theta, method=method, rtol=rtol, atol=atol,
                step_size=step_size, n_steps=n_steps, batch=batch,
                keep_grid=gradient != "adjoint", **options)
    if batch == "independent":
        from .independent_gradients import independent_vjp
        return independent_vjp(f, tableau, z0, t_checked, theta, sol, gradient, settings)
    if gradient == "adjoint":
        return sol.z, AdjointVJP(f, t_checked, sol, theta, settings)
    if step_size is not None or n_steps is not None:
        grid = fixed_step_grid(fixed_grid(t_checked, step_size, n_steps))
    else:
        grid = adaptive_grid(t_checked, sol.grid)
    if gradient == "discrete":
        return sol.z, DiscreteVJP(f, tableau, z0, t_checked, theta, grid, sol.stats)
    return autograd_vjp(f, tableau, z0, t_checked, theta, grid, sol.stats)


class _VJP:
    """Shared checks of a VJP closure: the cotangent must match the states' shape."""

    def __init__(self, z_shape, forward_stats):
        self.z_shape = tuple(z_shape)
        self.forward_stats = forward_stats
        self.backward_stats = None

    def check(self, dL_dz):
        if tuple(getattr(dL_dz, "shape", ())) != self.z_shape:
            raise InputError(f"dL_dz has shape {getattr(dL_dz, 'shape', None)}; it must match "
                             f"the states' shape {self.z_shape} (one cotangent per output time).")
        xp = array_module(dL_dz)
        if not bool(to_numpy(xp.all(xp.isfinite(dL_dz)))):
            raise InputError("dL_dz has non-finite entries.")
        return dL_dz


class AdjointVJP(_VJP):
    """vjp(dL_dz) by the continuous adjoint (Algorithm 2)."""

    def __init__(self, f, t, sol, theta, settings):
        super().__init__(sol.z.shape, sol.stats)
        self.f, self.t, self.zs, self.theta, self.settings = f, t, sol.z, theta, settings

    def __call__(self, dL_dz):
        s = self.settings
        dz0, dtheta, dt, stats = adjoint_sweep(
            self.f, s["method"], self.t, self.zs, self.check(dL_dz), self.theta, rtol=s["rtol"],
            atol=s["atol"], seminorm=s["seminorm"], reset=s["reset"], step_size=s["step_size"],
            n_steps=s["n_steps"])
        self.backward_stats = stats
        return dz0, dtheta, dt


class DiscreteVJP(_VJP):
    """vjp(dL_dz) by the hand-derived reverse of the recorded steps."""

    def __init__(self, f, tableau, z0, t, theta, grid, forward_stats):
        self.f, self.tableau, self.t, self.theta, self.grid = f, tableau, t, theta, grid
        z, self.ys = replay(f, tableau, z0, theta, t, grid, keep_states=True)
        super().__init__(z.shape, forward_stats)

    def __call__(self, dL_dz):
        dz0, dtheta, dt = discrete_vjp(self.f, self.tableau, self.theta, self.t, self.grid,
                                       self.ys, self.check(dL_dz))
        self.backward_stats = dict(n_steps=self.grid.n_steps)
        return dz0, dtheta, dt


def autograd_vjp(f, tableau, z0, t, theta, grid, forward_stats):
    """The oracle: autograd traces :func:`refnode.discrete_adjoint.replay`."""
    if theta is None:
        fun = lambda args: replay(f, tableau, args[0], None, args[1], grid)[0]
        vjp_fn, z = make_vjp(fun)((z0, t))
        pullback = lambda g: (lambda dz0, dt: (dz0, None, np.asarray(dt)))(*vjp_fn(g))
    else:
        fun = lambda args: replay(f, tableau, args[0], args[1], args[2], grid)[0]
        vjp_fn, z = make_vjp(fun)((z0, theta, t))
        pullback = lambda g: (lambda dz0, dth, dt: (dz0, dth, np.asarray(dt)))(*vjp_fn(g))
    vjp = AutogradVJP(z.shape, forward_stats, pullback)
    return z, vjp


class AutogradVJP(_VJP):
    """vjp(dL_dz) by autograd through the replayed solver."""

    def __init__(self, z_shape, forward_stats, pullback):
        super().__init__(z_shape, forward_stats)
        self.pullback = pullback

    def __call__(self, dL_dz):
        return self.pullback(self.check(dL_dz))

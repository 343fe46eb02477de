"""``odeint_vjp``: the states and a function that pulls loss gradients back through them.

Three ways to the same gradient (the public API contract):

* ``"adjoint"`` (or ``Adjoint(...)`` with its settings) — the continuous adjoint,
  Algorithm 2 (:mod:`refnode.adjoint`): O(1) memory in the number of steps; its error is
  controlled by the reverse solve's tolerances, so it differs from the discrete gradient
  by about the solver tolerance;
* ``"discrete"`` — the hand-derived reverse of the recorded steps
  (:mod:`refnode.discrete_adjoint`): the exact gradient of the computed solution;
* ``"autograd"`` — the same replayed steps traced by autograd: an independent oracle
  for ``"discrete"``.

For ``"discrete"`` and ``"autograd"`` the step-size selection is not differentiated:
the grid of step points is held fixed relative to the output times (:mod:`refnode.grid`).
That makes them the exact gradient of the *computed* map z0 ↦ z(t), which is a gradient
of the ODE's flow only as far as the steps resolve the perturbed solutions too. Error
control watches the solution, not its sensitivities: where a direction that the loss
sees is invisible to the error estimate (docs/design.md, "when the discrete gradient is
a gradient of the ODE"), the discrete gradient can be off by far more than rtol while the
adjoint, which controls the error of a(t) itself, is right.
"""

import numpy as np
from autograd import make_vjp

from .adjoint import adjoint_sweep, adjoint_sweep_per_sample
from .backend import array_module, to_numpy
from .checks import check_theta_differentiable, check_tolerances
from .discrete_adjoint import discrete_vjp, replay
from .drivers import fixed_grid
from .dynamics import AutogradDynamics, as_dynamics, check_vjp_output
from .errors import InputError, NonFiniteStateError
from .grid import adaptive_grid, fixed_step_grid
from .independent import SampleTimeDynamics
from .odeint import check_solve, solve_checked
from .options import Adjoint
from .params import as_plain, copy_tree, like, tree_leaves

#: The gradient methods of :func:`odeint_vjp` by name (``Adjoint(...)`` is the fourth form).
GRADIENTS = ("adjoint", "discrete", "autograd")


def odeint_vjp(f, z0, t, theta=None, method="dopri5", rtol=None, atol=None,
               gradient="adjoint", *, step_size=None, n_steps=None, control=None,
               batch="shared"):
    """Solve dz/dt = f(t, z, theta) and return the states with their VJP.

    Parameters
    ----------
    f, z0, t, theta, method, rtol, atol, step_size, n_steps, control, batch
        As in :func:`refnode.solve`. ``f`` without a ``.vjp`` gets one from autograd.
        ``t`` needs at least two times.
    gradient : {"adjoint", "discrete", "autograd"} or Adjoint
        ``Adjoint(method=, rtol=, atol=, seminorm=, reset=, max_steps=, ...)`` sets the
        reverse solve of the continuous adjoint; ``"adjoint"`` is ``Adjoint()``: the
        forward's method, tolerances and step limit. ``batch="independent"`` supports
        ``"discrete"`` and the adjoint.

    Returns
    -------
    z : array, shape (N, *z0.shape)
        A new array: the closure keeps its own copies of z, z0, t and theta, so writing
        into ``z`` or into the inputs after the call does not change the gradient.
    vjp : callable
        ``vjp(dL_dz) -> (dz0, dtheta, dt)`` with ``dL_dz.shape == z.shape``;
        dz0 like z0, dtheta like theta (None if theta is None), dt of shape (N,).
        ``vjp.forward_stats`` and, after a call, ``vjp.backward_stats`` hold the NFE
        and step counts.

    Notes
    -----
    When is the discrete gradient a gradient of the ODE? It is always the exact
    gradient of the computed solution. It approaches the ODE's gradient as the steps
    resolve every perturbed trajectory the loss sees, which error control guarantees
    only for directions that move the solution itself. A fixed grid refined at the
    method's order, or a check against the adjoint at two tolerances, tells; the
    worked example ``A = [[1, 0], [0, 0]]``, ``z0 = [0, 1]`` is in tutorial 05.
    """
    adjoint = as_gradient(gradient)
    problem = check_solve(as_dynamics(f), z0, t, theta, method, rtol, atol, step_size,
                          n_steps, control, False, batch)
    adjoint = check_gradient(problem, gradient, adjoint)
    problem = problem._replace(theta=copy_tree(theta))   # the closure's own copy
    sol = solve_checked(problem, keep_states=gradient == "discrete")
    return sol.z, gradient_closure(problem, sol, gradient, adjoint)


def check_gradient(problem, gradient, adjoint):
    """What only a gradient needs, checked before the forward solve: the resolved Adjoint."""
    check_theta_differentiable(problem.theta)
    if len(problem.t) < 2:
        raise InputError("odeint_vjp needs at least two times (an initial and a final one).")
    if problem.batch == "independent" and gradient == "autograd":
        raise InputError("gradient='autograd' replays one shared step grid; with "
                         "batch='independent' use gradient='discrete' or 'adjoint'.")
    if adjoint is None:
        return None
    p = problem
    return check_adjoint(adjoint.resolved(p.tableau, p.rtol, p.atol, p.step_size, p.n_steps,
                                          p.control.max_steps), adjoint, p.z0, p.batch)


def gradient_closure(p, sol, gradient, adjoint):
    """The VJP closure of a checked problem and its forward solution."""
    f = SampleTimeDynamics(p.f, p.z0.dtype) if p.batch == "independent" else p.f
    if adjoint is not None:
        return AdjointVJP(f, p.t, sol, p.theta, adjoint, p.batch == "independent")
    if p.fixed:
        grid = fixed_step_grid(fixed_grid(p.t, p.step_size, p.n_steps))
    else:
        grid = adaptive_grid(p.t, sol.grid)
    if gradient == "discrete":
        return DiscreteVJP(f, p.tableau, p.z0, p.t, p.theta, grid, sol)
    return AutogradVJP(f, p.tableau, p.z0, p.t, p.theta, grid, sol.stats)


def as_gradient(gradient):
    """An :class:`Adjoint` for the continuous adjoint, None for the other two methods."""
    if isinstance(gradient, Adjoint):
        return gradient
    if not isinstance(gradient, str) or gradient not in GRADIENTS:
        raise InputError(f"unknown gradient {gradient!r}; choose one of {', '.join(GRADIENTS)} "
                         "or pass refnode.Adjoint(...).")
    return Adjoint() if gradient == "adjoint" else None


def check_adjoint(resolved, given, z0, batch):
    """The resolved adjoint settings, checked before the forward solve does any work.

    Tolerances the caller gave the Adjoint are checked against the state here; those
    taken from the forward solve were checked with it.
    """
    fixed = resolved.step_size is not None or resolved.n_steps is not None
    if given.rtol is not None or given.atol is not None:
        if fixed:
            raise InputError("Adjoint(rtol=..., atol=...) control the step size of an adaptive "
                             "reverse solve; this one runs on a fixed grid (the forward's, or "
                             "the Adjoint's step_size/n_steps): drop the tolerances, or the grid.")
        check_tolerances(resolved.rtol, resolved.atol, z0)
    if not fixed and not resolved.method.adaptive:
        raise InputError(f"the adjoint's method {resolved.method.name!r} has no error estimate: "
                         "give the reverse solve a grid, Adjoint(step_size=...) or "
                         "Adjoint(n_steps=...), or use an adaptive method.")
    if fixed and batch == "independent":
        raise InputError("batch='independent' chooses reverse steps per sample: the adjoint "
                         "needs an adaptive method without step_size/n_steps.")
    return resolved


class _VJP:
    """Shared checks of a VJP closure: the cotangent must match the states' shape."""

    def __init__(self, z_shape, z_dtype, forward_stats):
        self.z_shape, self.z_dtype = tuple(z_shape), z_dtype
        self.forward_stats = forward_stats
        self.backward_stats = None

    @staticmethod
    def finite(dz0, dtheta, dt):
        """The gradients, after checking they are finite (a VJP may return NaN mid-way)."""
        xp = array_module(dz0)
        leaves = [dz0] + ([] if dtheta is None else tree_leaves(dtheta))
        finite = xp.stack([xp.all(xp.isfinite(xp.asarray(leaf))) for leaf in leaves])
        if not (bool(to_numpy(xp.all(finite))) and np.all(np.isfinite(dt))):   # one host sync
            raise NonFiniteStateError("the gradient became non-finite (NaN or inf) in the "
                                      "reverse pass: f.vjp returned non-finite values at "
                                      "some step. Check the VJP (and the forward solve's "
                                      "stats) for overflow.")
        return dz0, dtheta, dt

    def check(self, dL_dz):
        if not hasattr(dL_dz, "shape") or tuple(dL_dz.shape) != self.z_shape:
            raise InputError(f"dL_dz has shape {getattr(dL_dz, 'shape', type(dL_dz).__name__)}; "
                             f"it must match the states' shape {self.z_shape} (one cotangent per "
                             "output time).")
        kind = getattr(getattr(dL_dz, "dtype", None), "kind", None)
        if kind not in ("f", "i", "u", "b"):
            raise InputError(f"dL_dz must be a real array; got dtype {dL_dz.dtype}. Complex "
                             "cotangents are not supported: pass the real and imaginary parts "
                             "as two calls.")
        xp = array_module(dL_dz)
        if kind != "f":
            dL_dz = xp.asarray(dL_dz, dtype=self.z_dtype)
        if not bool(to_numpy(xp.all(xp.isfinite(dL_dz)))):
            raise InputError("dL_dz has non-finite entries.")
        return dL_dz


class AdjointVJP(_VJP):
    """vjp(dL_dz) by the continuous adjoint (Algorithm 2)."""

    def __init__(self, f, t, sol, theta, settings, per_sample=False):
        super().__init__(sol.z.shape, sol.z.dtype, sol.stats)
        self.f, self.t, self.theta, self.settings = f, t, theta, settings
        self.zs = copy_tree(sol.z)          # the caller gets sol.z and may write into it
        self.per_sample = per_sample

    def __call__(self, dL_dz):
        g = self.check(dL_dz)           # f's first VJP is checked as it comes (CheckedDynamics)
        sweep = adjoint_sweep_per_sample if self.per_sample else adjoint_sweep
        dz0, dtheta, dt, stats = sweep(self.f, self.t, self.zs, g, self.theta, self.settings)
        self.backward_stats = stats
        return self.finite(dz0, dtheta, dt)


class DiscreteVJP(_VJP):
    """vjp(dL_dz) by the hand-derived reverse of the recorded steps.

    The reverse pass starts from the state at every step point: the forward solve's own
    (``sol.states``: the shared drivers keep them, so nothing is evaluated twice), or, per
    sample, those of a replay of the grid (:func:`refnode.discrete_adjoint.replay`). Each
    step is reversed between the grid's points τ_n (:mod:`refnode.grid`), which equal the
    forward's step times up to rounding (a fixed grid's t_i + j·h, an adaptive step's
    t_n + h); the gradient is the computed solution's, to that rounding.
    """

    def __init__(self, f, tableau, z0, t, theta, grid, sol):
        self.f, self.tableau, self.t, self.theta, self.grid = f, tableau, t, theta, grid
        if sol.states is not None:
            self.zs, self.ys = copy_tree(sol.z), sol.states
        else:
            self.zs, self.ys = replay(f, tableau, z0, theta, t, grid, keep_states=True)
        super().__init__(self.zs.shape, self.zs.dtype, sol.stats)

    def __call__(self, dL_dz):
        g = self.check(dL_dz)           # f's first VJP is checked as it comes (CheckedDynamics)
        dz0, dtheta, dt, nfe = discrete_vjp(self.f, self.tableau, self.theta, self.t,
                                            self.grid, self.ys, g)
        self.backward_stats = dict(n_steps=self.grid.n_steps, nfe=nfe)
        return self.finite(dz0, dtheta, dt)


class AutogradVJP(_VJP):
    """vjp(dL_dz) by autograd tracing :func:`refnode.discrete_adjoint.replay` (the oracle).

    autograd differentiates f's own operations, so a hand-written ``f.vjp`` is never
    called: before the first pullback, one VJP of f by autograd at the last output time
    is checked instead (an infinite derivative is refused as on the other routes), and
    the oracle answers for dynamics whose hand VJP is wrong, which is what one checks a
    hand VJP against. The traced times are float64, so the states are cast back to z0's
    dtype (a float32 state stays float32, as in the other two gradients).
    """

    def __init__(self, f, tableau, z0, t, theta, grid, forward_stats):
        self.f, self.tableau, self.grid, self.dtype = f, tableau, grid, z0.dtype
        self.t, self.theta, self.has_theta = t, theta, theta is not None
        args = (z0, as_plain(theta), t) if self.has_theta else (z0, t)
        self.pullback, self.zs = make_vjp(self.replayed)(args)
        super().__init__(self.zs.shape, z0.dtype, forward_stats)
        self.probed = False

    def replayed(self, args):
        z0, theta, t = ((args[0], like(self.theta, args[1]), args[2]) if self.has_theta
                        else (args[0], None, args[1]))
        return replay(self.f, self.tableau, z0, theta, t, self.grid)[0].astype(self.dtype)

    def __call__(self, dL_dz):
        g = self.check(dL_dz)
        if not self.probed:
            check_vjp_output(AutogradDynamics(self.f), float(self.t[-1]), self.zs[-1],
                             self.theta, g[-1])
            self.probed = True
        cotangents = self.pullback(g)
        dz0, dtheta, dt = ((cotangents[0], like(self.theta, cotangents[1]), cotangents[2])
                           if self.has_theta else (cotangents[0], None, cotangents[1]))
        return self.finite(dz0, dtheta, np.asarray(dt))

"""The spiral demo of the paper's reference code, as plain functions (``refnode demo``).

The problem (torchdiffeq ``examples/ode_demo.py``): the cubic spiral

    dz/dt = z³ A,   A = [[-0.1, 2], [-2, -0.1]],   z(0) = [2, 0],   t in [0, 25],

sampled at 1000 equally spaced times. Three parts, each a function here and a section of
:mod:`refnode.commands.demo` that prints and plots it:

1. :func:`compare_solvers` — every Runge–Kutta method on the true spiral, against a tight
   dop853 reference;
2. :func:`train` — a neural ODE ``dz/dt = MLP(z³)`` (2 → 50 → 2, tanh) fitted to random
   windows of the true trajectory, gradients by the adjoint (Algorithm 2);
3. :func:`check_gradient` — the gradient of the first training step four ways: adjoint,
   discrete adjoint, autograd through the solver, central finite differences.
"""

import time

import numpy as np

from .backend import array_module, to_float
from .discrete_adjoint import replay
from .experiments.common import train as train_loop
from .gradients import odeint_vjp
from .grid import adaptive_grid
from .methods import METHODS, get_method
from .nn import Cube, mlp_dynamics
from .odeint import solve
from .optim import Adam, step_schedule
from .params import flatten
from .testing import central_difference, compare_gradients

# -- the problem (torchdiffeq examples/ode_demo.py) ------------------------------------
SPIRAL_A = np.array([[-0.1, 2.0], [-2.0, -0.1]])
SPIRAL_Z0 = np.array([2.0, 0.0])
T_END = 25.0
N_POINTS = 1000
#: Tolerances of the reference solution every method is measured against.
REFERENCE_TOL = 1e-12
#: Fixed-step methods take this many equal steps per output interval (h = 25/999/3).
FIXED_STEPS_PER_INTERVAL = 3
#: Tolerances of the adaptive methods in the solver table, and of training.
SOLVER_RTOL, SOLVER_ATOL = 1e-6, 1e-8

# -- training (ode_demo.py: batch_time 10, batch_size 20; its RMSprop lr 1e-3 is replaced
#    by Adam with a step decay, which fits in fewer iterations) -------------------------
BATCH_TIME = 10
BATCH_SIZE = 20
LEARNING_RATE = 0.01
#: The learning rate is divided by 10 after this fraction of the iterations.
DECAY_AT = 0.7

# -- agreement required of each gradient with the discrete adjoint (docs/design.md §3) --
#: autograd traces the very same steps: only rounding differs.
AUTOGRAD_RTOL = 1e-10
#: central differences, step FD_EPS: truncation O(eps²) plus rounding O(u/eps).
FD_RTOL, FD_EPS = 1e-6, 1e-6
#: the continuous adjoint solves its own reverse ODE, each step's error held below
#: atol + rtol·|value|; its gap to the discrete gradient is of that order, so allow
#: ADJOINT_FACTOR × (SOLVER_ATOL + SOLVER_RTOL·max|gradient|).
ADJOINT_FACTOR = 100
#: absolute floor of the other comparisons (gradients here are of order 1e-3 to 1).
GRADIENT_ATOL = 1e-12


def spiral(t, z, theta=None):
    """The true dynamics dz/dt = z³ A; z of shape (..., 2)."""
    return (z ** 3) @ SPIRAL_A


def spiral_times(n_points=N_POINTS):
    """The observation times: shape (n_points,), equally spaced on [0, T_END]."""
    return np.linspace(0.0, T_END, n_points)


def reference_solution(t):
    """The spiral at the times t by dop853 at rtol = atol = 1e-12: shape (len(t), 2)."""
    return solve(spiral, SPIRAL_Z0, t, method="dop853", rtol=REFERENCE_TOL,
                 atol=REFERENCE_TOL).z


def compare_solvers(t, z_ref, methods=tuple(METHODS)):
    """Solve the spiral with each method; one row per method.

    Returns
    -------
    list of dict
        ``method, order, adaptive, nfe, n_accepted, n_rejected, max_error, seconds, z``
        with z of shape (len(t), 2).
    """
    rows = []
    for name in methods:
        tableau = get_method(name)
        options = (dict(rtol=SOLVER_RTOL, atol=SOLVER_ATOL) if tableau.adaptive
                   else dict(n_steps=FIXED_STEPS_PER_INTERVAL))
        start = time.perf_counter()
        sol = solve(spiral, SPIRAL_Z0, t, method=name, **options)
        seconds = time.perf_counter() - start
        rows.append(dict(method=name, order=tableau.order, adaptive=tableau.adaptive,
                         nfe=sol.stats["nfe"], n_accepted=sol.stats["n_accepted"],
                         n_rejected=sol.stats["n_rejected"], seconds=seconds,
                         max_error=float(np.max(np.abs(sol.z - z_ref))), z=sol.z))
    return rows


def make_model(rng):
    """The learned dynamics f(t, z) = MLP(z³), 2 → 50 → 2 with tanh, and its parameters."""
    f = mlp_dynamics((2, 50, 2), "tanh", input_layer=Cube())
    return f, f.init(rng)


def sample_windows(rng, t, z_true, batch_time=BATCH_TIME, batch_size=BATCH_SIZE):
    """Random windows of the true trajectory (ode_demo.py's ``get_batch``).

    Returns
    -------
    z0 : array, shape (batch_size, 2)
        The start of each window (on z_true's device; the starts are drawn on the host).
    t_window : ndarray, shape (batch_time,)
        t[0] .. t[batch_time - 1]: the dynamics are autonomous, so every window starts at 0.
    z_window : ndarray, shape (batch_time, batch_size, 2)
    """
    xp = array_module(z_true)
    starts = xp.asarray(rng.choice(len(t) - batch_time, size=batch_size, replace=False))
    z_window = xp.stack([z_true[starts + i] for i in range(batch_time)])
    return z_window[0], t[:batch_time], z_window


def window_loss(z, z_window):
    """Mean squared error and its gradient: L = mean((z - z_window)²), dL/dz = 2 r / r.size.

    Parameters
    ----------
    z, z_window : ndarray, shape (batch_time, batch_size, 2)
    """
    r = z - z_window
    return to_float(array_module(r).mean(r * r)), 2.0 * r / r.size


def loss_and_gradient(f, theta, batch, gradient="adjoint"):
    """L and (dL/dz0, dL/dθ) for one batch; also the forward and backward NFE."""
    z0, t_window, z_window = batch
    z, vjp = odeint_vjp(f, z0, t_window, theta, rtol=SOLVER_RTOL, atol=SOLVER_ATOL,
                        gradient=gradient)
    loss, dL_dz = window_loss(z, z_window)
    dz0, dtheta, _ = vjp(dL_dz)
    nfe_backward = (vjp.backward_stats or {}).get("nfe")
    return loss, {"z0": dz0, "theta": dtheta}, (vjp.forward_stats["nfe"], nfe_backward)


def finite_difference_gradient(f, theta, batch, eps=FD_EPS):
    """dL/d(z0, θ) by central differences, one coordinate at a time.

    The step points of the forward solve are held fixed (``replay`` on its grid), so this
    differentiates the same computed solution as the discrete adjoint; otherwise the
    step-size controller would make L piecewise smooth in (z0, θ).
    """
    z0, t_window, z_window = batch
    tableau = get_method("dopri5")
    sol = solve(f, z0, t_window, theta, method=tableau, rtol=SOLVER_RTOL, atol=SOLVER_ATOL)
    grid = adaptive_grid(t_window, sol.grid)

    def loss(args):
        z = replay(f, tableau, args["z0"], args["theta"], t_window, grid)[0]
        return window_loss(z, z_window)[0]

    point = {"z0": z0, "theta": theta}
    vector, unflatten = flatten(point)
    derivatives = [central_difference(loss, point, unflatten(np.eye(1, vector.size, i)[0]), eps)
                   for i in range(vector.size)]
    return unflatten(np.array(derivatives))


def check_gradient(f, theta, batch):
    """The gradient of one training step four ways, each compared with the discrete adjoint.

    Returns
    -------
    list of (GradientTable, str)
        One table per method (autograd, finite differences, adjoint) with a line saying why
        its tolerance is what it is; every table passes when the gradients agree.
    """
    grads = {name: loss_and_gradient(f, theta, batch, name)[1]
             for name in ("discrete", "autograd", "adjoint")}
    grads["finite differences"] = finite_difference_gradient(f, theta, batch)
    checks = [("autograd", AUTOGRAD_RTOL, GRADIENT_ATOL,
               "autograd traces the same steps: only rounding may differ"),
              ("finite differences", FD_RTOL, GRADIENT_ATOL, f"central differences, eps = "
               f"{FD_EPS:g}, on the loss with the step points held fixed"),
              ("adjoint", ADJOINT_FACTOR * SOLVER_RTOL, ADJOINT_FACTOR * SOLVER_ATOL,
               f"the continuous adjoint solves its own reverse ODE at rtol = {SOLVER_RTOL:g}, "
               f"atol = {SOLVER_ATOL:g}: allow {ADJOINT_FACTOR} x those")]
    return [(compare_gradients({"discrete": grads["discrete"], name: grads[name]},
                               reference="discrete", rtol=rtol, atol=atol), why)
            for name, rtol, atol, why in checks]


def train(f, theta, t, z_true, rng, iterations, show_progress=True):
    """Fit θ to random windows of z_true with Adam, gradients by the adjoint.

    Returns
    -------
    theta : the trained parameters
    history : dict of lists ``loss``, ``nfe_forward``, ``nfe_backward``, ``seconds`` per
        iteration (:func:`refnode.experiments.common.train`)
    """
    def step(theta, iteration, rng):
        batch = sample_windows(rng, t, z_true)
        loss, grads, (nfe_f, nfe_b) = loss_and_gradient(f, theta, batch, "adjoint")
        return loss, grads["theta"], {"nfe_forward": nfe_f, "nfe_backward": nfe_b}

    schedule = step_schedule(LEARNING_RATE, [DECAY_AT * iterations], 0.1)
    return train_loop(step, theta, Adam(LEARNING_RATE), iterations, schedule=schedule, rng=rng,
                      desc="training", show_progress=show_progress)


def predict(f, theta, t):
    """The learned trajectory from SPIRAL_Z0 at the times t: shape (len(t), 2), on θ's
    device."""
    z0 = array_module(theta).asarray(SPIRAL_Z0)
    return solve(f, z0, t, theta, rtol=SOLVER_RTOL, atol=SOLVER_ATOL).z

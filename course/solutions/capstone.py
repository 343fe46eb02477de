"""Assignment 06's reference solution: the spiral fitted with your own solver (assignment
01's ``rk_step``) and your own adjoint (assignment 04's ``adjoint_sweep``).

Here they are refnode's own ``rk_step`` and ``adjoint_sweep``; in the student's template
they are loaded from the handout's ``01_rk_step/student.py`` and ``04_adjoint/student.py``.
The sweep's reverse solves are refnode's fixed-grid RK4 driver
(``Adjoint(method="rk4", step_size=max_step)``: ⌈|Δt| / max_step⌉ equal steps per interval);
the forward solves are :func:`rk_solve` with the student's rk_step.
"""

import math

import numpy as np

from refnode.demo import make_model, reference_solution, sample_windows, spiral_times, window_loss
from refnode.methods import METHODS
from refnode.optim import Adam
from refnode.adjoint import adjoint_sweep
from refnode.options import Adjoint
from refnode.params import flatten
from refnode.rk_step import rk_step

#: RK4 steps of at most this length.
MAX_STEP = 0.01


def rk_solve(f, y, t_start, t_end, theta, max_step=MAX_STEP):
    """y(t_end) by n = ⌈|t_end − t_start| / max_step⌉ equal steps of RK4 with your rk_step.

    The step h = (t_end − t_start) / n is negative when t_end < t_start: the solve runs
    backwards in time (as a reverse solve needs). Each step is
    ``rk_step(f, METHODS["rk4"], t, y, h, theta, f(t, y, theta))[0]`` at t = t_start + j h.

    Parameters
    ----------
    f : callable ``f(t, y, theta)``
    y : ndarray, shape (D,)
    t_start, t_end : float
    theta : passed to f
    max_step : float

    Returns
    -------
    ndarray, shape (D,)
    """
    n = max(1, math.ceil(abs(t_end - t_start) / max_step))
    h = (t_end - t_start) / n
    for j in range(n):
        t = t_start + j * h
        y = rk_step(f, METHODS["rk4"], t, y, h, theta, f(t, y, theta))[0]
    return y


def odeint(f, z0, t, theta, max_step=MAX_STEP):
    """The states z(t_i) at every time of ``t``, by :func:`rk_solve` interval by interval.

    Parameters
    ----------
    f, theta : as in :func:`rk_solve`
    z0 : ndarray, shape (D,)
    t : ndarray, shape (N,)
    max_step : float

    Returns
    -------
    ndarray, shape (N, D); the first row is z0
    """
    zs = [np.asarray(z0, dtype=float)]
    for i in range(1, len(t)):
        zs.append(rk_solve(f, zs[-1], t[i - 1], t[i], theta, max_step))
    return np.array(zs)


def flat_dynamics(f, vjp, shape, unflatten):
    """The dynamics ``f`` on flat arrays, for your solver and your adjoint.

    Returns ``F(t, z, theta)`` with z flat (D,) and θ flat (P,): it reshapes z to
    ``shape``, rebuilds the parameters with ``unflatten(theta)`` (from
    ``refnode.params.flatten``) and returns f flattened; and ``F.vjp(t, z, theta, a)``
    returning (aᵀ∂f/∂z (D,), aᵀ∂f/∂θ (P,) flattened in the order of ``flatten``,
    aᵀ∂f/∂t a float) from ``vjp(t, z, theta, a)`` on the shaped arrays.

    Parameters
    ----------
    f : callable ``f(t, z, theta)`` on shaped z and a parameter tree
    vjp : callable ``vjp(t, z, theta, a) -> (a_z, a_theta, a_t)``
    shape : tuple, the shape of z (e.g. (B, D))
    unflatten : callable, flat θ -> the parameter tree

    Returns
    -------
    F : callable with an attribute ``vjp``
    """
    def F(t, z, theta):
        return np.ravel(f(t, np.reshape(z, shape), unflatten(theta)))

    def F_vjp(t, z, theta, a):
        a_z, a_theta, a_t = vjp(t, np.reshape(z, shape), unflatten(theta), np.reshape(a, shape))
        return np.ravel(a_z), flatten(a_theta)[0], float(np.sum(a_t))

    F.vjp = F_vjp
    return F


def verify_solve(problem):
    """``refnode verify --callable student:verify_solve``: your solver and adjoint on one
    reference problem (``refnode.verify.problem_dict`` says what ``problem`` holds).

    Solve with :func:`odeint`, pull the cotangents back with your ``adjoint_sweep``
    (its reverse solves: ``Adjoint(method="rk4", step_size=MAX_STEP)``), on flat arrays
    (:func:`flat_dynamics`).

    Returns
    -------
    dict
        ``{"states": (N, *z0.shape), "gradients": {"z0": like z0, "theta": {name: array},
        "t": (N,)}}``
    """
    theta, unflatten = flatten(problem["parameters"])
    z0, t = problem["z0"], problem["t"]
    F = flat_dynamics(problem["f"], problem["vjp"], z0.shape, unflatten)
    zs = odeint(F, z0.ravel(), t, theta)
    g = problem["cotangents"].reshape(len(t), -1)
    dz0, dtheta, dt, _ = adjoint_sweep(F, t, zs, g, theta, Adjoint(method="rk4", step_size=MAX_STEP))
    return {"states": zs.reshape((len(t),) + z0.shape),
            "gradients": {"z0": dz0.reshape(z0.shape), "theta": unflatten(dtheta), "t": dt}}


def train_spiral(iterations=150, seed=0, max_step=0.025):
    """Fit the paper's spiral demo with your solver and your adjoint.

    The model is ``refnode.demo.make_model`` (f = MLP(z³), 2 → 50 → 2, tanh), initialised
    from ``rng = np.random.default_rng(seed)``; each iteration draws a batch of windows
    ``sample_windows(rng, t, z_true)`` of the true trajectory
    (``t = spiral_times()``, ``z_true = reference_solution(t)``), solves it with
    :func:`odeint` (steps of ``max_step``), takes ``window_loss`` (the mean squared
    error and its gradient), pulls it back with ``adjoint_sweep`` and takes a step of
    ``Adam(lr=0.01)`` on the flat θ. Deterministic for a given seed.

    Returns
    -------
    f : the model's dynamics
    theta : its trained parameters (a tree, as ``make_model`` returned them)
    losses : list of float, the loss of every iteration
    """
    rng = np.random.default_rng(seed)
    t_all = spiral_times()
    z_true = reference_solution(t_all)
    f, theta_tree = make_model(rng)
    theta, unflatten = flatten(theta_tree)
    adam = Adam(lr=0.01)
    state, losses = adam.init(theta), []
    for _ in range(iterations):
        z0, t, z_window = sample_windows(rng, t_all, z_true)
        F = flat_dynamics(f, f.vjp, z0.shape, unflatten)
        zs = odeint(F, z0.ravel(), t, theta, max_step)
        loss, g = window_loss(zs.reshape(z_window.shape), z_window)
        dtheta = adjoint_sweep(F, t, zs, g.reshape(len(t), -1), theta, Adjoint(method="rk4", step_size=max_step))[1]
        theta, state = adam.update(theta, dtheta, state)
        losses.append(loss)
    return f, unflatten(theta), losses

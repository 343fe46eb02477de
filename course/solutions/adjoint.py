"""Assignment 04's reference solution: Algorithm 2 of Chen et al. (2018) on flat arrays.

The grading tests check it against ``refnode.odeint_vjp(gradient="adjoint")`` and
``gradient="discrete"`` (refnode's own sweep, :mod:`refnode.adjoint`, does the same for
batches, parameter trees, devices and step control).
"""

import numpy as np


def augmented_dynamics(f, t, s, theta):
    """Algorithm 2's ``aug_dynamics``: the time derivative of s = [z, a, a_θ, a_t].

    With the adjoint a(t) = ∂L/∂z(t) (paper eqs. (4), (5) and Appendix B)::

        d/dt [z, a, a_θ, a_t] = [f(t, z, θ),  −aᵀ ∂f/∂z,  −aᵀ ∂f/∂θ,  −aᵀ ∂f/∂t]

    aᵀ ∂f/∂z is the row vector a times the Jacobian (the vector-Jacobian product, Jᵀa as
    a column), not ∂f/∂z a. All four come from one call of ``f.vjp``.

    Parameters
    ----------
    f : callable
        ``f(t, z, theta) -> dz/dt``, shape (D,), with
        ``f.vjp(t, z, theta, a) -> (aᵀ∂f/∂z (D,), aᵀ∂f/∂θ (P,), aᵀ∂f/∂t (scalar))``.
    t : float
    s : ndarray, shape (2D + P + 1,)
        The augmented state, concatenated: z (D,), a (D,), a_θ (P,), a_t (1,).
    theta : ndarray, shape (P,)

    Returns
    -------
    ds/dt : ndarray, shape (2D + P + 1,)
    """
    D = (len(s) - len(theta) - 1) // 2
    z, a = s[:D], s[D:2 * D]
    a_z, a_theta, a_t = f.vjp(t, z, theta, a)
    return np.concatenate([f(t, z, theta), -a_z, -a_theta, [-a_t]])


def adjoint_sweep(f, theta, t, zs, g, solve):
    """The reverse sweep of Algorithm 2 over observation times t_0 < t_1 < … < t_N.

    The loss L(z(t_0), …, z(t_N)) has the direct gradients g_i = ∂L/∂z(t_i). Start at
    the last time with

        s = [z(t_N), g_N, 0, −∂L/∂t_N],      ∂L/∂t_N = g_Nᵀ f(t_N, z(t_N), θ),

    and solve ds/dt = augmented_dynamics **backwards**, interval by interval, from t_N
    down to t_0. Arriving at each earlier observation time t_i (i < N), jump:

        a   ← a + g_i                         (the loss also sees z(t_i) directly)
        a_t ← a_t − ∂L/∂t_i,   ∂L/∂t_i = g_iᵀ f(t_i, z(t_i), θ)   (only for i ≥ 1)

    At t_0, s = [z(t_0), ∂L/∂z(t_0), ∂L/∂θ, ∂L/∂t_0]: the time channel is ∂L/∂t_0 (the
    observation at t_0 is z0 itself, so no direct term there).

    Parameters
    ----------
    f : callable
        The dynamics, with ``f.vjp`` (see :func:`augmented_dynamics`).
    theta : ndarray, shape (P,)
    t : ndarray, shape (N + 1,), increasing
    zs : ndarray, shape (N + 1, D)
        The forward solution z(t_i).
    g : ndarray, shape (N + 1, D)
        ∂L/∂z(t_i).
    solve : callable
        ``solve(F, s, t_start, t_end, theta) -> s(t_end)``: integrates
        ds/dt = F(t, s, theta) from s(t_start) = s to t_end (t_end < t_start runs
        backwards in time).

    Returns
    -------
    dz0 : ndarray, shape (D,)
        ∂L/∂z(t_0).
    dtheta : ndarray, shape (P,)
    dt : ndarray, shape (N + 1,)
        ∂L/∂t_i for every observation time.
    """
    N = len(t) - 1
    aug = lambda t_, s_, theta_: augmented_dynamics(f, t_, s_, theta_)    # noqa: E731
    D, dt = len(zs[0]), np.zeros(N + 1)
    dt[N] = g[N] @ f(t[N], zs[N], theta)
    s = np.concatenate([zs[N], g[N], np.zeros(len(theta)), [-dt[N]]])
    for i in range(N, 0, -1):
        s = np.array(solve(aug, s, t[i], t[i - 1], theta), dtype=float)
        s[D:2 * D] += g[i - 1]
        if i - 1 >= 1:
            dt[i - 1] = g[i - 1] @ f(t[i - 1], zs[i - 1], theta)
            s[-1] -= dt[i - 1]
    dt[0] = s[-1]
    return s[D:2 * D], s[2 * D:-1], dt

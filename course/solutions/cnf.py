"""Assignment 05's reference solution: a CNF's log-density by the instantaneous change of
variables (Chen et al. 2018, Theorem 1), the trace exact or by Hutchinson's estimator.

The grading tests check it against the trace of the Jacobian, refnode's
:class:`refnode.models.cnf.CNFDynamics` and a linear flow's closed form (refnode's own
FFJORD field, :mod:`refnode.models.ffjord`, computes the same traces by forward mode).
"""

import numpy as np

from refnode.models.ffjord import draw_noise
from refnode.models.planar_flow import standard_normal_logpdf


def trace_exact(jvp, z):
    """tr(∂f/∂z) of each sample, exactly, by D probes with the basis vectors e_i:

        tr J = Σ_i e_iᵀ (J e_i)          (the i-th component of J e_i, summed over i)

    Parameters
    ----------
    jvp : callable
        ``jvp(v) -> J v``, shape (B, D), for a batch of tangents v (B, D); J = ∂f/∂z is
        each sample's own D × D Jacobian at z.
    z : ndarray, shape (B, D)

    Returns
    -------
    ndarray, shape (B,)
    """
    B, D = z.shape
    trace = np.zeros(B)
    for i in range(D):
        e_i = np.zeros((B, D))
        e_i[:, i] = 1.0
        trace = trace + jvp(e_i)[:, i]
    return trace


def trace_hutchinson(jvp, eps):
    """Hutchinson's estimate of tr(∂f/∂z), one per sample: εᵀ (∂f/∂z) ε.

    Unbiased, E[εᵀJε] = tr J, for any noise with E[ε] = 0 and E[εεᵀ] = I (Rademacher ±1,
    or standard normal); one JVP instead of D.

    Parameters
    ----------
    jvp : callable
        ``jvp(v) -> J v``, shape (B, D) (see :func:`trace_exact`).
    eps : ndarray, shape (B, D)
        The noise, one vector per sample.

    Returns
    -------
    ndarray, shape (B,)
    """
    return np.sum(eps * jvp(eps), axis=1)


def cnf_dynamics(field, eps=None):
    """The CNF's dynamics on the state s = [z, ℓ], shape (B, D + 1) (paper Theorem 1):

        d/dt [z, ℓ] = [f(t, z, θ),  −tr(∂f/∂z)]

    so that ℓ(t) tracks log p(z(t)) − log p(z(t_start)). The trace is exact
    (``eps=None``) or Hutchinson's εᵀ(∂f/∂z)ε with the noise ``eps`` held fixed: F must
    be a deterministic function of (t, s), or it is not an ODE.

    Parameters
    ----------
    field : callable
        ``field(t, z, theta) -> f`` (B, D), with ``field.jvp(t, z, theta, v) -> (∂f/∂z) v``
        (B, D).
    eps : ndarray, shape (B, D), or None

    Returns
    -------
    F : callable
        ``F(t, s, theta) -> ds/dt``, shape (B, D + 1).
    """
    def F(t, s, theta):
        z = s[:, :-1]
        jvp = lambda v: field.jvp(t, z, theta, v)                   # noqa: E731
        trace = trace_exact(jvp, z) if eps is None else trace_hutchinson(jvp, eps)
        return np.concatenate([field(t, z, theta), -trace[:, None]], axis=1)
    return F


def log_density(field, theta, x, T, solve, rng=None):
    """log p(x) under the CNF that carries z(0) ~ N(0, I) to x = z(T).

    Integrate s = [x, 0] with :func:`cnf_dynamics` from t = T **back** to t = 0; there
    s = [z(0), ℓ(0)] with ℓ(0) = ∫_0^T tr(∂f/∂z) dt, and

        log p(x) = log N(z(0); 0, I) − ℓ(0)

    (``standard_normal_logpdf`` is given). With ``rng`` the trace is Hutchinson's: draw
    ε = draw_noise(rng, x.shape) (Rademacher) **once** for the whole solve and hold it
    fixed; without, the exact trace.

    Parameters
    ----------
    field : callable with ``.jvp`` (see :func:`cnf_dynamics`)
    theta : the field's parameters (passed through)
    x : ndarray, shape (B, D)
    T : float
    solve : callable
        ``solve(F, s, t_start, t_end, theta) -> s(t_end)`` (backwards when
        t_end < t_start).
    rng : numpy.random.Generator or None

    Returns
    -------
    ndarray, shape (B,)
    """
    eps = None if rng is None else draw_noise(rng, x.shape)
    s = np.concatenate([x, np.zeros((len(x), 1))], axis=1)
    s0 = solve(cnf_dynamics(field, eps), s, T, 0.0, theta)
    return standard_normal_logpdf(s0[:, :-1]) - s0[:, -1]

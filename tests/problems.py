"""Test problems with exact solutions, shared by the solver tests (import from here).

Each :class:`Problem` holds dynamics in refnode's convention ``f(t, z, theta)`` and the
exact solution ``exact(t, z0, t0)`` for any initial state (batches included: the
problems act elementwise or row-wise on the last axis).
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Problem:
    """An initial value problem dz/dt = f(t, z) with a closed-form solution.

    Attributes
    ----------
    name : str
    f : callable
        ``f(t, z, theta) -> dz/dt``; theta is ignored.
    exact : callable
        ``exact(t, z0, t0) -> z(t)`` for z(t0) = z0, same shape as z0.
    z0 : ndarray
        A default initial state.
    t0, t1 : float
        A default time span on which the solution is smooth.
    """

    name: str
    f: object
    exact: object
    z0: np.ndarray
    t0: float
    t1: float

    def error(self, z, t, z0=None, t0=None):
        """Max-norm error of ``z`` (the state at time t) against the exact solution."""
        z0 = self.z0 if z0 is None else z0
        t0 = self.t0 if t0 is None else t0
        return float(np.max(np.abs(z - self.exact(t, z0, t0))))


# -- y' = -t y: non-autonomous scalar decay, y(t) = y0 exp(-(t² - t0²)/2) ------------------

def _gaussian_f(t, z, theta=None):
    return -t * z


def _gaussian_exact(t, z0, t0):
    return z0 * np.exp(-(t * t - t0 * t0) / 2)


GAUSSIAN = Problem("gaussian", _gaussian_f, _gaussian_exact, np.array([1.0]), 0.0, 2.0)


# -- y' = cos(t) y: non-autonomous and oscillating, y(t) = y0 exp(sin t - sin t0) ----------

def _cosine_f(t, z, theta=None):
    return np.cos(t) * z


def _cosine_exact(t, z0, t0):
    return z0 * np.exp(np.sin(t) - np.sin(t0))


COSINE = Problem("cosine", _cosine_f, _cosine_exact, np.array([1.0, -0.5]), 0.0, 3.0)


# -- z' = z Mᵀ with M = [[-α, ω], [-ω, -α]]: a damped rotation ----------------------------
# exp(M s) = e^{-α s} [[cos ωs, sin ωs], [-sin ωs, cos ωs]], so z(t) = z0 exp(M (t - t0))ᵀ.

ALPHA, OMEGA = 0.1, 2.0
ROTATION_M = np.array([[-ALPHA, OMEGA], [-OMEGA, -ALPHA]])


def _rotation_f(t, z, theta=None):
    return z @ ROTATION_M.T


def rotation_propagator(s):
    """exp(M s), shape (2, 2), in closed form."""
    c, si = np.cos(OMEGA * s), np.sin(OMEGA * s)
    return np.exp(-ALPHA * s) * np.array([[c, si], [-si, c]])


def _rotation_exact(t, z0, t0):
    return z0 @ rotation_propagator(t - t0).T


ROTATION = Problem("rotation", _rotation_f, _rotation_exact, np.array([1.0, 0.5]), 0.0, 4.0)


# -- y' = y²: blows up at t0 + 1/y0; y(t) = y0 / (1 - y0 (t - t0)) --------------------------

def _blowup_f(t, z, theta=None):
    return z * z


def _blowup_exact(t, z0, t0):
    return z0 / (1 - z0 * (t - t0))


BLOWUP = Problem("blowup", _blowup_f, _blowup_exact, np.array([1.0]), 0.0, 0.9)


#: The smooth problems every method must converge on.
SMOOTH_PROBLEMS = (GAUSSIAN, COSINE, ROTATION)


# -- benchmark / comparison problems without a closed form ---------------------------------

#: The cubic spiral of torchdiffeq's ode_demo: dz/dt = z³ A (elementwise cube, row vector).
SPIRAL_A = np.array([[-0.1, 2.0], [-2.0, -0.1]])
SPIRAL_Z0 = np.array([2.0, 0.0])


def spiral_f(t, z, theta=None):
    """dz/dt = (z**3) @ A; z of shape (..., 2)."""
    return (z ** 3) @ SPIRAL_A


def mlp_f(t, z, theta):
    """f(z) = tanh(z W1ᵀ + b1) W2ᵀ + b2, theta = (W1 (H, D), b1 (H,), W2 (D, H), b2 (D,))."""
    W1, b1, W2, b2 = theta
    return np.tanh(z @ W1.T + b1) @ W2.T + b2


def mlp_theta(D, H, rng, scale=1.0):
    """Random MLP parameters with Glorot-like scale: a tuple (W1, b1, W2, b2)."""
    W1 = rng.standard_normal((H, D)) * scale / np.sqrt(D)
    W2 = rng.standard_normal((D, H)) * scale / np.sqrt(H)
    return W1, 0.1 * rng.standard_normal(H), W2, 0.1 * rng.standard_normal(D)


def count_network_calls(f):
    """Make ``f.net`` (a refnode.nn network's dynamics) count its forward passes and VJPs;
    returns the dict of counts {"forward": n, "vjp": n}, updated as they are called."""
    calls = {"forward": 0, "vjp": 0}
    forward, vjp = f.net.forward, f.net.vjp

    def counted_forward(*args):
        calls["forward"] += 1
        return forward(*args)

    def counted_vjp(*args):
        calls["vjp"] += 1
        return vjp(*args)
    f.net.forward, f.net.vjp = counted_forward, counted_vjp
    return calls


# -- z' = (1 + t) J z - α z: a rotation that speeds up (non-autonomous, linear) ------------
# With J = [[0, 1], [-1, 0]] the solution turns by φ(t) = (t - t0) + (t² - t0²)/2:
# z(t) = e^{-α(t - t0)} z0 R(φ)ᵀ, R(φ) = [[cos φ, sin φ], [-sin φ, cos φ]].

def _chirp_f(t, z, theta=None):
    x, y = z[..., 0], z[..., 1]
    turn = 1.0 + t
    return np.stack([turn * y - ALPHA * x, -turn * x - ALPHA * y], axis=-1)


def _chirp_exact(t, z0, t0):
    phi = (t - t0) + (t * t - t0 * t0) / 2
    c, s = np.cos(phi), np.sin(phi)
    return np.exp(-ALPHA * (t - t0)) * (z0 @ np.array([[c, s], [-s, c]]).T)


CHIRP = Problem("chirp", _chirp_f, _chirp_exact, np.array([1.0, 0.0]), 0.0, 4.0)


class MeanOverBatch:
    """Bug: the dynamics' parameter VJP averages over the batch instead of summing."""

    def __init__(self, f):
        self.f = f

    def __call__(self, t, z, theta):
        return self.f(t, z, theta)

    def vjp(self, t, z, theta, a):
        a_z, a_theta, a_t = self.f.vjp(t, z, theta, a)
        B = z.shape[0] if z.ndim == 2 else 1
        return a_z, {k: v / B for k, v in a_theta.items()}, a_t


def _gpu_available():
    """True where CuPy imports and sees a GPU (the ``gpu`` tests run only there)."""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:                      # no CuPy, no driver, no device
        return False


GPU = _gpu_available()

"""Continuous normalizing flows (paper §4): the state [z, ℓ] with dℓ/dt = −tr(∂f/∂z).

The instantaneous change of variables (paper Theorem 1): if dz/dt = f(t, z), then

    d log p(z(t)) / dt = −tr(∂f/∂z(t)).

:class:`CNFDynamics` integrates z and ℓ(t) = log p(z(t)) − log p(z(t_0)) together as one
(B, D + 1) array, with an exact VJP, so every gradient of :func:`refnode.odeint_vjp`
(adjoint, discrete, autograd) applies. It wraps a *vector field with its trace*::

    f, tr, cache         = field.forward(theta, t, z)          # (B, D), (B,)
    g_z, g_theta, g_t    = field.vjp(theta, cache, g_f, g_tr)  # pull back ∂L/∂f, ∂L/∂tr

Two fields, each with a hand-derived VJP of f *and* of its trace:

* :class:`PlanarField` — the paper's planar CNF, f = (1/M) Σ_m u_m tanh(w_mᵀz + b_m)
  with (w, u, b) from a hypernetwork of t; its trace has a closed form.
* :class:`ConcatSquashField` — FFJORD's MLP of ConcatSquash layers; the trace exact by D
  probes or estimated by Hutchinson's εᵀ(∂f/∂z)ε (noise drawn once per solve).
"""

import numpy as np

from ..backend import array_module, to_float
from ..errors import InputError
from ..gradients import odeint_vjp
from ..nn.activations import sigmoid
from ..nn.mlp import mlp
from ..odeint import odeint
from .ffjord import ConcatSquashField, check_z, draw_noise  # noqa: F401  (also importable here)
from .planar_flow import standard_normal_logpdf

#: Hidden width of the hypernetwork t -> (w, u, gate, b) (torchdiffeq examples/cnf.py).
HYPER_HIDDEN = 32


class CNFDynamics:
    """d/dt [z, ℓ] = [f(t, z), −tr ∂f/∂z(t, z)] on a state of shape (B, D + 1).

    Parameters
    ----------
    field : object with ``init``, ``forward(theta, t, z)`` and ``vjp(theta, cache, g_f, g_tr)``
    """

    def __init__(self, field):
        self.field = field

    def init(self, rng, dtype=np.float64):
        return self.field.init(rng, dtype)

    def __call__(self, t, state, theta):
        xp = array_module(state)
        f, trace, _ = self.field.forward(theta, t, state[:, :-1])
        return xp.concatenate([f, -trace[:, None]], axis=1)

    def vjp(self, t, state, theta, a):
        """(aᵀ∂F/∂s, aᵀ∂F/∂θ, aᵀ∂F/∂t) for F = [f, −tr]; F does not depend on ℓ."""
        return self.value_and_vjp(t, state, theta, a)[1:]

    def value_and_vjp(self, t, state, theta, a):
        """(F, a_state, a_theta, a_t) with one forward pass; a = [a_z, a_ℓ], so g_tr = −a_ℓ."""
        xp = array_module(state, a)
        f, trace, cache = self.field.forward(theta, t, state[:, :-1])
        g_z, g_theta, g_t = self.field.vjp(theta, cache, a[:, :-1], -a[:, -1])
        a_state = xp.concatenate([g_z, xp.zeros_like(a[:, -1:])], axis=1)
        value = xp.concatenate([f, -trace[:, None]], axis=1)
        return value, a_state, g_theta, xp.asarray(g_t, dtype=state.dtype)

    def __repr__(self):
        return f"CNFDynamics({self.field!r})"


class PlanarField:
    """The planar CNF of the paper (eq. 10): dz/dt = (1/M) Σ_m u_m h(w_mᵀz + b_m), h = tanh.

    A hypernetwork of t (torchdiffeq examples/cnf.py) gives the parameters at time t:
    t -> Linear(1, H) -> tanh -> Linear(H, H) -> tanh -> Linear(H, 3MD + M) = p(t), split
    into W (M, D), U_raw (M, D), G (M, D), b (M,), and gated: U = U_raw ⊙ σ(G).

    The paper writes a sum over m; the reference code takes the mean (1/M) Σ_m, which
    keeps the field's initial scale independent of M; we follow the code.

    Trace in closed form: ∂f/∂z = (1/M) Σ_m h'(a_m) u_m w_mᵀ, so
    tr ∂f/∂z = (1/M) Σ_m h'(a_m) u_mᵀw_m,  a_m = w_mᵀz + b_m.
    """

    def __init__(self, dim, width, hidden=HYPER_HIDDEN):
        for name, n in (("dim", dim), ("width", width), ("hidden", hidden)):
            if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
                raise InputError(f"PlanarField: {name} must be a positive integer, got {n!r}.")
        self.dim, self.width = int(dim), int(width)
        self.hyper = mlp((1, int(hidden), int(hidden), 3 * width * dim + width), "tanh")

    def init(self, rng, dtype=np.float64):
        return self.hyper.init(rng, dtype)

    def weights(self, theta, t):
        """(W, U_raw, G, b, hyper_cache): the hypernetwork's output at time t."""
        xp = array_module(theta, t)
        p, hyper_cache = self.hyper.forward(theta, t, t * xp.ones(1))   # the input is [t]
        n = self.width * self.dim
        shape = (self.width, self.dim)
        W, U_raw, G = (xp.reshape(p[i * n:(i + 1) * n], shape) for i in range(3))
        return W, U_raw, G, p[3 * n:], hyper_cache

    def forward(self, theta, t, z):
        """z (B, D) -> f (B, D), tr ∂f/∂z (B,), cache."""
        check_z(z, self.dim)
        xp = array_module(z, theta, t)
        W, U_raw, G, b, hyper_cache = self.weights(theta, t)
        U = U_raw * sigmoid(G)
        H = xp.tanh(xp.matmul(z, xp.transpose(W)) + b)        # h(a), (B, M)
        H1 = 1.0 - H * H                                       # h'(a)
        c = xp.sum(U * W, axis=1)                              # u_mᵀw_m, (M,)
        f = xp.matmul(H, U) / self.width
        trace = xp.matmul(H1, c) / self.width
        return f, trace, (z, W, U_raw, G, U, H, H1, c, hyper_cache)

    def vjp(self, theta, cache, g_f, g_tr):
        """Pull back (∂L/∂f (B, D), ∂L/∂tr (B,)) to (∂L/∂z, ∂L/∂θ, ∂L/∂t).

        With h'' = −2 h h':
            ∂L/∂a  = (1/M) [(g_f Uᵀ) ⊙ h' + g_tr cᵀ ⊙ h'']             (B, M)
            ∂L/∂c  = (1/M) h'ᵀ g_tr                                     (M,)
            ∂L/∂z  = ∂L/∂a W
            ∂L/∂W  = ∂L/∂aᵀ z + ∂L/∂c ⊙ U,   ∂L/∂U = (1/M) Hᵀ g_f + ∂L/∂c ⊙ W
            ∂L/∂b  = Σ_batch ∂L/∂a
            ∂L/∂U_raw = ∂L/∂U ⊙ σ(G),   ∂L/∂G = ∂L/∂U ⊙ U_raw ⊙ σ(G)(1 − σ(G))
        then through the hypernetwork to θ and to its input t.
        """
        z, W, U_raw, G, U, H, H1, c, hyper_cache = cache
        xp = array_module(g_f, z, W)
        M = self.width
        g_a = (xp.matmul(g_f, xp.transpose(U)) * H1 - 2.0 * g_tr[:, None] * c * H * H1) / M
        g_c = xp.matmul(g_tr, H1) / M
        g_W = xp.matmul(xp.transpose(g_a), z) + g_c[:, None] * U
        g_U = xp.matmul(xp.transpose(H), g_f) / M + g_c[:, None] * W
        s = sigmoid(G)
        g_p = xp.concatenate([xp.reshape(g_W, (-1,)), xp.reshape(g_U * s, (-1,)),
                              xp.reshape(g_U * U_raw * s * (1.0 - s), (-1,)),
                              xp.sum(g_a, axis=0)])
        g_input, g_theta, _ = self.hyper.vjp(theta, hyper_cache, g_p)
        return xp.matmul(g_a, W), g_theta, g_input[0]

    def __repr__(self):
        return f"PlanarField(dim={self.dim}, width={self.width})"


def augment(z):
    """[z, 0]: a batch (B, D) with the log-density change ℓ = 0 appended, (B, D + 1)."""
    xp = array_module(z)
    return xp.concatenate([z, xp.zeros_like(z[:, :1])], axis=1)


def cnf_kl(f, theta, T, z0, log_p, score_p, solver):
    """KL(q‖p) up to log Z, for z(T) from z(0) = z0 ~ N(0, I), with ∂/∂θ and ∂/∂T.

    log q(z(T)) = log N(z0) + ℓ(T);  loss = mean(log q − log p̃(z(T))).
    Cotangent at T: [−∇log p̃(z(T)) / B, 1/B]. ``solver``: keyword arguments of odeint_vjp.
    """
    xp = array_module(z0)
    states, vjp = odeint_vjp(f, augment(z0), np.array([0.0, T]), theta, **solver)
    z, ell = states[-1][:, :-1], states[-1][:, -1]
    B = z0.shape[0]
    loss = xp.mean(standard_normal_logpdf(z0) + ell - log_p(z))
    g_end = xp.concatenate([-score_p(z) / B, xp.full((B, 1), 1.0 / B)], axis=1)
    _, g_theta, g_t = vjp(xp.stack([xp.zeros_like(g_end), g_end]))
    return to_float(loss), g_theta, to_float(g_t[1])


def cnf_log_likelihood(f, theta, T, x, solver):
    """log p(x) (B,): integrate [x, 0] from t = T back to 0; log p(x) = log N(z(0)) − ℓ(0)."""
    states, vjp = odeint_vjp(f, augment(x), np.array([T, 0.0]), theta, **solver)
    z, ell = states[-1][:, :-1], states[-1][:, -1]
    return standard_normal_logpdf(z) - ell, (z, vjp)


def cnf_nll(f, theta, T, x, solver):
    """mean −log p(x) with ∂/∂θ and ∂/∂T; cotangent at t = 0: [z(0) / B, 1/B]."""
    xp = array_module(x)
    log_px, (z, vjp) = cnf_log_likelihood(f, theta, T, x, solver)
    B = x.shape[0]
    g_end = xp.concatenate([z / B, xp.full((B, 1), 1.0 / B)], axis=1)
    _, g_theta, g_t = vjp(xp.stack([xp.zeros_like(g_end), g_end]))
    return to_float(-xp.mean(log_px)), g_theta, to_float(g_t[0])


def cnf_sample(f, theta, T, z0, fractions, solver):
    """Push noise z0 (B, D) to data: states at t = fraction·T, shape (len(fractions), B, D)."""
    solver = {k: v for k, v in solver.items() if k in ("method", "rtol", "atol")}
    states = odeint(f, augment(z0), T * np.asarray(fractions, dtype=float), theta, **solver)
    return states[:, :, :-1]

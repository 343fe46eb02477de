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

from ..backend import array_module
from ..errors import InputError
from ..gradients import odeint_vjp
from ..nn.activations import Softplus, Tanh, sigmoid
from ..nn.base import Sequential
from ..nn.dense import ConcatSquashLinear
from ..nn.mlp import mlp
from ..odeint import odeint
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
        _check_z(z, self.dim)
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


def _check_z(z, dim):
    if np.ndim(z) != 2 or np.shape(z)[1] != dim:
        raise InputError(f"z must have shape (B, {dim}), got {np.shape(z)}; "
                         "the CNF state is (B, D + 1) = [z, ℓ].")


def augment(z):
    """[z, 0]: a batch (B, D) with the log-density change ℓ = 0 appended, (B, D + 1)."""
    xp = array_module(z)
    return xp.concatenate([z, xp.zeros_like(z[:, :1])], axis=1)


# --- FFJORD: a ConcatSquash MLP with an exact or a Hutchinson trace ---------------------------

#: Noise distributions of Hutchinson's estimator; both have E[ε] = 0, E[εεᵀ] = I.
NOISE = ("rademacher", "gaussian")


def draw_noise(rng, shape, distribution="rademacher"):
    """ε for Hutchinson's estimator: ±1 with equal probability, or standard normal."""
    if distribution not in NOISE:
        raise InputError(f"unknown noise {distribution!r}; choose one of {', '.join(NOISE)}.")
    if distribution == "gaussian":
        return rng.standard_normal(shape)
    return rng.choice(np.array([-1.0, 1.0]), size=shape)


def _activation_derivatives(layer, x):
    """(h'(x), h''(x)) of an elementwise layer; the trace's VJP needs both."""
    xp = array_module(x)
    if isinstance(layer, Tanh):
        y = xp.tanh(x)
        return 1.0 - y * y, -2.0 * y * (1.0 - y * y)
    if isinstance(layer, Softplus):
        s = sigmoid(x)
        return s, s * (1.0 - s)
    raise InputError(f"ConcatSquashField supports tanh and softplus, not {layer!r}.")


def _tangent_params(theta):
    """The tangent map of y = (xWᵀ + b) ⊙ s(t) + t w_b in x is ẏ = (ẋWᵀ) ⊙ s(t): the same
    layer with b = 0 and w_b = 0."""
    return {**theta, "b": 0.0 * theta["b"], "w_b": 0.0 * theta["w_b"]}


class ConcatSquashField:
    """FFJORD's dynamics: ConcatSquashLinear layers with an activation between them.

    The trace is Σ_p ε_pᵀ (∂f/∂z) ε_p over probes ε_p (P, B, D), each J ε_p computed by
    forward mode (tangents pushed through the layers beside the values):

    * ``estimator="exact"``: the D basis vectors e_i — the exact trace, D tangents;
    * ``estimator="hutchinson"``: one noise vector per sample, E[εᵀJε] = tr J
      (Hutchinson 1990); the noise is set with :meth:`with_noise` and stays fixed for the
      whole solve (forward and reverse), so the dynamics are a deterministic ODE.

    The VJP of the trace is hand-derived: the reverse of the (value, tangent) pass, in
    which an activation y = h(x), ẏ = h'(x) ẋ pulls back as
    x̄ = h'(x) ȳ + Σ_p h''(x) ẋ_p ẏ̄_p and ẋ̄_p = h'(x) ẏ̄_p (the second-order term).

    Parameters
    ----------
    dim : int
    hidden : sequence of int
        Hidden widths, e.g. (64, 64, 64) as FFJORD's toy experiments.
    activation : "tanh" or "softplus"
    estimator : "exact" or "hutchinson"
    """

    def __init__(self, dim, hidden=(64, 64, 64), activation="tanh", estimator="exact",
                 noise=None):
        if estimator not in ("exact", "hutchinson"):
            raise InputError(f"estimator must be 'exact' or 'hutchinson', got {estimator!r}.")
        if activation not in ("tanh", "softplus"):
            raise InputError(f"activation must be 'tanh' or 'softplus', got {activation!r}.")
        widths = (int(dim),) + tuple(int(n) for n in hidden) + (int(dim),)
        layers = []
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            if layers:
                layers.append(Tanh() if activation == "tanh" else Softplus())
            layers.append(ConcatSquashLinear(n_in, n_out))
        self.net = Sequential(*layers)
        self.dim, self.hidden, self.activation = int(dim), tuple(hidden), activation
        self.estimator, self.noise = estimator, noise

    def init(self, rng, dtype=np.float64):
        return self.net.init(rng, dtype)

    def with_noise(self, noise):
        """A copy of this field whose Hutchinson noise is ``noise`` (B, D), fixed."""
        field = ConcatSquashField(self.dim, self.hidden, self.activation, self.estimator, noise)
        field.net = self.net
        return field

    def probes(self, z):
        """ε_p of shape (P, B, D): the basis (exact) or the fixed noise (Hutchinson)."""
        xp = array_module(z)
        if self.estimator == "exact":
            basis = xp.eye(self.dim, dtype=z.dtype)[:, None, :]
            return basis + xp.zeros_like(z)[None]
        if self.noise is None or np.shape(self.noise) != np.shape(z):
            raise InputError(f"Hutchinson's estimator needs noise of shape {np.shape(z)}; "
                             "set it once per solve with field.with_noise(draw_noise(...)).")
        return self.noise[None]

    def forward(self, theta, t, z):
        """z (B, D) -> f (B, D), Σ_p ε_pᵀ J ε_p (B,), cache; values and tangents together."""
        _check_z(z, self.dim)
        xp = array_module(z, theta)
        eps = self.probes(z)
        x, v, records = z, eps, []
        for layer, th in zip(self.net.layers, theta):
            if isinstance(layer, ConcatSquashLinear):
                y, cache = layer.forward(th, t, x)
                v_out, v_cache = layer.forward(_tangent_params(th), t, v)
            else:
                y, cache = layer.forward(th, t, x)
                v_out, v_cache = _activation_derivatives(layer, x)[0] * v, None
            records.append((x, v, cache, v_cache))
            x, v = y, v_out
        trace = xp.sum(xp.sum(eps * v, axis=2), axis=0)
        return x, trace, (eps, records)

    def vjp(self, theta, cache, g_f, g_tr):
        """Reverse of the value and tangent pass: ∂L/∂(Jε_p) = g_tr ε_p starts the tangents."""
        eps, records = cache
        xp = array_module(g_f, eps)
        g_x, g_v = g_f, g_tr[None, :, None] * eps
        g_theta, g_t = [None] * len(records), 0.0
        for k in reversed(range(len(records))):
            layer, th = self.net.layers[k], theta[k]
            x, v, layer_cache, v_cache = records[k]
            if isinstance(layer, ConcatSquashLinear):
                g_x, g_th, g_t_x = layer.vjp(th, layer_cache, g_x)
                g_v, g_th_v, g_t_v = layer.vjp(_tangent_params(th), v_cache, g_v)
                g_theta[k] = {key: g_th[key] if key in ("b", "w_b") else g_th[key] + g_th_v[key]
                              for key in g_th}
                g_t = g_t + g_t_x + g_t_v
            else:
                d1, d2 = _activation_derivatives(layer, x)
                g_x = d1 * g_x + xp.sum(d2 * v * g_v, axis=0)
                g_v = d1 * g_v
                g_theta[k] = {}
        return g_x, g_theta, g_t

    def __repr__(self):
        return (f"ConcatSquashField(dim={self.dim}, hidden={self.hidden}, "
                f"activation={self.activation!r}, estimator={self.estimator!r})")


# --- objectives: loss and gradient through odeint_vjp, including ∂L/∂T ------------------------

def cnf_kl(f, theta, T, z0, log_p, score_p, solver):
    """KL(q‖p) up to log Z, for z(T) from z(0) = z0 ~ N(0, I), with ∂/∂θ and ∂/∂T.

    log q(z(T)) = log N(z0) + ℓ(T);  loss = mean(log q − log p̃(z(T))).
    Cotangent at T: [−∇log p̃(z(T)) / B, 1/B]. ``solver``: keyword arguments of odeint_vjp.
    """
    states, vjp = odeint_vjp(f, augment(z0), np.array([0.0, T]), theta, **solver)
    z, ell = states[-1][:, :-1], states[-1][:, -1]
    B = z0.shape[0]
    loss = np.mean(standard_normal_logpdf(z0) + ell - log_p(z))
    g_end = np.concatenate([-score_p(z) / B, np.full((B, 1), 1.0 / B)], axis=1)
    _, g_theta, g_t = vjp(np.stack([np.zeros_like(g_end), g_end]))
    return float(loss), g_theta, float(g_t[1])


def cnf_log_likelihood(f, theta, T, x, solver):
    """log p(x) (B,): integrate [x, 0] from t = T back to 0; log p(x) = log N(z(0)) − ℓ(0)."""
    states, vjp = odeint_vjp(f, augment(x), np.array([T, 0.0]), theta, **solver)
    z, ell = states[-1][:, :-1], states[-1][:, -1]
    return standard_normal_logpdf(z) - ell, (z, vjp)


def cnf_nll(f, theta, T, x, solver):
    """mean −log p(x) with ∂/∂θ and ∂/∂T; cotangent at t = 0: [z(0) / B, 1/B]."""
    log_px, (z, vjp) = cnf_log_likelihood(f, theta, T, x, solver)
    B = x.shape[0]
    g_end = np.concatenate([z / B, np.full((B, 1), 1.0 / B)], axis=1)
    _, g_theta, g_t = vjp(np.stack([np.zeros_like(g_end), g_end]))
    return float(-np.mean(log_px)), g_theta, float(g_t[0])


def cnf_sample(f, theta, T, z0, fractions, solver):
    """Push noise z0 (B, D) to data: states at t = fraction·T, shape (len(fractions), B, D)."""
    solver = {k: v for k, v in solver.items() if k in ("method", "rtol", "atol")}
    states = odeint(f, augment(z0), T * np.asarray(fractions, dtype=float), theta, **solver)
    return states[:, :, :-1]

"""FFJORD's vector field (Grathwohl et al., 2019): a ConcatSquash MLP whose divergence is
computed exactly (D forward-mode probes) or estimated by Hutchinson's εᵀ(∂f/∂z)ε with the
noise ε drawn once per solve and held fixed during it. Used inside
:class:`refnode.models.cnf.CNFDynamics`; see that module for the field protocol.
"""

import numpy as np

from ..backend import array_module
from ..errors import InputError
from ..nn.activations import Softplus, Tanh, sigmoid
from ..nn.base import Sequential
from ..nn.dense import ConcatSquashLinear


def check_z(z, dim):
    """z must be a batch (B, dim); the CNF state (B, D + 1) is split before this check."""
    if np.ndim(z) != 2 or np.shape(z)[1] != dim:
        raise InputError(f"z must have shape (B, {dim}), got {np.shape(z)}; "
                         "the CNF state is (B, D + 1) = [z, ℓ].")


#: Noise distributions of Hutchinson's estimator; both have E[ε] = 0, E[εεᵀ] = I.
NOISE = ("rademacher", "gaussian")


def draw_noise(rng, shape, distribution="rademacher"):
    """ε for Hutchinson's estimator: ±1 with equal probability, or standard normal."""
    if distribution not in NOISE:
        raise InputError(f"unknown noise {distribution!r}; choose one of {', '.join(NOISE)}.")
    if distribution == "gaussian":
        return rng.standard_normal(shape)
    return rng.choice(np.array([-1.0, 1.0]), size=shape)


def _activation_derivatives(layer, x, y):
    """(h'(x), h''(x)) of an elementwise layer with output y = h(x); the trace's VJP needs
    both. tanh: h' = 1 − y², h'' = −2 y h' (from y, no second tanh); softplus: h' = σ(x),
    h'' = σ(x)(1 − σ(x))."""
    if isinstance(layer, Tanh):
        d1 = 1.0 - y * y
        return d1, -2.0 * y * d1
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
        check_z(z, self.dim)
        xp = array_module(z, theta)
        eps = self.probes(z)
        x, v, records = z, eps, []
        for layer, th in zip(self.net.layers, theta):
            if isinstance(layer, ConcatSquashLinear):
                y, cache = layer.forward(th, t, x)
                v_out, v_cache = layer.forward(_tangent_params(th), t, v)
            else:
                y, cache = layer.forward(th, t, x)
                v_cache = _activation_derivatives(layer, x, y)   # (h', h''), kept for the VJP
                v_out = v_cache[0] * v
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
                d1, d2 = v_cache
                g_x = d1 * g_x + xp.sum(d2 * v * g_v, axis=0)
                g_v = d1 * g_v
                g_theta[k] = {}
        return g_x, g_theta, g_t

    def __repr__(self):
        return (f"ConcatSquashField(dim={self.dim}, hidden={self.hidden}, "
                f"activation={self.activation!r}, estimator={self.estimator!r})")


# --- objectives: loss and gradient through odeint_vjp, including ∂L/∂T ------------------------

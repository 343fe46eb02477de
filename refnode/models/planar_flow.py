"""The planar normalizing flow of Rezende & Mohamed (2015), the discrete baseline of Figure 4.

K layers, each an invertible map with a cheap Jacobian determinant (R&M 2015, §4.1)::

    f(z) = z + û h(wᵀz + b),      h = tanh
    log|det ∂f/∂z| = log|1 + ûᵀψ(z)|,   ψ(z) = h'(wᵀz + b) w

(matrix determinant lemma: det(I + û ψᵀ) = 1 + ψᵀû). The map is invertible when
wᵀû ≥ −1 (R&M 2015, Appendix A.1); any free u is mapped to one that satisfies it::

    û = u + (m(wᵀu) − wᵀu) w / ‖w‖²,   m(x) = −1 + softplus(x)

so wᵀû = m(wᵀu) > −1 and 1 + ûᵀψ = 1 + h'(·) m(wᵀu) ≥ min(1, 1 + m) > 0 (0 < h' ≤ 1):
the log-determinant is finite for every input. (w = 0 leaves û undefined.)

Parameters of a K-layer flow: a list of K dicts ``{"w": (D,), "u": (D,), "b": ()}``.
:func:`flow_forward` maps z_0 (B, D) to z_K and Σ_k log|det|; :func:`flow_vjp` is its
hand-derived reverse, layer by layer, with the derivation next to each line.
"""

import numpy as np

from ..backend import array_module, to_float
from ..errors import InputError
from ..nn.activations import sigmoid

#: Initial scales: w ~ N(0, W_INIT_STD²), u, b ~ N(0, INIT_STD²). w must not start small:
#: the constraint makes wᵀû = m(wᵀu) ≈ m(0) = log 2 − 1, so û ≈ (log 2 − 1) w/‖w‖² grows like
#: 1/‖w‖; with ‖w‖ ~ 0.1 each layer would shift by ~3 and 32 of them scatter the density.
W_INIT_STD = 1.0
INIT_STD = 0.1


def init_planar_flow(rng, dim, n_layers, dtype=np.float64):
    """K = ``n_layers`` planar layers on R^``dim``: a list of {"w", "u", "b"}."""
    if not isinstance(rng, np.random.Generator):
        raise InputError("init_planar_flow needs a numpy.random.Generator "
                         "(numpy.random.default_rng(seed)).")
    for name, n in (("dim", dim), ("n_layers", n_layers)):
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise InputError(f"{name} must be a positive integer, got {n!r}.")
    return [{"w": (W_INIT_STD * rng.standard_normal(dim)).astype(dtype),
             "u": (INIT_STD * rng.standard_normal(dim)).astype(dtype),
             "b": np.asarray(INIT_STD * rng.standard_normal(), dtype=dtype)}
            for _ in range(n_layers)]


def constrained_u(w, u):
    """û = u + (m(wᵀu) − wᵀu) w/‖w‖²; returns (û, s) with s = softplus(wᵀu) = 1 + wᵀû > 0.

    The layer needs 1 + wᵀû = s itself, not 1 + m: for wᵀu ≲ −37, −1 + softplus(wᵀu)
    rounds to −1 and the determinant 1 + h'·m would cancel to 0.
    """
    xp = array_module(w, u)
    c = xp.sum(w * u)
    s = xp.logaddexp(0.0, c)
    return u + (s - 1.0 - c) * w / xp.sum(w * w), s


def constrained_u_vjp(w, u, g_u_hat, g_s):
    """Pull (∂L/∂û, ∂L/∂s) back to (∂L/∂w, ∂L/∂u) through :func:`constrained_u`.

    With c = wᵀu, m = s − 1, r = (m − c)/‖w‖², û = u + r w, ds/dc = σ(c):
        ∂r/∂u = (σ(c) − 1) w/‖w‖²,   ∂r/∂w = (σ(c) − 1) u/‖w‖² − 2 (m − c) w/‖w‖⁴
        ∂L/∂u = ḡ + (ḡᵀw) ∂r/∂u + g_s σ(c) w
        ∂L/∂w = r ḡ + (ḡᵀw) ∂r/∂w + g_s σ(c) u
    """
    xp = array_module(w, u, g_u_hat)
    c = xp.sum(w * u)
    m = xp.logaddexp(0.0, c) - 1.0
    ww = xp.sum(w * w)
    ds = sigmoid(c)
    g_r = xp.sum(g_u_hat * w)
    g_u = g_u_hat + g_r * (ds - 1.0) * w / ww + g_s * ds * w
    g_w = ((m - c) / ww) * g_u_hat + g_r * ((ds - 1.0) * u / ww - 2.0 * (m - c) * w / ww**2) \
        + g_s * ds * u
    return g_w, g_u


def layer_forward(theta, z):
    """One planar layer. z (B, D) -> (f(z) (B, D), log|det| (B,), cache).

    det = 1 + h'·wᵀû = 1 − h' + h'·s = h² + h'·s: a sum of non-negative terms (h' = 1 − h²).
    """
    xp = array_module(z, theta["w"])
    u_hat, s = constrained_u(theta["w"], theta["u"])
    h = xp.tanh(xp.matmul(z, theta["w"]) + theta["b"])       # h(wᵀz + b), (B,)
    h_prime = 1.0 - h * h
    det = h * h + h_prime * s
    return z + h[:, None] * u_hat, xp.log(det), (z, u_hat, s, h, h_prime, det)


def layer_vjp(theta, cache, g_z, g_logdet):
    """Reverse of :func:`layer_forward`: (∂L/∂z', ∂L/∂logdet) -> (∂L/∂z, ∂L/∂θ).

    With a = wᵀz + b, d det/da = 2hh' − 2hh's = 2hh'(1 − s):
        ∂L/∂a   = h' g_zᵀû + g_logdet · 2hh'(1 − s) / det      (B,)
        ∂L/∂z   = g_z + ∂L/∂a w
        ∂L/∂û   = Σ_batch h g_z,   ∂L/∂s = Σ_batch g_logdet h' / det
        ∂L/∂w   = Σ_batch ∂L/∂a z  (+ the path through û, s),   ∂L/∂b = Σ_batch ∂L/∂a
    """
    z, u_hat, s, h, h_prime, det = cache
    xp = array_module(g_z, z)
    w = theta["w"]
    g_a = h_prime * xp.matmul(g_z, u_hat) + g_logdet * 2.0 * h * h_prime * (1.0 - s) / det
    g_u_hat = xp.matmul(h, g_z)
    g_s = xp.sum(g_logdet * h_prime / det)
    g_w_hat, g_u = constrained_u_vjp(w, theta["u"], g_u_hat, g_s)
    g_theta = {"w": xp.matmul(g_a, z) + g_w_hat, "u": g_u, "b": xp.sum(g_a)}
    return g_z + g_a[:, None] * w, g_theta


def flow_forward(theta, z0):
    """Apply the K layers. z0 (B, D) -> (z_K (B, D), Σ_k log|det ∂f_k/∂z| (B,), caches)."""
    _check_batch(z0, theta)
    xp = array_module(z0)
    z, logdet, caches = z0, xp.zeros(z0.shape[0], dtype=z0.dtype), []
    for layer in theta:
        z, ld, cache = layer_forward(layer, z)
        logdet = logdet + ld
        caches.append(cache)
    return z, logdet, caches


def flow_vjp(theta, caches, g_z, g_logdet):
    """Reverse of :func:`flow_forward`: -> (∂L/∂z0 (B, D), ∂L/∂θ list like theta)."""
    g_theta = [None] * len(theta)
    for k in reversed(range(len(theta))):
        g_z, g_theta[k] = layer_vjp(theta[k], caches[k], g_z, g_logdet)
    return g_z, g_theta


def _check_batch(z, theta):
    if isinstance(theta, dict) or len(theta) < 1:
        raise InputError("theta must be a non-empty list of planar layers "
                         "(init_planar_flow(rng, dim, n_layers)).")
    dim = np.shape(theta[0]["w"])[0]
    if np.ndim(z) != 2 or np.shape(z)[1] != dim:
        raise InputError(f"z must have shape (B, {dim}), got {np.shape(z)}.")


# --- objectives: loss and hand-derived gradient -----------------------------------------------

def standard_normal_logpdf(z):
    """log N(z; 0, I) for z (B, D) -> (B,)."""
    xp = array_module(z)
    return -0.5 * xp.sum(z * z, axis=1) - 0.5 * z.shape[1] * np.log(2.0 * np.pi)


def nf_kl(theta, z0, log_p, score_p):
    """KL(q‖p) up to log Z for z_K = flow(z0), z0 ~ N(0, I): its Monte-Carlo estimate and ∂/∂θ.

    log q(z_K) = log N(z0) − Σ_k log|det ∂f_k/∂z|, loss = mean(log q(z_K) − log p̃(z_K)).
    ``score_p(z) = ∇ log p̃(z)`` (B, D).
    """
    xp = array_module(z0)
    z, logdet, caches = flow_forward(theta, z0)
    B = z0.shape[0]
    loss = xp.mean(standard_normal_logpdf(z0) - logdet - log_p(z))
    _, g_theta = flow_vjp(theta, caches, -score_p(z) / B, -xp.ones(B) / B)
    return to_float(loss), g_theta


def nf_log_likelihood(theta, x):
    """log p(x) (B,) with the flow run from data to noise: z = flow(x), log N(z) + Σ log|det|.

    (A planar layer has no closed-form inverse, so for likelihood the flow is used in the
    normalizing direction; sampling would need a numerical inverse.)
    """
    z, logdet, caches = flow_forward(theta, x)
    return standard_normal_logpdf(z) + logdet, (z, caches)


def nf_nll(theta, x):
    """mean −log p(x) and its gradient ∂/∂θ: ∂/∂z = z/B, ∂/∂logdet = −1/B."""
    xp = array_module(x)
    log_px, (z, caches) = nf_log_likelihood(theta, x)
    B = x.shape[0]
    _, g_theta = flow_vjp(theta, caches, z / B, -xp.ones(B) / B)
    return to_float(-xp.mean(log_px)), g_theta

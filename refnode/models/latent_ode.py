"""The latent ODE (Chen et al. 2018, §5): a generative model of irregular time series.

The generative story, for one series observed at times t_1 < ... < t_n::

    z(t_0) ~ N(0, I)                                   latent initial state (dim 4)
    z(t_1), ..., z(t_n) = ODESolve(f, z(t_0), θ_f, t_0, ..., t_n)
    x_j ~ N(decoder(z(t_j)), σ² I)                     σ fixed (the data's noise std)

Inference: an RNN reads the observations *backwards in time* (the last one first), each
with the gap to the previous observation time, and its final hidden state gives the
posterior q(z_0 | x) = N(μ, diag(exp(log_var))). Training maximises the ELBO::

    ELBO = E_q[ Σ_j log N(x_j | decoder(z(t_j)), σ²) ] − KL(q(z_0 | x) ‖ N(0, I)),

estimated with one reparameterised sample z_0 = μ + exp(log_var / 2) ⊙ ε, ε ~ N(0, I).

Every gradient is by hand: the decoder's layer VJPs, ``odeint_vjp`` for the ODE (the
adjoint by default), the reparameterisation and KL in closed form, and backpropagation
through time for the encoder (:mod:`refnode.models.rnn`).

Batches solve the ODE once for all series, at the *union* of their observation times
(as the reference code does); each series' likelihood counts only its own times (a mask).
"""

from dataclasses import dataclass

import numpy as np

from ..backend import array_module, to_float
from ..errors import InputError
from ..gradients import odeint_vjp
from ..nn import Linear, mlp, mlp_dynamics
from ..odeint import odeint
from .rnn import RNNCell, rnn_forward, rnn_vjp

LATENT_DIM = 4  # Table 2 setup (paper §5.1)
RNN_HIDDEN = 25  # encoder RNN hidden units
ODE_HIDDEN = 20  # ODE function hidden units
DECODER_HIDDEN = 20
NOISE_STD = 0.1  # default likelihood std σ; the experiment passes its data's noise std
LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class LatentBatch:
    """A batch of B series laid on the union of their observation times.

    Attributes
    ----------
    encoder_inputs : (n, B, d + 1)
        ``(x_j, t_j − t_{j−1})`` in the encoder's order: the last observation first;
        ``t_{−1}`` is ``times[0]``.
    times : (N,)
        ``t_0`` followed by the sorted union of all observation times after it.
    x : (N, B, d)
        Observations on that grid (zero where a series has none).
    mask : (N, B)
        1.0 where series b is observed at ``times[i]``, else 0.0.
    """

    encoder_inputs: np.ndarray
    times: np.ndarray
    x: np.ndarray
    mask: np.ndarray


def make_batch(x, t, t0):
    """A :class:`LatentBatch` from observations x : (B, n, d) at times t : (B, n) > t0."""
    x, t = np.asarray(x, dtype=np.float64), np.asarray(t, dtype=np.float64)
    if x.ndim != 3 or t.shape != x.shape[:2]:
        raise InputError(f"need x of shape (B, n, d) and t of shape (B, n); got {x.shape}, {t.shape}.")
    if np.any(np.diff(t, axis=1) <= 0) or np.any(t[:, 0] < t0):
        raise InputError("each series' times must increase strictly and start at or after t0.")
    gaps = np.diff(t, axis=1, prepend=t0)
    inputs = np.concatenate([x, gaps[:, :, None]], axis=2)[:, ::-1]  # last observation first
    times = np.union1d([t0], t)
    rows = np.arange(x.shape[0])[:, None]
    where = np.searchsorted(times, t)  # (B, n) index of each observation in the union
    x_grid = np.zeros((len(times),) + x.shape[::2])
    mask = np.zeros((len(times), x.shape[0]))
    x_grid[where, rows] = x
    mask[where, rows] = 1.0
    return LatentBatch(np.ascontiguousarray(np.transpose(inputs, (1, 0, 2))), times, x_grid, mask)


# --- the ELBO's pieces, each with its gradient ------------------------------------------


def gaussian_log_likelihood(x, mean, std, mask):
    """Σ over observed entries of log N(x | mean, std²), per series : (B,).

    log N(x | m, σ²) = −½ ((x − m)/σ)² − log σ − ½ log 2π;  x, mean : (N, B, d), mask (N, B).
    """
    xp = array_module(x, mean)
    per_entry = -0.5 * ((x - mean) / std) ** 2 - np.log(std) - 0.5 * LOG_2PI
    return xp.sum(per_entry * mask[:, :, None], axis=(0, 2))


def gaussian_log_likelihood_grad(x, mean, std, mask):
    """∂/∂mean of :func:`gaussian_log_likelihood`: (x − mean)/σ² on observed entries."""
    return (x - mean) / std ** 2 * mask[:, :, None]


def kl_standard_normal(mu, log_var):
    """KL(N(μ, diag e^{log_var}) ‖ N(0, I)) = ½ Σ (e^{log_var} + μ² − 1 − log_var), per row."""
    xp = array_module(mu, log_var)
    return 0.5 * xp.sum(xp.exp(log_var) + mu ** 2 - 1.0 - log_var, axis=-1)


def kl_standard_normal_grad(mu, log_var):
    """(∂KL/∂μ, ∂KL/∂log_var) = (μ, ½ (e^{log_var} − 1))."""
    return mu, 0.5 * (array_module(log_var).exp(log_var) - 1.0)


def reparameterize(mu, log_var, eps):
    """z_0 = μ + e^{log_var/2} ε; its VJP is g ↦ (g, ½ g ε e^{log_var/2})."""
    return mu + array_module(log_var).exp(0.5 * log_var) * eps


def reparameterize_vjp(log_var, eps, g):
    """(∂L/∂μ, ∂L/∂log_var) from g = ∂L/∂z_0."""
    return g, 0.5 * g * eps * array_module(log_var).exp(0.5 * log_var)


# --- the model ----------------------------------------------------------------------------


class LatentODE:
    """Encoder RNN → q(z_0) → latent ODE → decoder, trained on the negative ELBO.

    Parameters
    ----------
    obs_dim, latent_dim, rnn_hidden, ode_hidden, decoder_hidden : int
    noise_std : float
        The fixed likelihood std σ.
    solver : dict
        Keyword arguments for ``odeint`` / ``odeint_vjp`` (method, rtol, atol, n_steps, ...).
    """

    def __init__(self, obs_dim=2, latent_dim=LATENT_DIM, rnn_hidden=RNN_HIDDEN,
                 ode_hidden=ODE_HIDDEN, decoder_hidden=DECODER_HIDDEN, noise_std=NOISE_STD,
                 solver=None):
        self.obs_dim, self.latent_dim, self.noise_std = obs_dim, latent_dim, noise_std
        self.cell = RNNCell(obs_dim + 1, rnn_hidden)
        self.head = Linear(rnn_hidden, 2 * latent_dim)  # → (μ, log_var)
        self.dynamics = mlp_dynamics((latent_dim, ode_hidden, latent_dim), "elu")
        self.decoder = mlp((latent_dim, decoder_hidden, obs_dim), "elu")
        self.solver = dict(method="dopri5", rtol=1e-5, atol=1e-6) if solver is None else solver

    def init(self, rng, dtype=np.float64):
        return {"encoder": {"cell": self.cell.init(rng, dtype), "head": self.head.init(rng, dtype)},
                "dynamics": self.dynamics.init(rng, dtype),
                "decoder": self.decoder.init(rng, dtype)}

    def encode(self, theta, inputs):
        """inputs : (n, B, d + 1) in the encoder's order -> μ, log_var : (B, latent), cache."""
        hs, rnn_caches = rnn_forward(self.cell, theta["encoder"]["cell"], inputs)
        out, head_cache = self.head.forward(theta["encoder"]["head"], 0.0, hs[-1])
        L = self.latent_dim
        return out[:, :L], out[:, L:], (hs, rnn_caches, head_cache)

    def encode_vjp(self, theta, cache, g_mu, g_log_var):
        """Gradient of the encoder's parameters from ∂L/∂μ and ∂L/∂log_var (BPTT)."""
        hs, rnn_caches, head_cache = cache
        xp = array_module(g_mu)
        g_out = xp.concatenate([g_mu, g_log_var], axis=1)
        g_h_last, g_head, _ = self.head.vjp(theta["encoder"]["head"], head_cache, g_out)
        g_hs = xp.concatenate([xp.zeros_like(hs[:-1]), g_h_last[None]], axis=0)
        _, _, g_cell = rnn_vjp(self.cell, theta["encoder"]["cell"], rnn_caches, g_hs)
        return {"cell": g_cell, "head": g_head}

    def loss(self, theta, batch, eps):
        """Negative ELBO averaged over the batch; plain forward code, traceable by autograd."""
        mu, log_var, _ = self.encode(theta, batch.encoder_inputs)
        xp = array_module(mu)
        z0 = reparameterize(mu, log_var, eps)
        z = odeint(self.dynamics, z0, batch.times, theta["dynamics"], **self.solver)
        x_mean = self.decoder.forward(theta["decoder"], 0.0, z)[0]
        log_px = gaussian_log_likelihood(batch.x, x_mean, self.noise_std, batch.mask)
        return xp.mean(kl_standard_normal(mu, log_var) - log_px)

    def loss_and_grad(self, theta, batch, eps, gradient="adjoint"):
        """The negative ELBO, its hand-derived gradient (a tree like theta), and solver stats.

        eps : (B, latent) standard normal draws for the reparameterisation.
        gradient : how to differentiate the ODE solve (see ``refnode.odeint_vjp``).
        """
        B = eps.shape[0]
        mu, log_var, enc_cache = self.encode(theta, batch.encoder_inputs)
        z0 = reparameterize(mu, log_var, eps)
        z, ode_vjp = odeint_vjp(self.dynamics, z0, batch.times, theta["dynamics"],
                                gradient=gradient, **self.solver)
        x_mean, dec_cache = self.decoder.forward(theta["decoder"], 0.0, z)
        log_px = gaussian_log_likelihood(batch.x, x_mean, self.noise_std, batch.mask)
        kl = kl_standard_normal(mu, log_var)
        xp = array_module(kl)
        loss = xp.mean(kl - log_px)
        # Backwards: decoder, ODE, reparameterisation + KL, encoder.
        g_x_mean = -gaussian_log_likelihood_grad(batch.x, x_mean, self.noise_std, batch.mask) / B
        g_z, g_decoder, _ = self.decoder.vjp(theta["decoder"], dec_cache, g_x_mean)
        g_z0, g_dynamics, _ = ode_vjp(g_z)
        g_mu, g_log_var = reparameterize_vjp(log_var, eps, g_z0)
        kl_mu, kl_log_var = kl_standard_normal_grad(mu, log_var)
        g_encoder = self.encode_vjp(theta, enc_cache, g_mu + kl_mu / B, g_log_var + kl_log_var / B)
        grad = {"encoder": g_encoder, "dynamics": g_dynamics, "decoder": g_decoder}
        stats = {"nfe_forward": ode_vjp.forward_stats["nfe"],
                 "nfe_backward": (ode_vjp.backward_stats or {}).get("nfe", 0),
                 "kl": to_float(xp.mean(kl)), "log_px": to_float(xp.mean(log_px))}
        return loss, grad, stats

    def predict(self, theta, encoder_inputs, t_out):
        """Decoded trajectories (len(t_out), B, d) from the posterior mean z_0 = μ.

        ``t_out[0]`` must be the t_0 the encoder inputs were built with (:func:`make_batch`).
        """
        mu, _, _ = self.encode(theta, encoder_inputs)
        return self.decode_latent(theta, self.latent_trajectory(theta, mu, t_out))

    def latent_trajectory(self, theta, z0, t_out):
        """z(t) : (len(t_out), B, latent) from z0 : (B, latent) at t_out[0]."""
        return odeint(self.dynamics, z0, t_out, theta["dynamics"], **self.solver)

    def decode_latent(self, theta, z):
        """The decoder's mean : (..., d) for latent states z : (..., latent)."""
        return self.decoder.forward(theta["decoder"], 0.0, z)[0]

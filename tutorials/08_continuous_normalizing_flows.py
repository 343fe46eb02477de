# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 08 — Continuous normalizing flows
#
# A normalizing flow turns a simple density (a standard normal) into a complicated one by
# an invertible map, and keeps track of the density by the change of variables. Chen et
# al. (2018, §4) let the map be the solution of an ODE; then the log-density obeys an ODE
# too, and it needs only a *trace*, not a determinant. This tutorial:
#
# 1. goes from the change of variables to its instantaneous form, and checks it on linear
#    dynamics where everything is known in closed form;
# 2. builds the paper's planar CNF, whose trace has a closed form;
# 3. replaces the trace by Hutchinson's estimator (FFJORD) and measures its noise;
# 4. trains flows: density matching (Figure 4) and maximum likelihood (Figure 5), with the
#    end time T learned from the gradient ∂L/∂T.
#
# Symbols follow the paper: z the state, θ the parameters, f(t, z, θ) the dynamics (refnode
# puts time first), ℓ(t) = log p(z(t)) − log p(z(t₀)) the accumulated change of
# log-density. `REFNODE_QUICK=1` shrinks the training cells.
#
# Figures go to the directory named by `$REFNODE_FIGURES`, or to a new temporary directory
# when it is unset; run as a script, each prints the path it wrote, and in Jupyter each
# appears under the cell that makes it. (`REFNODE_FIGURES=figures` writes into the
# repository's `figures/`, over any committed figure of the same name.)

# %%
import os

import numpy as np
from autograd import elementwise_grad

import refnode as rn
from refnode.data import toy2d
from refnode.experiments import cnf as experiment
from refnode.figures import figure_directory, show_file
from refnode.models.cnf import (CNFDynamics, ConcatSquashField, PlanarField, augment, cnf_kl,
                                draw_noise)

QUICK = os.environ.get("REFNODE_QUICK") == "1"
FIGURES = figure_directory()   # $REFNODE_FIGURES, else a new temporary directory
np.set_printoptions(precision=4, suppress=True)
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. From the change of variables to its instantaneous form
#
# For an invertible map z₁ = F(z₀), densities transform as
#
#     log p(z₁) = log p(z₀) − log |det ∂F/∂z₀|.
#
# A determinant of a D × D Jacobian costs O(D³); planar flows (Rezende & Mohamed 2015) buy
# a cheap one with a special form, f(z) = z + u h(wᵀz + b), whose Jacobian I + u ψᵀ has
# det = 1 + uᵀψ (matrix determinant lemma). Take one Euler step of an ODE instead,
# F(z) = z + ε f(z): det(I + ε ∂f/∂z) = 1 + ε tr(∂f/∂z) + O(ε²), so
# log|det| = ε tr(∂f/∂z) + O(ε²). Letting ε → 0 gives the paper's Theorem 1,
#
#     d log p(z(t)) / dt = −tr(∂f/∂z(t)),
#
# a trace — O(D) given the Jacobian's diagonal — and no invertibility constraint on f:
# the ODE's solution map is invertible whenever f is Lipschitz.
#
# **Check on linear dynamics.** For f = A z the solution is z(t) = e^{tA} z₀ and
# det e^{tA} = e^{t tr A}, so ℓ(t) = −t tr(A) exactly. A single ConcatSquash layer with its
# time gates switched off is linear, f = σ(b_g) ⊙ (z Wᵀ):

# %%
field = ConcatSquashField(dim=2, hidden=())          # one ConcatSquashLinear layer
theta = field.init(rng)
theta[0] = {**theta[0], "w_g": np.zeros(2), "w_b": np.zeros(2), "b": np.zeros(2)}
A = theta[0]["W"] * (1.0 / (1.0 + np.exp(-theta[0]["b_g"])))[:, None]
f = CNFDynamics(field)                                # state [z, ℓ], shape (B, 3)
states = rn.odeint(f, augment(rng.standard_normal((3, 2))), np.array([0.0, 2.0]), theta)
print("ℓ(2) from the ODE:", states[-1][:, -1], "  −2 tr A:", -2.0 * np.trace(A))

# %% [markdown]
# `CNFDynamics` integrates the pair (z, ℓ) as one array and has a hand-derived VJP, so
# every gradient of `rn.odeint_vjp` (continuous adjoint, discrete, autograd) works on it.
#
# ## 2. The planar CNF: a trace in closed form
#
# The paper's continuous analogue of the planar flow sums M planar units, with their
# parameters produced at each t by a small hypernetwork (refnode follows the reference
# code and takes the mean over units):
#
#     dz/dt = (1/M) Σ_m u_m(t) h(w_m(t)ᵀz + b_m(t)),   tr ∂f/∂z = (1/M) Σ_m h'(·) u_mᵀw_m.
#
# Check the closed form against the trace of the full Jacobian, one VJP per row:

# %%
planar = PlanarField(dim=2, width=8)
theta = planar.init(rng)
z = rng.standard_normal((4, 2))
_, trace, cache = planar.forward(theta, 0.5, z)
rows = [planar.vjp(theta, cache, np.tile(np.eye(2)[i], (4, 1)), np.zeros(4))[0] for i in range(2)]
print("closed form:   ", trace)
print("from Jacobian: ", np.trace(np.stack(rows, axis=1), axis1=1, axis2=2))

# %% [markdown]
# ## 3. Hutchinson's trace estimator (FFJORD)
#
# For a general network, the exact trace needs D products with the Jacobian. FFJORD
# (Grathwohl et al. 2019) uses Hutchinson's identity instead: for noise ε with E[ε] = 0 and
# E[εεᵀ] = I, E[εᵀ J ε] = tr J — one Jacobian-vector product per sample. The noise is drawn
# once per solve and held fixed, so the dynamics stay a deterministic ODE that the
# adjoint can run backwards.
#
# **Its variance.** Write X = εᵀJε = Σ_ij J_ij ε_i ε_j, with independent entries ε_i of
# mean 0, variance 1 and fourth moment m₄ = E[ε_i⁴]. In E[X²] = Σ_ijkl J_ij J_kl
# E[ε_i ε_j ε_k ε_l] the expectation is nonzero only when the indices pair up (i = j and
# k = l; i = k and j = l; i = l and j = k), with a correction m₄ − 3 when all four are equal:
#
#     Var(εᵀJε) = ‖J‖_F² + tr(J²) + (m₄ − 3) Σ_i J_ii²
#               = Σ_ij J_ij² + Σ_ij J_ij J_ji + (m₄ − 3) Σ_i J_ii².
#
# Gaussian noise has m₄ = 3 and Rademacher noise (±1) has m₄ = 1, so
#
#     Gaussian:    Var = Σ_ij J_ij² + Σ_ij J_ij J_ji   (= ½ ‖J + Jᵀ‖_F²)
#     Rademacher:  Var = Σ_ij J_ij² + Σ_ij J_ij J_ji − 2 Σ_i J_ii².
#
# Only the symmetric part of J matters (εᵀJε = εᵀJᵀε), and Rademacher is never worse: it
# removes the diagonal's share. For a *symmetric* J these become the often-quoted
# 2‖J‖_F² and 2 Σ_{i≠j} J_ij²; for a Jacobian, which is rarely symmetric, those are wrong:
# J = [[0, 1], [0, 0]] gives variance 1 with either noise, not 2.
#
# Check the general formula by Monte Carlo on a non-symmetric J. The sample variance s²
# of n draws has a standard error of about sqrt((μ₄ − s⁴)/n), μ₄ the sample's fourth
# central moment; we ask for agreement within 5 standard errors (a correct formula fails
# that by chance with probability below 1e-6).

# %%
def hutchinson_variance(J, distribution):
    """Var(εᵀJε) for noise of independent entries with mean 0 and variance 1."""
    gaussian = np.sum(J * J) + np.sum(J * J.T)
    return gaussian if distribution == "gaussian" else gaussian - 2.0 * np.sum(np.diag(J) ** 2)


def variance_and_standard_error(x):
    """The sample variance of x and its standard error."""
    variance = x.var()
    return variance, np.sqrt((np.mean((x - x.mean()) ** 4) - variance ** 2) / len(x))


J = np.array([[0.5, 2.0, 0.0],
              [-1.0, 1.5, 0.3],
              [0.7, 0.0, -2.0]])                       # not symmetric
n_draws = 20_000 if QUICK else 200_000
print(f"J = [[0, 1], [0, 0]]: Var = {hutchinson_variance(np.array([[0, 1.0], [0, 0]]), 'gaussian')}"
      " (Gaussian and Rademacher alike)")
for distribution in ("rademacher", "gaussian"):
    eps = draw_noise(rng, (n_draws, 3), distribution)
    samples = np.einsum("ni,ij,nj->n", eps, J, eps)     # εᵀJε, one per draw
    measured, standard_error = variance_and_standard_error(samples)
    predicted = hutchinson_variance(J, distribution)
    symmetric_only = 2 * np.sum(J ** 2) if distribution == "gaussian" else \
        2 * (np.sum(J ** 2) - np.sum(np.diag(J) ** 2))
    print(f"{distribution:>10}: Monte Carlo {measured:7.3f} ± {standard_error:.3f} ({n_draws} draws); "
          f"formula {predicted:7.3f}; the symmetric-J formula would say {symmetric_only:.3f}")
    assert abs(measured - predicted) < 5 * standard_error

# %% [markdown]
# Now the estimator inside a network: 2000 noise draws at one point, against the exact
# trace, and each noise's one-sample standard deviation against the formula with the
# network's Jacobian at that point (its rows from D VJPs, as in section 2).

# %%
exact = ConcatSquashField(dim=2, hidden=(16, 16))
theta = exact.init(rng)
z = np.tile(rng.standard_normal((1, 2)), (2000, 1))   # one point, 2000 noise draws
_, true_trace, cache = exact.forward(theta, 0.5, z[:1])
J_net = np.stack([exact.vjp(theta, cache, np.eye(2)[i][None], np.zeros(1))[0][0]
                  for i in range(2)])                 # row i: ∂f_i/∂z
for distribution in ("rademacher", "gaussian"):
    noisy = ConcatSquashField(2, (16, 16), estimator="hutchinson").with_noise(
        draw_noise(rng, z.shape, distribution))
    estimates = noisy.forward(theta, 0.5, z)[1]
    mean_error = estimates.std() / np.sqrt(len(estimates))
    print(f"{distribution:>10}: mean {estimates.mean():+.4f} ± {mean_error:.4f}"
          f"  (exact {true_trace[0]:+.4f}); one-sample std {estimates.std():.4f}, formula "
          f"{np.sqrt(hutchinson_variance(J_net, distribution)):.4f}")

# %% [markdown]
# The gradient of the estimate εᵀ J ε with respect to z and θ involves second derivatives
# of the network. `ConcatSquashField` pushes tangents J ε forward beside the values and
# reverses that pass by hand: an activation y = h(x), ẏ = h'(x) ẋ pulls back as
# x̄ = h'(x) ȳ + h''(x) ẋ ẏ̄ — the second-order term.
#
# ## 4. Density matching (Figure 4)
#
# Given an unnormalized target p̃ = e^{−U}, fit q by minimising KL(q‖p) = E_q[log q − log p̃]
# + log Z. Sample z₀ ~ N(0, I), integrate [z₀, 0] from 0 to T, and log q(z(T)) =
# log N(z₀) + ℓ(T). The end time is a parameter too: T = τ², and ∂L/∂T is the last entry
# of odeint_vjp's time gradient. One loss and its gradient, by hand:

# %%
log_p = toy2d.target_log_density("u1")
field = PlanarField(2, 8)
f = CNFDynamics(field)
theta = f.init(rng)
solver = dict(method="dopri5", rtol=1e-5, atol=1e-5, gradient="adjoint")
loss, g_theta, g_T = cnf_kl(f, theta, 1.0, rng.standard_normal((64, 2)), log_p,
                            elementwise_grad(log_p), solver)
print(f"loss {loss:.4f}, dL/dT {g_T:+.4f}")

# %% [markdown]
# The experiment `refnode reproduce cnf` trains planar NFs of depth K and planar CNFs of
# width M on the targets U1–U4 and compares the final loss. Here a smaller version:

# %%
cfg = experiment.CONFIGS["tiny" if QUICK else "quick"]
density, samples = experiment.density_matching(cfg, rng, plot_rng=rng)
for r in density:
    print(f"{r['target']} {r['model']:>10} size {r['size']:>2}: loss {r['final_loss']:+.4f}"
          f" after {r['iterations']} iterations")
path = os.path.join(FIGURES, "cnf_density_matching.png")
experiment.plot_density_matching(cfg, samples, path)
show_file(path)

# %% [markdown]
# ## 5. Maximum likelihood and sampling (Figure 5)
#
# For data x, integrate [x, 0] backwards from T to 0: log p(x) = log N(z(0)) − ℓ(0).
# Because the flow is an ODE, sampling is the same solve run forwards from noise; the
# figure shows the samples at several t on their way from the normal to the data.

# %%
likelihood, trajectories = experiment.maximum_likelihood(cfg, rng, plot_rng=rng)
for r in likelihood:
    print(f"{r['data']:>12} {r['model']:>11}: held-out NLL {r['test_nll']:.4f}")
path = os.path.join(FIGURES, "cnf_transformation.png")
experiment.plot_transformation(trajectories, path)
show_file(path)

# %% [markdown]
# ## What to take away
#
# * The change of log-density along an ODE is the integral of −tr(∂f/∂z): no determinant,
#   no constraint on f.
# * Exact traces cost D Jacobian products; Hutchinson's costs one, unbiased, with noise
#   fixed for the whole solve. Its variance is ‖J‖_F² + tr(J²) with Gaussian noise, less
#   2 Σ_i J_ii² with Rademacher noise.
# * Every piece — the dynamics, the trace, their VJPs, the end time's gradient — is checked
#   in `tests/test_cnf.py`; the measured comparison with the paper is in `docs/cnf.md`.

# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 04 — The adjoint method, line by line
#
# > "We treat the ODE solver as a black box, and compute gradients using the adjoint
# > sensitivity method (Pontryagin et al., 1962). This approach computes gradients by
# > solving a second, augmented ODE backwards in time, and is applicable to all ODE
# > solvers." — Chen et al. (2018), §2
#
# This tutorial derives the adjoint ODE, runs the paper's Algorithm 2 with refnode's own
# `refnode.adjoint.augmented_dynamics`, derives the sign of the time gradients, extends
# the method to losses on many observation times, and draws a(t) along a trajectory.
# Every claim is checked by a printed number: against refnode's `odeint_vjp` and against
# the discrete gradient (the exact derivative of the computed solution, tutorial 05).
#
# Notation: the paper writes f(z(t), t, θ); refnode writes `f(t, z, theta)` (time first,
# as SciPy and torchdiffeq). The VJPs of tutorial 03 are `f.vjp(t, z, theta, a)`.
#
# Figures go to the directory named by `$REFNODE_FIGURES`, or to a new temporary directory
# when it is unset; run as a script, each prints the path it wrote, and in Jupyter each
# appears under the cell that makes it. (`REFNODE_FIGURES=figures` writes into the
# repository's `figures/`, over any committed figure of the same name.)

# %%
import os

import numpy as np

import refnode as rn
from refnode.adjoint import AugmentedState, augmented_dynamics
from refnode.figures import figure_directory, show
from refnode.nn import mlp_dynamics
from refnode.params import flatten
from refnode.testing import relative_error

QUICK = os.environ.get("REFNODE_QUICK") == "1"
FIGURES = figure_directory()   # $REFNODE_FIGURES, else a new temporary directory
TIGHT = dict(rtol=1e-10, atol=1e-12)
rng = np.random.default_rng(1)

f = mlp_dynamics((2, 16, 2), "tanh", time_dependent=True)   # f(t, z, θ), hand VJPs
theta = f.init(rng)
z0, t0, t1 = np.array([1.0, -0.5]), 0.0, 1.5


def loss_and_gradient(z1):
    """L = ½‖z(t1) − target‖², and ∂L/∂z(t1)."""
    target = np.array([0.5, 0.5])
    return 0.5 * np.sum((z1 - target) ** 2), z1 - target


# %% [markdown]
# ## 1. The adjoint ODE is the chain rule in continuous time
#
# > "The first step is to determining how the gradient of the loss depends on the hidden
# > state z(t) at each instant. This quantity is called the adjoint a(t) = ∂L/∂z(t). Its
# > dynamics are given by another ODE, which can be thought of as the instantaneous
# > analog of the chain rule" — §2, eq. (4)
#
# Derivation in one line. Over a short time ε, z(t + ε) = z(t) + ε f(z(t), t, θ) + O(ε²),
# so ∂z(t+ε)/∂z(t) = I + ε ∂f/∂z + O(ε²) and, by the chain rule,
#
#     a(t) = a(t + ε) (I + ε ∂f/∂z)   ⇒   da/dt = −a(t)ᵀ ∂f(z(t), t, θ)/∂z.
#
# Check: a(s) is the gradient of L with respect to the *initial* state of a solve that
# starts at s. Take it at s ± δ and difference it.

# %%
def adjoint_at(s):
    """a(s) = ∂L/∂z(s): the gradient w.r.t. the initial state of a solve from s to t1."""
    z_s = rn.odeint(f, z0, np.array([t0, s]), theta, **TIGHT)[-1] if s != t0 else z0
    z, vjp = rn.odeint_vjp(f, z_s, np.array([s, t1]), theta, gradient="discrete", **TIGHT)
    g = np.stack([np.zeros(2), loss_and_gradient(z[-1])[1]])
    return vjp(g)[0], z_s


s, delta = 0.6, 1e-4
a_plus, _ = adjoint_at(s + delta)
a_minus, _ = adjoint_at(s - delta)
a_s, z_s = adjoint_at(s)
da_dt = (a_plus - a_minus) / (2 * delta)
print("da/dt by differences:", da_dt)
print("−aᵀ ∂f/∂z (f.vjp):   ", -f.vjp(s, z_s, theta, a_s)[0])
print(f"relative difference {relative_error(da_dt, -f.vjp(s, z_s, theta, a_s)[0]):.1e} "
      "(central differences in s with δ = 1e-4: O(δ²))")

# %% [markdown]
# ## 2. Algorithm 2, line by line
#
# The parameter gradient is "a third integral, which depends on both z(t) and a(t)"
# (eq. 5): dL/dθ = −∫_{t1}^{t0} a(t)ᵀ ∂f/∂θ dt. The paper's Algorithm 2 solves all of it
# as one ODE backwards from t1 to t0, on the augmented state [z, a, θ̄, t̄]:
#
# ```
# s0 = [z(t1), ∂L/∂z(t1), 0_|θ|, −∂L/∂t1]                        initial augmented state
# def aug_dynamics([z(t), a(t), ·, ·], t, θ):
#     return [f(z(t), t, θ), −a(t)ᵀ ∂f/∂z, −a(t)ᵀ ∂f/∂θ, −a(t)ᵀ ∂f/∂t]
# [z(t0), ∂L/∂z(t0), ∂L/∂θ, ∂L/∂t0] = ODESolve(s0, aug_dynamics, t1, t0, θ)
# ```
#
# Why run z backwards too? The adjoint needs z(t) at every time the reverse solver
# visits. Storing the forward trajectory costs memory in proportion to the number of
# steps; recomputing z(t) backwards from z(t1) costs one more channel and O(1) memory.
#
# refnode's `augmented_dynamics(f)` is `aug_dynamics` verbatim, on an `AugmentedState`
# (z, a, theta_bar, t_bar). One evaluation: one forward pass of f and one VJP.

# %%
z1 = rn.odeint(f, z0, np.array([t0, t1]), theta, **TIGHT)[-1]
L, dL_dz1 = loss_and_gradient(z1)
dL_dt1 = float(dL_dz1 @ f(t1, z1, theta))              # explained in section 3
aug = augmented_dynamics(f)
s0 = AugmentedState(z=z1, a=dL_dz1, theta_bar=[{k: 0.0 * v for k, v in layer.items()}
                                                for layer in theta], t_bar=np.array(-dL_dt1))
ds = aug(t1, s0, theta)
print("dz/dt channel equals f:       ", relative_error(ds.z, f(t1, z1, theta)))
print("da/dt channel equals −aᵀ∂f/∂z:", relative_error(ds.a, -f.vjp(t1, z1, theta, dL_dz1)[0]))

# %% [markdown]
# Any ODE solver can integrate it. To show that nothing more is going on, pack the four
# channels into one flat vector and give it to plain `rn.odeint`, from t1 back to t0:

# %%
theta_flat, unflatten = flatten(s0.theta_bar)
P = theta_flat.size


def pack(s):
    return np.concatenate([s.z, s.a, flatten(s.theta_bar)[0], np.atleast_1d(s.t_bar)])


def unpack(y):
    return AugmentedState(y[:2], y[2:4], unflatten(y[4:4 + P]), y[4 + P])


def flat_aug(t, y, theta):
    return pack(aug(t, unpack(y), theta))


s_t0 = unpack(rn.odeint(flat_aug, pack(s0), np.array([t1, t0]), theta, **TIGHT)[-1])

z, vjp = rn.odeint_vjp(f, z0, np.array([t0, t1]), theta, gradient="discrete", **TIGHT)
dz0, dtheta, dt = vjp(np.stack([np.zeros(2), dL_dz1]))
print("z(t0) reconstructed backwards vs z0:   ", relative_error(s_t0.z, z0))
print("∂L/∂z0 (Algorithm 2) vs discrete:      ", relative_error(s_t0.a, dz0))
print("∂L/∂θ  (Algorithm 2) vs discrete:      ", relative_error(s_t0.theta_bar, dtheta))
print("∂L/∂t0 (Algorithm 2) vs discrete:      ", relative_error(s_t0.t_bar, dt[0]))
_, adjoint = rn.odeint_vjp(f, z0, np.array([t0, t1]), theta, gradient="adjoint", **TIGHT)
algorithm_2 = (s_t0.a, s_t0.theta_bar, np.array([float(s_t0.t_bar), dL_dt1]))
print("refnode's adjoint_sweep vs this solve: ",
      relative_error(adjoint(np.stack([np.zeros(2), dL_dz1])), algorithm_2))

# %% [markdown]
# The agreement is at the tolerance's level (about 1e-12 to a few 1e-10 at rtol = 1e-10),
# not at roundoff: the continuous adjoint solves a *different* ODE than the discrete gradient
# differentiates, and both are accurate to about the tolerance.
#
# ## 3. The signs of the time gradients
#
# **End time.** Moving t1 later lets the trajectory run longer before it is observed:
# z(t1 + δ) = z(t1) + δ f(z(t1), t1). So ∂L/∂t1 = a(t1)ᵀ f(z(t1), t1) — with a plus sign.
#
# **Start time.** Moving t0 later starts the *same* initial value later, so the whole
# trajectory shifts later; at a fixed t1 the state is the one that, unshifted, was
# observed δ earlier. Equivalently z(t1) depends on t0 through the flow Φ(t1, t0) z0, and
# ∂Φ/∂t0 z0 = −(∂z(t1)/∂z0) f(z0, t0): ∂L/∂t0 = −a(t0)ᵀ f(z0, t0) — with a minus sign.
#
# Algorithm 2 gets ∂L/∂t0 differently: its time channel starts at −∂L/∂t1 and integrates
# −aᵀ∂f/∂t backwards. Both agree because d/dt [aᵀ f] = −aᵀ(∂f/∂z) f + aᵀ((∂f/∂z) f + ∂f/∂t)
# = aᵀ ∂f/∂t. Check all three against central differences of the loss:

# %%
def loss_at(t_start, t_end):
    z = rn.odeint(f, z0, np.array([t_start, t_end]), theta, rtol=1e-12, atol=1e-14)
    return loss_and_gradient(z[-1])[0]


eps = 1e-4
fd_t1 = (loss_at(t0, t1 + eps) - loss_at(t0, t1 - eps)) / (2 * eps)
fd_t0 = (loss_at(t0 + eps, t1) - loss_at(t0 - eps, t1)) / (2 * eps)
print(f"∂L/∂t1: a(t1)ᵀf = {dL_dt1:+.8f}   central differences {fd_t1:+.8f}")
print(f"∂L/∂t0: −a(t0)ᵀf(z0, t0) = {-float(s_t0.a @ f(t0, z0, theta)):+.8f}   "
      f"time channel = {float(s_t0.t_bar):+.8f}   central differences {fd_t0:+.8f}")

# %% [markdown]
# ## 4. Many observation times
#
# > "If the loss depends directly on the state at multiple observation times, the
# > adjoint state must be updated in the direction of the partial derivative of the loss
# > with respect to each observation." — §2 (and Figure 2)
#
# With L = Σ_i L_i(z(t_i)), run the reverse solve interval by interval, from the last
# time down, and at each t_i add ∂L_i/∂z(t_i) to a (a jump), and subtract
# ∂L_i/∂t_i = ∂L_i/∂z(t_i)ᵀ f from the time channel — at every t_i except t₀.
#
# Why not at t₀: z(t₀) = z₀ whatever t₀ is. The initial value is given *at* the start
# time, so moving t₀ moves the start with it, and the first observation always sees z₀:
# L₀ = L₀(z₀) does not depend on t₀. (At a later t_i, moving t_i slides the observation
# along a fixed trajectory, which is what ∂L_i/∂z(t_i)ᵀ f measures.) So the jump at t₀
# adds ∂L₀/∂z₀ to a — it is part of ∂L/∂z₀ — and nothing to the time channel; ∂L/∂t₀ is
# the time channel alone, which carries how the later observations move when the start
# moves. refnode's `adjoint_sweep` does exactly this: it adds the direct term only at
# t_N … t₁, and its dt[0] is the final time channel. Central differences check it below.
#
# The loop written out, with dense outputs inside each interval so that we can draw a(t):

# %%
t_obs = np.linspace(0.0, 3.0, 7)
z_obs = rn.odeint(f, z0, t_obs, theta, **TIGHT)
targets = 0.3 * rng.standard_normal(z_obs.shape)
g = z_obs - targets                                   # ∂L/∂z(t_i) of L = ½ Σ_i ‖z(t_i) − y_i‖²
n_dense = 8 if QUICK else 40

dL_dt_last = float(g[-1] @ f(t_obs[-1], z_obs[-1], theta))
s = AugmentedState(z_obs[-1], g[-1], s0.theta_bar, np.array(-dL_dt_last))
path_t, path_a, path_z = [], [], []
for i in range(len(t_obs) - 1, 0, -1):
    taus = np.linspace(t_obs[i], t_obs[i - 1], n_dense)
    ys = rn.odeint(flat_aug, pack(s), taus, theta, **TIGHT)
    path_t.append(taus)
    path_a.append(ys[:, 2:4])
    path_z.append(ys[:, :2])
    s = unpack(ys[-1])
    # ∂L/∂t_{i-1}'s direct term; none at t0, where the observation is z0 itself (see above)
    rate = float(g[i - 1] @ f(t_obs[i - 1], z_obs[i - 1], theta)) if i > 1 else 0.0
    s = s._replace(a=s.a + g[i - 1], t_bar=s.t_bar - rate)   # the jump at t_{i-1}

_, vjp = rn.odeint_vjp(f, z0, t_obs, theta, gradient="discrete", **TIGHT)
dz0, dtheta, dt = vjp(g)
_, near_exact = rn.odeint_vjp(f, z0, t_obs, theta, method="dop853", gradient="discrete",
                              rtol=1e-13, atol=1e-15)
ref_z0, ref_theta, ref_t = near_exact(g)
print("many times, vs a near-exact reference (dop853, rtol 1e-13):")
print(f"  ∂L/∂z0: Algorithm 2 {relative_error(s.a, ref_z0):.1e}, "
      f"discrete dopri5 {relative_error(dz0, ref_z0):.1e}")
print(f"  ∂L/∂θ:  Algorithm 2 {relative_error(s.theta_bar, ref_theta):.1e}, "
      f"discrete dopri5 {relative_error(dtheta, ref_theta):.1e}")
print(f"  ∂L/∂t0: Algorithm 2 {relative_error(s.t_bar, ref_t[0]):.1e}, "
      f"discrete dopri5 {relative_error(dt[0], ref_t[0]):.1e}")


def loss_many(t_start):
    """L = ½ Σ_i ‖z(t_i) − y_i‖² with the first time (the start) moved to t_start."""
    z = rn.odeint(f, z0, np.concatenate([[t_start], t_obs[1:]]), theta, rtol=1e-12, atol=1e-14)
    return 0.5 * np.sum((z - targets) ** 2)


fd_t0_many = (loss_many(t0 + eps) - loss_many(t0 - eps)) / (2 * eps)
corrected = float(s.t_bar) - float(g[0] @ f(t0, z0, theta))
print(f"∂L/∂t0 by central differences {fd_t0_many:+.8f}: the time channel {float(s.t_bar):+.8f}; "
      f"with g₀ᵀf(t0, z0) also subtracted at t0 it would be {corrected:+.8f}")
assert abs(float(s.t_bar) - fd_t0_many) < 1e-6 * max(1.0, abs(fd_t0_many))

# %% [markdown]
# Note the ∂L/∂t0 line: at the same tolerance the *discrete* gradient's ∂L/∂t0 is far less
# accurate than its ∂L/∂z0 and ∂L/∂θ, and than Algorithm 2's ∂L/∂t0. It differentiates the computed solution with respect to the step lengths
# (every step point moves when t0 moves), and the derivative of a step's truncation error
# O(h^{p+1}) with respect to h is O(h^p): one power of h worse. The adjoint's time channel
# integrates a smooth quantity instead.

# %%
import matplotlib.pyplot as plt

fig, (ax_z, ax_a) = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
for taus, zs, As in zip(path_t, path_z, path_a):
    for k, color in enumerate(("C0", "C1")):
        ax_z.plot(taus, zs[:, k], color=color)
        ax_a.plot(taus, As[:, k], color=color)
for k, color in enumerate(("C0", "C1")):
    ax_z.plot(t_obs, targets[:, k], "x", color=color, label=f"target y_{k + 1}")
    ax_a.plot([t0], [s.a[k]], "o", color=color, label=f"a_{k + 1}(t0) = ∂L/∂z0_{k + 1}")
for t_i in t_obs[1:]:
    ax_a.axvline(t_i, color="0.85", lw=0.8, zorder=0)
ax_z.set_ylabel("z(t), reconstructed backwards")
ax_a.set_ylabel("a(t) = ∂L/∂z(t)")
ax_a.set_xlabel("t  (the adjoint runs right to left; it jumps by ∂L/∂z(t_i) at each t_i)")
ax_z.legend(fontsize=8)
ax_a.legend(fontsize=8)
fig.tight_layout()
path = os.path.join(FIGURES, "tutorial_04_adjoint_path.png")
show(fig, path)

# %% [markdown]
# ## 5. What it costs
#
# The reverse solve holds one augmented state, whatever the number of steps: O(1)
# memory (benchmarks/bench_memory.py measures it against the discrete gradient's O(L)).
# It costs one forward pass and one VJP of f per evaluation, and its own step-size
# control. Two refinements that `odeint_vjp` offers:
#
# * `Adjoint(reset=True)` (default) restarts z from the stored forward z(t_i) at each observation
#   time, instead of trusting the backward reconstruction (tutorial 05 shows why);
# * `Adjoint(seminorm=True)` lets only z and a control the reverse step (Kidger et al. 2021): θ̄
#   and t̄ only accumulate integrals, nothing feeds back from them.

# %%
wide = mlp_dynamics((4, 64, 4), "tanh", time_dependent=True)
theta_wide = wide.init(np.random.default_rng(4))
z_batch = np.random.default_rng(5).standard_normal((16, 4))
for seminorm in (False, True):
    z, adj = rn.odeint_vjp(wide, z_batch, np.array([0.0, 2.0]), theta_wide, rtol=1e-6,
                           atol=1e-8, gradient=rn.Adjoint(seminorm=seminorm))
    adj(np.ones_like(z))
    print(f"seminorm={seminorm!s:5}: reverse NFE {adj.backward_stats['nfe']:3d} "
          f"(forward NFE {adj.forward_stats['nfe']}), {flatten(theta_wide)[0].size} "
          "parameters")

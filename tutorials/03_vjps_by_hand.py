# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 03 — Vector-Jacobian products by hand
#
# The adjoint method (tutorial 04) never forms a Jacobian. It needs only products of a
# row vector with one:
#
# > "The vector-Jacobian products a(t)ᵀ ∂f/∂z and a(t)ᵀ ∂f/∂θ in (4) and (5) can be
# > efficiently evaluated by automatic differentiation, at a time cost similar to that of
# > evaluating f." — Chen et al. (2018), §2
#
# refnode does not use automatic differentiation for its layers: each one has a VJP
# derived by hand, next to its forward pass (`refnode/nn`). This tutorial derives two of
# them — `Linear` and `Tanh` — composes them into the MLP dynamics of the paper's demos,
# and checks every result two ways:
#
# 1. against autograd (an independent implementation): agreement ~1e-15;
# 2. with the dot-product test ⟨g, J v⟩ = ⟨Jᵀ g, v⟩, whose left side comes from central
#    differences — no second implementation needed: agreement to about 1e-10, the
#    accuracy of the differences (section 5).
#
# Finally we plant a bug and watch the dot-product test find it.
#
# Figures go to the directory named by `$REFNODE_FIGURES`, or to a new temporary directory
# when it is unset; run as a script, each prints the path it wrote, and in Jupyter each
# appears under the cell that makes it. (`REFNODE_FIGURES=figures` writes into the
# repository's `figures/`, over any committed figure of the same name.)

# %%
import os
import timeit

import autograd.numpy as anp
import numpy as np
from autograd import make_vjp

from refnode.figures import figure_directory, show
from refnode.nn import Linear, Tanh, mlp_dynamics
from refnode.testing import central_difference, check_vjp, relative_error

QUICK = os.environ.get("REFNODE_QUICK") == "1"  # fewer timing rounds; the rest is cheap
FIGURES = figure_directory()   # $REFNODE_FIGURES, else a new temporary directory
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. What a VJP is
#
# For y = F(x) with Jacobian J = ∂y/∂x, and a loss L(y), the chain rule gives
# ∂L/∂x = Jᵀ ∂L/∂y. Write g = ∂L/∂y (the *cotangent*, same shape as y); the VJP maps
# g ↦ gᵀJ, a vector shaped like x. Reverse-mode differentiation is a chain of VJPs, run
# from the loss backwards: it costs a small multiple of the forward pass, whatever the
# number of parameters. The adjoint method is the same idea in continuous time.
#
# ## 2. Linear: y = x Wᵀ + b
#
# With x of shape (B, n_in), W of shape (n_out, n_in), y_bj = Σ_k x_bk W_jk + b_j. So
#
# * ∂y_bj/∂x_bk = W_jk       ⇒  (g_x)_bk = Σ_j g_bj W_jk,   g_x = g W
# * ∂y_bj/∂W_jk = x_bk       ⇒  (g_W)_jk = Σ_b g_bj x_bk,   g_W = gᵀ x (summed over the batch)
# * ∂y_bj/∂b_j = 1           ⇒  g_b = Σ_b g_b·
#
# In code:

# %%
def linear_vjp(W, x, g):
    """(g_x, g_W, g_b) of y = x Wᵀ + b, derived above."""
    return g @ W, g.T @ x, g.sum(axis=0)


B, n_in, n_out = 5, 3, 4
layer = Linear(n_in, n_out)
theta = layer.init(rng)
x, g = rng.standard_normal((B, n_in)), rng.standard_normal((B, n_out))
by_hand = linear_vjp(theta["W"], x, g)

y, cache = layer.forward(theta, 0.0, x)
g_x, g_theta, _ = layer.vjp(theta, cache, g)
print("by hand vs refnode.nn.Linear:",
      relative_error((g_x, g_theta["W"], g_theta["b"]), by_hand))

vjp_fn, _ = make_vjp(lambda args: args[0] @ args[1].T + args[2])((x, theta["W"], theta["b"]))
print("by hand vs autograd:         ", relative_error(by_hand, vjp_fn(g)))

# %% [markdown]
# ## 3. Tanh: y = tanh(x), elementwise
#
# The Jacobian is diagonal, with tanh'(x) = 1 − tanh²(x) = 1 − y². So g_x = g ⊙ (1 − y²).
# Writing it with y rather than x lets the VJP reuse the forward pass's output: the
# layer caches y, nothing is recomputed.

# %%
def tanh_vjp(y, g):
    return g * (1.0 - y * y)


x = rng.standard_normal((B, n_out))
y, cache = Tanh().forward({}, 0.0, x)
vjp_fn, _ = make_vjp(anp.tanh)(x)
print("tanh by hand vs refnode:  ", relative_error(tanh_vjp(y, g), Tanh().vjp({}, cache, g)[0]))
print("tanh by hand vs autograd: ", relative_error(tanh_vjp(y, g), vjp_fn(g)))

# %% [markdown]
# ## 4. The MLP dynamics: compose in reverse
#
# The paper's demo dynamics is f(z) = tanh(z W1ᵀ + b1) W2ᵀ + b2. Forward: h = z W1ᵀ + b1,
# u = tanh(h), y = u W2ᵀ + b2. Reverse, with a = ∂L/∂y (the adjoint, in tutorial 04):
# the last layer first, each VJP feeding the next one down.

# %%
def mlp_vjp(W1, b1, W2, b2, z, a):
    """(aᵀ∂f/∂z, aᵀ∂f/∂(W1, b1, W2, b2)) by chaining the two layer VJPs."""
    u = np.tanh(z @ W1.T + b1)                 # forward, keeping what the VJP needs
    g_u, g_W2, g_b2 = linear_vjp(W2, u, a)     # through the last Linear
    g_h = tanh_vjp(u, g_u)                     # through tanh
    g_z, g_W1, g_b1 = linear_vjp(W1, z, g_h)   # through the first Linear
    return g_z, (g_W1, g_b1, g_W2, g_b2)


D, H = 2, 50
f = mlp_dynamics((D, H, D), "tanh")            # refnode's layers with hand VJPs
theta = f.init(rng)
W1, b1, W2, b2 = theta[0]["W"], theta[0]["b"], theta[2]["W"], theta[2]["b"]
z, a = rng.standard_normal((B, D)), rng.standard_normal((B, D))

g_z, g_params = mlp_vjp(W1, b1, W2, b2, z, a)
a_z, a_theta, a_t = f.vjp(0.0, z, theta, a)
print("MLP by hand vs f.vjp:   ", relative_error(
    (g_z, g_params), (a_z, (a_theta[0]["W"], a_theta[0]["b"], a_theta[2]["W"], a_theta[2]["b"]))))

f_autograd = lambda args: anp.tanh(args[0] @ args[1].T + args[2]) @ args[3].T + args[4]
vjp_fn, _ = make_vjp(f_autograd)((z, W1, b1, W2, b2))
print("MLP by hand vs autograd:", relative_error((g_z, *g_params), vjp_fn(a)))
print("aᵀ∂f/∂t of autonomous dynamics:", float(a_t))

# %% [markdown]
# The paper's claim of "a time cost similar to that of evaluating f", measured. Counting
# the work: per Linear layer the VJP does two matrix products (g W and gᵀx) where the
# forward does one, and through tanh it multiplies by 1 − y² where the forward evaluates
# tanh. So the VJP is a small multiple of the forward pass, whatever the number of
# parameters. *Which* multiple, the clock decides: it depends on the BLAS library and how
# many threads it uses, on the matrix sizes (small products are dominated by per-call
# overhead), and on what else the machine is doing. The number printed below is this
# machine's, in this run, not a constant of the method.
#
# A timing worth printing is measured with care: one call first to warm up (the first
# call pays for allocations and caches), then `repeats` rounds of `number` calls, forward
# and VJP interleaved so that a burst of load from elsewhere hits both alike, and the
# median over the rounds. The range shows how steady the machine was.

# %%
def seconds_per_call(fn, number):
    """Mean wall time of one call of ``fn`` over ``number`` consecutive calls."""
    return timeit.timeit(fn, number=number) / number


f_big = mlp_dynamics((32, 64, 32), "tanh")
theta_big = f_big.init(rng)
z_big, a_big = rng.standard_normal((512, 32)), rng.standard_normal((512, 32))
_, cache_big = f_big.net.forward(theta_big, 0.0, z_big)
forward = lambda: f_big.net.forward(theta_big, 0.0, z_big)    # f, keeping what the VJP needs
reverse = lambda: f_big.net.vjp(theta_big, cache_big, a_big)  # the VJP alone, from that cache
forward(), reverse()                                          # warm-up
number, repeats = (20, 5) if QUICK else (100, 9)
t_forward, t_vjp = [], []
for _ in range(repeats):
    t_forward.append(seconds_per_call(forward, number))
    t_vjp.append(seconds_per_call(reverse, number))
ratios = np.array(t_vjp) / np.array(t_forward)
print(f"per call (medians): forward {np.median(t_forward) * 1e3:.3f} ms, "
      f"VJP {np.median(t_vjp) * 1e3:.3f} ms")
print(f"VJP / forward on this machine, {repeats} rounds of {number} calls: "
      f"median {np.median(ratios):.2f}x, range {ratios.min():.2f}–{ratios.max():.2f}x")

# %% [markdown]
# ## 5. The dot-product test
#
# Comparing with autograd needs autograd. The dot-product test needs nothing but the
# forward function: for random g and v,
#
#     ⟨g, J v⟩ = ⟨Jᵀ g, v⟩,
#
# and J v is a directional derivative, which central differences approximate with error
# O(ε²) (truncation) + O(u/ε) (roundoff, u ≈ 1.1e-16). The sum is smallest near
# ε ≈ u^{1/3} ≈ 5e-6. The plot below measures that V shape on the MLP.

# %%
def mlp_forward(z, W1, b1, W2, b2):
    return np.tanh(z @ W1.T + b1) @ W2.T + b2


args = (z, W1, b1, W2, b2)
v = tuple(rng.standard_normal(np.shape(x)) for x in args)
exact = sum(np.sum(gi * vi) for gi, vi in zip((g_z, *g_params), v))
epsilons = np.logspace(-12, -1, 23)
errors = [abs(float(np.sum(a * central_difference(lambda p: mlp_forward(*p), args, v, eps)))
              - exact) / abs(exact) for eps in epsilons]
best = int(np.argmin(errors))
print(f"best ε = {epsilons[best]:.1e}, relative error {errors[best]:.1e}; "
      f"at ε = 1e-6: {errors[int(np.argmin(abs(np.log10(epsilons) + 6)))]:.1e}")

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(5, 3.5))
ax.loglog(epsilons, errors, "o-", label="measured")
ax.loglog(epsilons, epsilons ** 2, "--", label="O(ε²) truncation")
ax.loglog(epsilons, 1e-17 / epsilons, ":", label="O(u/ε) roundoff")
ax.set_xlabel("ε")
ax.set_ylabel("relative error of ⟨g, J v⟩")
ax.set_ylim(1e-12, 1)
ax.legend()
ax.set_title("dot-product test: central differences")
fig.tight_layout()
path = os.path.join(FIGURES, "tutorial_03_dot_product_eps.png")
show(fig, path)

# %% [markdown]
# `refnode.testing.check_vjp` packages the test (ε = 1e-6, tolerance 1e-6), for any
# function of any number of array or pytree arguments:

# %%
def mlp_forward_vjp(a, z, W1, b1, W2, b2):
    """One gradient per argument of mlp_forward, as check_vjp expects."""
    g_z, g_params = mlp_vjp(W1, b1, W2, b2, z, a)
    return (g_z, *g_params)


report = check_vjp(mlp_forward, mlp_forward_vjp, args, cotangent=a)
print(f"check_vjp: expected {report.expected:.10f}, got {report.got:.10f}, "
      f"relative error {report.rel_err:.1e}")

# %% [markdown]
# ## 6. Catching a bug
#
# The most common mistake in a hand VJP is a transpose: g Wᵀ instead of g W (the shapes
# even agree when W is square). Plant it in a square layer and run the test:

# %%
W = rng.standard_normal((3, 3))
wrong_vjp = lambda g, x, W: (g @ W.T, g.T @ x)   # BUG: should be g @ W
try:
    check_vjp(lambda x, W: x @ W.T, wrong_vjp, (rng.standard_normal((4, 3)), W))
    print("not caught (this would be a failure of the test)")
except AssertionError as err:
    print(str(err).splitlines()[2])
    print("caught, and localised:", [line.strip() for line in str(err).splitlines()
                                     if "<-- wrong" in line])

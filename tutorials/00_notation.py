# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 00 — Notation: one symbol table, three argument orders
#
# Three vocabularies meet in refnode. The paper (Chen et al., NeurIPS 2018) writes the
# state z, the adjoint a and the loss L. The numerical-analysis books (Hairer, Nørsett,
# Wanner, *Solving ODEs I*, "HNW") write the state y, the step h and the tableau A, b, c.
# Libraries disagree on the argument order of the dynamics. This tutorial is the table that
# connects them, and checks every mapping by running it.
#
# It is fast; `REFNODE_QUICK=1` only draws fewer adjoint arrows in the last figure.
# Figures go to the directory named by `$REFNODE_FIGURES`, or to a new temporary directory
# when it is unset; run as a script, each prints the path it wrote, and in Jupyter each
# appears under the cell that makes it. (`REFNODE_FIGURES=figures` writes into the
# repository's `figures/`, over any committed figure of the same name.)

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import refnode as rn
from refnode.figures import figure_directory, show
from refnode.reference.linear import expm
from refnode.rk_step import rk_step

QUICK = os.environ.get("REFNODE_QUICK") == "1"
FIGURES = figure_directory()   # $REFNODE_FIGURES, else a new temporary directory

# %% [markdown]
# ## 1. The symbol table
#
# | meaning                          | paper          | HNW (solvers)     | refnode code                          |
# |----------------------------------|----------------|-------------------|---------------------------------------|
# | state                            | z(t)           | y                 | `z`, `z0` (API), `y` (solver modules) |
# | time, output times               | t, t₀ … t_N    | t, x in places    | `t` (array of output times)           |
# | parameters                       | θ              | —                 | `theta` (array or pytree)             |
# | dynamics                         | f(z(t), t, θ)  | f(x, y)           | `f(t, z, theta)`                      |
# | adjoint ∂L/∂z(t)                 | a(t)           | —                 | `a`; `dL_dz` at the output times      |
# | loss                             | L              | —                 | `L`; its gradients `dz0, dtheta, dt`  |
# | step size                        | —              | h                 | `h`, `step_size`                      |
# | stages                           | —              | k_i               | `k` (list of arrays)                  |
# | Runge–Kutta matrix, weights, nodes | —            | A = (a_ij), b, c  | `tableau.A`, `tableau.b`, `tableau.c` |
# | embedded (error) weights         | —              | b̂                 | `tableau.b_hat`                       |
# | tolerances                       | "tol"          | Atol, Rtol        | `atol`, `rtol`                        |
#
# The adjoint's equations in the paper's symbols: da/dt = −aᵀ ∂f/∂z and
# ∂L/∂θ = −∫_{t₁}^{t₀} aᵀ ∂f/∂θ dt. In refnode, `f.vjp(t, z, theta, a)` returns the three
# products aᵀ∂f/∂z, aᵀ∂f/∂θ, aᵀ∂f/∂t that those integrals need.

# %% [markdown]
# ## 2. HNW's symbols in code: one step of RK4 by hand
#
# HNW I §II.1: k_i = f(t + c_i h, y + h Σ_j a_ij k_j), y₁ = y + h Σ_i b_i k_i.

# %%
A_spiral = np.array([[-0.1, 2.0], [-2.0, -0.1]])


def f(t, z, theta):
    """refnode's order: time, state, parameters. The linear spiral dz/dt = z θ."""
    return z @ theta


tableau = rn.get_method("rk4")
A, b, c = tableau.A_numpy(), np.array(tableau.b_float), np.array(tableau.c_float)
t0, y, h = 0.0, np.array([2.0, 0.0]), 0.1
k = []
for i in range(tableau.stages):
    k.append(f(t0 + c[i] * h, y + h * sum(A[i, j] * k[j] for j in range(i)), A_spiral))
y1_by_hand = y + h * sum(b[i] * k[i] for i in range(tableau.stages))
y1_refnode = rk_step(f, tableau, t0, y, h, A_spiral, f(t0, y, A_spiral))[0]
print("RK4 step by hand:", y1_by_hand, " rk_step:", y1_refnode)
assert np.allclose(y1_by_hand, y1_refnode, rtol=1e-15, atol=1e-15)

# %% [markdown]
# ## 3. Three argument orders
#
# | who                                   | dynamics signature         |
# |---------------------------------------|----------------------------|
# | refnode, SciPy `solve_ivp`, torchdiffeq, diffrax | `f(t, z, theta)` (SciPy: `fun(t, y, *args)`; diffrax: `vector_field(t, y, args)`) |
# | the paper                             | `f(z(t), t, θ)`            |
# | JAX `jax.experimental.ode.odeint`, autograd's examples | `func(y, t, *args)` |
#
# Porting code means swapping the first two arguments. Each mapping below is one lambda,
# checked against refnode's own solve of the same problem.

# %%
t = np.linspace(0.0, 2.0, 5)
z0 = np.array([2.0, 0.0])
reference = rn.odeint(f, z0, t, A_spiral, rtol=1e-10, atol=1e-12)
exact = np.stack([z0 @ expm(A_spiral * s) for s in t])       # z(t) = z0 e^{θ t} (rows)
print("refnode vs the matrix exponential:", np.abs(reference - exact).max())
assert np.abs(reference - exact).max() < 1e-8


def f_paper(z, t, theta):
    """The paper's order: state, time, parameters."""
    return z @ theta


from_paper = rn.odeint(lambda t, z, theta: f_paper(z, t, theta), z0, t, A_spiral,
                       rtol=1e-10, atol=1e-12)
assert np.allclose(from_paper, reference, rtol=0, atol=1e-12)
print("paper order f(z, t, θ) -> refnode: same states")

# %% [markdown]
# SciPy uses refnode's order (extra arguments through `args=`), so no lambda is needed
# beyond packing θ:

# %%
try:
    from scipy.integrate import solve_ivp
except ImportError:
    print("SciPy not installed: skipping the solve_ivp check")
else:
    sol = solve_ivp(f, (t[0], t[-1]), z0, t_eval=t, args=(A_spiral,), rtol=1e-10, atol=1e-12)
    assert np.allclose(sol.y.T, reference, rtol=0, atol=1e-8)
    print("SciPy solve_ivp(fun(t, y, *args)): same states")

# %% [markdown]
# JAX and autograd's examples write `func(y, t, *args)`. A function in that order becomes
# refnode dynamics by swapping back; the check runs JAX itself when it is installed.

# %%
def func_jax_order(y, t, theta):
    """JAX/autograd order: state, time, then the extra arguments."""
    return y @ theta


from_jax_order = rn.odeint(lambda t, z, theta: func_jax_order(z, t, theta), z0, t, A_spiral,
                           rtol=1e-10, atol=1e-12)
assert np.allclose(from_jax_order, reference, rtol=0, atol=1e-12)
try:
    import jax
    jax.config.update("jax_enable_x64", True)
    from jax.experimental.ode import odeint as jax_odeint
except ImportError:
    print("JAX not installed: skipping the jax.experimental.ode.odeint check")
else:
    zs = jax_odeint(func_jax_order, jax.numpy.asarray(z0), jax.numpy.asarray(t),
                    jax.numpy.asarray(A_spiral), rtol=1e-10, atol=1e-12)
    assert np.allclose(np.asarray(zs), reference, rtol=0, atol=1e-8)
    print("JAX odeint(func(y, t, *args)): same states")

# %% [markdown]
# torchdiffeq takes `func(t, y)` — refnode's order without θ (parameters live in an
# `nn.Module`); a closure carries θ.

# %%
try:
    import torch
    from torchdiffeq import odeint as torch_odeint
except ImportError:
    print("torchdiffeq not installed: skipping its check")
else:
    theta_torch = torch.tensor(A_spiral)
    zs = torch_odeint(lambda t, z: z @ theta_torch, torch.tensor(z0), torch.tensor(t),
                      rtol=1e-10, atol=1e-12)
    assert np.allclose(zs.numpy(), reference, rtol=0, atol=1e-8)
    print("torchdiffeq odeint(func(t, y)): same states")

# %% [markdown]
# ## 4. The adjoint a(t), drawn
#
# For L = ⟨g, z(t₁)⟩ the adjoint is a(t) = ∂L/∂z(t). Here the dynamics is linear,
# dz/dt = z θ in rows, so a(t) = e^{θ (t₁ − t)} g (from da/dt = −θ a, the row form of
# −aᵀ∂f/∂z) and a(t₀) must equal refnode's ∂L/∂z₀.

# %%
t1 = 2.0
g = np.array([1.0, 0.5])
ts = np.linspace(0.0, t1, 9 if QUICK else 13)
zs = rn.odeint(f, z0, ts, A_spiral, rtol=1e-10, atol=1e-12)
adjoints = np.stack([expm(A_spiral * (t1 - s)) @ g for s in ts])
_, vjp = rn.odeint_vjp(f, z0, np.array([0.0, t1]), A_spiral, rtol=1e-10, atol=1e-12)
dz0, dtheta, dt = vjp(np.stack([np.zeros(2), g]))
print("a(t0) by the formula:", adjoints[0], " refnode's dL/dz0:", dz0)
assert np.allclose(adjoints[0], dz0, rtol=1e-7)

# %%
dense_t = np.linspace(0.0, t1, 200)
path = rn.odeint(f, z0, dense_t, A_spiral, rtol=1e-9, atol=1e-11)
fig, ax = plt.subplots(figsize=(5, 5))
ax.plot(path[:, 0], path[:, 1], color="0.3", lw=1.5, label="z(t)")
scale = 0.25 / np.abs(adjoints).max()
ax.quiver(zs[:, 0], zs[:, 1], scale * adjoints[:, 0], scale * adjoints[:, 1], color="C3",
          angles="xy", scale_units="xy", scale=1.0, width=0.006, label="a(t) = ∂L/∂z(t)")
ax.plot(*z0, "o", color="C0", label="z(t₀)")
ax.plot(*zs[-1], "s", color="C1", label="z(t₁); a(t₁) = g")
ax.set_xlabel("z₁")
ax.set_ylabel("z₂")
ax.set_aspect("equal")
ax.legend(loc="center", fontsize=8)
ax.set_title("The adjoint along a trajectory (L = ⟨g, z(t₁)⟩)")
fig.tight_layout()
path_png = os.path.join(FIGURES, "notation_adjoint.png")
show(fig, path_png)

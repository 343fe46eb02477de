# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 01 — A Runge–Kutta method is a table of numbers
#
# A neural ODE is only as good as the solver that integrates it. Every solver in refnode is
# an *explicit Runge–Kutta method*, and every such method is fully described by a small
# table of coefficients, the **Butcher tableau**. This tutorial:
#
# 1. reads a tableau as data;
# 2. takes one Runge–Kutta step by hand and checks it against `refnode.rk_step`;
# 3. checks the order conditions a tableau must satisfy;
# 4. measures the order of convergence of every method refnode ships
#    (the figure `convergence.png`).
#
# References: E. Hairer, S. P. Nørsett, G. Wanner, *Solving Ordinary Differential
# Equations I* (2nd ed., Springer 1993), cited as HNW I. Symbols follow HNW:
# `y` the state, `h` the step, `A, b, c` the tableau, `k_i` the stages. (The paper and
# refnode's adjoint modules write the state as `z`.)
#
# Run as a script (`python tutorials/01_runge_kutta_from_a_tableau.py`) or open it as a
# notebook (`refnode tutorials --notebooks DIR`). `REFNODE_QUICK=1` shrinks the heavy
# cells.
#
# Figures go to the directory named by `$REFNODE_FIGURES`, or to a new temporary directory
# when it is unset; run as a script, each prints the path it wrote, and in Jupyter each
# appears under the cell that makes it. (`REFNODE_FIGURES=figures` writes into the
# repository's `figures/`, over any committed figure of the same name.)

# %%
import os
from fractions import Fraction

import numpy as np

import refnode as rn
from refnode.figures import figure_directory, show
from refnode.rk_step import rk_step

QUICK = os.environ.get("REFNODE_QUICK") == "1"
FIGURES = figure_directory()   # $REFNODE_FIGURES, else a new temporary directory
np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## 1. The tableau as data
#
# HNW I, §II.1, Definition 1.1: an explicit s-stage Runge–Kutta method advances
# y' = f(t, y) from (t₀, y₀) by one step h as
#
#     k_i = f(t₀ + c_i h,  y₀ + h Σ_{j<i} a_ij k_j),   i = 1..s
#     y₁  = y₀ + h Σ_i b_i k_i                                        (HNW I, (1.8))
#
# with the nodes c_i = Σ_j a_ij (HNW I, (1.9)). So a method *is* (A, b, c). In refnode
# each method is one `ButcherTableau`, with exact fractions where the literature has them:

# %%
rk4 = rn.METHODS["rk4"]
print(f"{rk4.name}: s = {rk4.stages} stages, order p = {rk4.order}; source: {rk4.reference}")
for c_i, row in zip(rk4.c, rk4.A):
    print(f"  {str(c_i):>4} | " + "  ".join(f"{str(a):>4}" for a in row))
print("  -----+" + "-" * 24)
print("       | " + "  ".join(f"{str(b):>4}" for b in rk4.b))

# %% [markdown]
# The nodes are the row sums, exactly (a check every tableau runs when it is built):

# %%
for name, tableau in rn.METHODS.items():
    row_sums = [sum(Fraction(a) for a in row) for row in tableau.A]
    gap = max(abs(float(s) - float(c)) for s, c in zip(row_sums, tableau.c))
    print(f"  {name:11s} max |c_i - Σ_j a_ij| = {gap:.1e}")
    assert gap < 1e-14

# %% [markdown]
# ## 2. One step by hand
#
# The formulas above as plain loops, on a test problem: the damped rotation whose speed
# grows with time ("chirp"), y' = f(t, y) with
#
#     f(t, (x, y)) = ((1 + t) y - α x,  -(1 + t) x - α y),   α = 0.1.
#
# Its exact solution turns by φ(t) = t + t²/2 and shrinks by e^{-αt}; we use it below.

# %%
ALPHA = 0.1


def chirp(t, y, theta=None):
    """y' = f(t, y) of the chirp; y of shape (..., 2)."""
    u, v = y[..., 0], y[..., 1]
    return np.stack([(1 + t) * v - ALPHA * u, -(1 + t) * u - ALPHA * v], axis=-1)


def chirp_exact(t):
    """The solution from y(0) = (1, 0) at the times t: shape (len(t), 2)."""
    phi = t + t * t / 2
    return np.exp(-ALPHA * t)[:, None] * np.stack([np.cos(phi), -np.sin(phi)], axis=-1)


def step_by_hand(f, A, b, c, t0, y0, h):
    """One explicit RK step, literally HNW I (1.8)."""
    k = []
    for i in range(len(b)):
        y_stage = y0 + h * sum(float(A[i][j]) * k[j] for j in range(i)) if i else y0
        k.append(f(t0 + float(c[i]) * h, y_stage))
    return y0 + h * sum(float(b_i) * k_i for b_i, k_i in zip(b, k))


y0, t0, h = np.array([1.0, 0.0]), 0.3, 0.1
by_hand = step_by_hand(chirp, rk4.A, rk4.b, rk4.c, t0, y0, h)
y1, _, stages = rk_step(chirp, rk4, t0, y0, h, None, chirp(t0, y0))
print(f"by hand:          {by_hand}")
print(f"refnode.rk_step:  {y1}   ({len(stages)} stages)")
print(f"difference:       {np.max(np.abs(by_hand - y1)):.1e}")
assert np.max(np.abs(by_hand - y1)) < 1e-15

# %% [markdown]
# ## 3. Order conditions
#
# A method has order p if its local error is O(h^{p+1}) for every smooth f. Expanding both
# the exact and the numerical solution in Taylor series and matching terms gives one
# condition per rooted tree τ with at most p vertices (Butcher 1964; HNW I, §II.2,
# Theorem 2.13):
#
#     Σ_i b_i Φ_i(τ) = 1 / γ(τ).
#
# There are 1, 1, 2, 4 trees with 1, 2, 3, 4 vertices (HNW I, Table 2.1), so order 4
# needs eight conditions. Written out with c_i = Σ_j a_ij:

# %%
ORDER_CONDITIONS = [  # (order, name, Σ_i b_i Φ_i(τ) as a function of (A, b, c), 1/γ(τ))
    (1, "Σ b_i", lambda A, b, c: sum(b), Fraction(1)),
    (2, "Σ b_i c_i", lambda A, b, c: dot(b, c), Fraction(1, 2)),
    (3, "Σ b_i c_i²", lambda A, b, c: dot(b, [x * x for x in c]), Fraction(1, 3)),
    (3, "Σ b_i a_ij c_j", lambda A, b, c: dot(b, matvec(A, c)), Fraction(1, 6)),
    (4, "Σ b_i c_i³", lambda A, b, c: dot(b, [x ** 3 for x in c]), Fraction(1, 4)),
    (4, "Σ b_i c_i a_ij c_j", lambda A, b, c: dot([x * y for x, y in zip(b, c)], matvec(A, c)),
     Fraction(1, 8)),
    (4, "Σ b_i a_ij c_j²", lambda A, b, c: dot(b, matvec(A, [x * x for x in c])), Fraction(1, 12)),
    (4, "Σ b_i a_ij a_jk c_k", lambda A, b, c: dot(b, matvec(A, matvec(A, c))), Fraction(1, 24)),
]


def dot(u, v):
    return sum(x * y for x, y in zip(u, v))


def matvec(A, v):
    return [dot(row, v) for row in A]


def order_up_to_4(tableau, weights):
    """The largest p <= 4 for which every condition of order <= p holds."""
    exact = all(isinstance(x, (int, Fraction)) for row in tableau.A for x in row)
    p = 0
    for order in range(1, 5):
        for o, _, lhs, rhs in ORDER_CONDITIONS:
            if o != order:
                continue
            value = lhs(tableau.A, weights, tableau.c)
            holds = value == rhs if exact else abs(float(value) - float(rhs)) < 1e-13
            if not holds:
                return p
        p = order
    return p


print("For rk4 (exact fractions):")
for order, name, lhs, rhs in ORDER_CONDITIONS:
    print(f"  order {order}: {name:22s} = {str(lhs(rk4.A, rk4.b, rk4.c)):>5}   1/γ = {rhs}")

# %% [markdown]
# Every method, and for the embedded pairs also the second weight vector b̂ (its order p̂
# is what adaptive step control is built on, tutorial 02). Beyond order 4 the number of
# trees grows fast (9, 20, 48, 115 of orders 5..8); `tests/test_tableau.py` generates them
# all and checks each method up to its declared order.

# %%
print("  order conditions checked up to order 4: the highest order that holds")
print(f"  {'method':11s} {'p':>2} {'b holds to':>10} {'p_hat':>6} {'b_hat holds to':>14}")
for name, tableau in rn.METHODS.items():
    p4 = order_up_to_4(tableau, tableau.b)
    line = f"  {name:11s} {tableau.order:>2} {p4:>10}"
    assert p4 == min(tableau.order, 4), (name, p4)
    if tableau.adaptive:
        p_hat4 = order_up_to_4(tableau, tableau.b_hat)
        assert p_hat4 == min(tableau.error_order, 4), (name, p_hat4)
        line += f" {tableau.error_order:>6} {p_hat4:>14}"
    print(line)

# %% [markdown]
# ## 4. Measured order of convergence
#
# Order p of the local error gives a global error O(h^p) on a fixed interval (HNW I,
# §II.3). We check that on the chirp: solve on [0, 4] with n equal steps per output
# interval (outputs at t = 0, 1, 2, 3, 4), take the largest error over the outputs, halve
# h, repeat. On a log-log plot the error falls on a line of slope p; we fit the slope on
# the three finest grids whose errors are still well above rounding
# (`ROUNDOFF_FLOOR`). Every method, embedded pairs included, can run on a fixed grid.

# %%
#: Errors below this are within ~100× of the rounding level of these solves.
ROUNDOFF_FLOOR = 1e-13
#: How far the measured order may lie from the declared one.
ORDER_SLACK = 0.3
#: Steps per output interval: 2, 4, ..., 1024 (quick: up to 256).
STEPS = 2 ** np.arange(1, 9 if QUICK else 11)

t_out = np.linspace(0.0, 4.0, 5)
z_exact = chirp_exact(t_out)
errors = {}
for name in rn.METHODS:
    errors[name] = []
    for n in STEPS:
        z = rn.odeint(chirp, np.array([1.0, 0.0]), t_out, method=name, n_steps=int(n))
        errors[name].append(np.max(np.abs(z - z_exact)))
        if errors[name][-1] < ROUNDOFF_FLOOR:
            break


def measured_order(steps, errs, n_points=3):
    """Slope of -log(error) against log(n) on the finest n_points grids above the floor."""
    keep = [(n, e) for n, e in zip(steps, errs) if e > ROUNDOFF_FLOOR][-n_points:]
    n, e = np.array(keep).T
    return -np.polyfit(np.log(n), np.log(e), 1)[0]


print(f"  {'method':11s} {'declared p':>10} {'measured':>9}  errors from n = {STEPS[0]} steps")
for name, errs in errors.items():
    p_measured = measured_order(STEPS, errs)
    declared = rn.METHODS[name].order
    print(f"  {name:11s} {declared:>10} {p_measured:>9.2f}  " + " ".join(f"{e:.0e}" for e in errs))
    assert abs(p_measured - declared) <= ORDER_SLACK, (name, p_measured)

# %% [markdown]
# Every measured order is within 0.3 of the declared one. The plot shows the same: lines
# of slope p, until the error hits rounding (dop853 gets there with 32 steps per unit
# of time). Thirteen methods are more than the ten default colours, so each line gets its
# own colour, line style *and* marker: no two methods look alike.

# %%
import matplotlib.pyplot as plt

#: One marker per method (there are 13), cycled with ten colours and four line styles.
MARKERS = "osD^v<>phX*Pd8"
LINESTYLES = ("-", "--", ":", "-.")


def plot_convergence(errors, interval):
    """Log-log error against step size h = interval / n, one distinct line per method."""
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    for k, (name, errs) in enumerate(errors.items()):
        h = interval / STEPS[:len(errs)]
        order = rn.METHODS[name].order
        ax.loglog(h, errs, color=f"C{k % 10}", linestyle=LINESTYLES[k % len(LINESTYLES)],
                  marker=MARKERS[k % len(MARKERS)], ms=4, label=f"{name} (p = {order})")
    ax.axhline(ROUNDOFF_FLOOR, color="0.6", lw=0.8)
    ax.set(xlabel="step size h", ylabel="max error at t = 0, 1, ..., 4",
           title="measured order of convergence on the chirp (slope = order p)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


fig = plot_convergence(errors, t_out[1] - t_out[0])
path = os.path.join(FIGURES, "convergence.png")
show(fig, path)

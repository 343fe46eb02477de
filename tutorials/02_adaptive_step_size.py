# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 02 — Adaptive step size: estimate the error, then choose h
#
# A neural ODE's cost is its number of function evaluations (NFE), and the NFE is set by
# the step-size controller. This tutorial takes refnode's controller apart, piece by
# piece, and checks each piece against the library with a printed number:
#
# 1. the embedded error estimate e = h Σ (b_i - b̂_i) k_i;
# 2. the RMS error norm and the accept/reject test;
# 3. the "I" controller and its named constants;
# 4. Hairer's starting step;
# 5. dense output between the steps;
# 6. accepted and rejected steps along a hard trajectory (`adaptive_steps.png`), and a
#    work-precision diagram (`work_precision_arenstorf.png`).
#
# HNW I = Hairer, Nørsett, Wanner, *Solving Ordinary Differential Equations I*, 2nd ed.,
# §II.4 (step size control) and §II.6 (dense output). Tutorial 01 introduced the tableau.
#
# Figures go to the directory named by `$REFNODE_FIGURES`, or to a new temporary directory
# when it is unset; run as a script, each prints the path it wrote, and in Jupyter each
# appears under the cell that makes it. (`REFNODE_FIGURES=figures` writes into the
# repository's `figures/`, over any committed figure of the same name.)

# %%
import os

import numpy as np

import refnode as rn
from refnode import step_size
from refnode.figures import figure_directory, show
from refnode.rk_step import rk_step

QUICK = os.environ.get("REFNODE_QUICK") == "1"  # shrinks the work-precision sweep only
FIGURES = figure_directory()   # $REFNODE_FIGURES, else a new temporary directory
np.set_printoptions(precision=4)

# %% [markdown]
# The test problem of tutorial 01, the chirp y' = ((1 + t) v - α u, -(1 + t) u - α v),
# now with its exact flow from any start (t₀, y₀): it turns by φ(t) - φ(t₀), φ = t + t²/2,
# and shrinks by e^{-α(t - t₀)}.

# %%
ALPHA = 0.1


def chirp(t, y, theta=None):
    u, v = y[..., 0], y[..., 1]
    return np.stack([(1 + t) * v - ALPHA * u, -(1 + t) * u - ALPHA * v], axis=-1)


def chirp_flow(t0, y0, t):
    """The exact solution at time t from y(t0) = y0 (y0 of shape (2,))."""
    turn = (t + t * t / 2) - (t0 + t0 * t0 / 2)
    c, s = np.cos(turn), np.sin(turn)
    return np.exp(-ALPHA * (t - t0)) * (y0 @ np.array([[c, s], [-s, c]]).T)


dopri5 = rn.METHODS["dopri5"]
t0, y0 = 0.5, np.array([0.6, 0.8])  # both components O(1), so sc_i ≈ rtol |y_i|

# %% [markdown]
# ## 1. The embedded error estimate
#
# An embedded pair shares its stages k_i between two solutions: y₁ with weights b
# (order p) and ŷ₁ with weights b̂ (order p̂ < p). Their difference costs nothing extra,
#
#     e = y₁ - ŷ₁ = h Σ_i (b_i - b̂_i) k_i,
#
# and estimates the local error of the *lower-order* ŷ₁, which is O(h^{p̂+1}) (HNW I,
# §II.4). dopri5 has p = 5, p̂ = 4 and propagates y₁ ("local extrapolation"), so the
# estimate is pessimistic: y₁'s true error is O(h⁶), much smaller. Check all three claims:

# %%
print(f"dopri5: p = {dopri5.order}, p_hat = {dopri5.error_order}")
print(f"  {'h':>8} {'|e|':>9} {'|y1 - y1_hat|':>14} {'true err of y1_hat':>19} "
      f"{'true err of y1':>15}")
previous = None
for h in (0.2, 0.1, 0.05, 0.025):
    y1, e, k = rk_step(chirp, dopri5, t0, y0, h, None, chirp(t0, y0))
    y1_hat = y0 + h * sum(float(bh) * k_i for bh, k_i in zip(dopri5.b_hat, k))
    exact = chirp_flow(t0, y0, t0 + h)
    row = (np.max(np.abs(e)), np.max(np.abs(y1 - y1_hat)), np.max(np.abs(y1_hat - exact)),
           np.max(np.abs(y1 - exact)))
    print(f"  {h:>8} {row[0]:>9.2e} {row[1]:>14.2e} {row[2]:>19.2e} {row[3]:>15.2e}"
          + (f"   |e| shrank {previous / row[0]:.1f}x" if previous else ""))
    assert abs(row[0] - row[1]) < 1e-15 and row[3] < row[2]
    assert previous is None or 2 ** 4.5 < previous / row[0] < 2 ** 5.5
    previous = row[0]

# %% [markdown]
# Halving h divides |e| by about 2⁵ = 32 (order p̂ + 1 = 5), e equals y₁ - ŷ₁ to rounding,
# and the propagated y₁ is far more accurate than the estimate says.
#
# ## 2. The RMS norm and the accept/reject test
#
# A vector of errors becomes one number by the scaled RMS norm (HNW I, (4.11)):
#
#     sc_i = atol + rtol · max(|y0_i|, |y1_i|),     err = sqrt( (1/n) Σ_i (e_i / sc_i)² ),
#
# and a step is accepted when err <= 1. (SciPy and torchdiffeq use the same norm, so
# "rtol = 1e-6" means the same thing in all three.)

# %%
rtol, atol = 1e-6, 1e-9
h = 0.05
y1, e, k = rk_step(chirp, dopri5, t0, y0, h, None, chirp(t0, y0))
sc = atol + rtol * np.maximum(np.abs(y0), np.abs(y1))
err_by_hand = np.sqrt(np.mean((e / sc) ** 2))
err_refnode = step_size.error_ratio(e, y0, y1, rtol, atol)
print(f"err by hand {err_by_hand:.6f}, refnode.step_size.error_ratio {err_refnode:.6f}: "
      f"{'accept' if err_refnode <= 1 else 'reject'} the step h = {h}")
assert abs(err_by_hand - err_refnode) < 1e-12 * err_by_hand

# %% [markdown]
# ## 3. The I controller
#
# Since err ≈ C h^q with q = p̂ + 1, the step that would make err exactly 1 is
# h · err^{-1/q}. The controller aims a little lower and limits the change
# (HNW I, (4.13); HNW write the exponent as 1/(q̃+1) with q̃ = min(p, p̂) = 4, the same 1/5):
#
#     h_new = h · min(MAX_FACTOR, max(MIN_FACTOR, SAFETY · err^{-1/q})).
#
# The constants are named in `refnode.step_size`, with their source:

# %%
q = dopri5.error_order + 1
print(f"SAFETY = {step_size.SAFETY}, MIN_FACTOR = {step_size.MIN_FACTOR}, "
      f"MAX_FACTOR = {step_size.MAX_FACTOR}, q = {q}")
factor_by_hand = min(step_size.MAX_FACTOR,
                     max(step_size.MIN_FACTOR, step_size.SAFETY * err_by_hand ** (-1 / q)))
factor_refnode = step_size.step_factor(err_refnode, q)
print(f"h_new / h by hand {factor_by_hand:.4f}, refnode.step_size.step_factor {factor_refnode:.4f}")
assert abs(factor_by_hand - factor_refnode) < 1e-12

# %% [markdown]
# If err really scales like h^q, a step of h_new should come out with
# err ≈ SAFETY^q = 0.9⁵ ≈ 0.59: safely accepted, but not wastefully small.

# %%
h_new = h * factor_refnode
y1, e, _ = rk_step(chirp, dopri5, t0, y0, h_new, None, chirp(t0, y0))
err_new = step_size.error_ratio(e, y0, y1, rtol, atol)
print(f"a step of h_new = {h_new:.4f} has err = {err_new:.3f}; SAFETY^q = "
      f"{step_size.SAFETY ** q:.3f}")
assert 0.3 < err_new < 1.0

# %% [markdown]
# After a rejected step the factor is capped at 1 (no growth right after a failure), so a
# run of rejections cannot oscillate.
#
# ## 4. Hairer's starting step
#
# The first step has no previous err to learn from. HNW I (p. 169, steps (a)–(f)) guess it
# from two evaluations of f, in the same scaled norm ‖·‖ (sc_i = atol + rtol |y0_i|):
#
#     (a) d0 = ‖y0‖, d1 = ‖f(t0, y0)‖
#     (b) h0 = 0.01 d0/d1   (1e-6 if either is < 1e-5)
#     (c) y1 = y0 + h0 f(t0, y0);  one Euler step
#     (d) d2 = ‖f(t0 + h0, y1) - f(t0, y0)‖ / h0;  an estimate of the second derivative
#     (e) h1 = (0.01 / max(d1, d2))^{1/q}   (max(1e-6, 1e-3 h0) if both <= 1e-15)
#     (f) h = min(100 h0, h1)

# %%
def scaled_norm(x):
    return np.sqrt(np.mean((x / (atol + rtol * np.abs(y0))) ** 2))


f0 = chirp(t0, y0)
d0, d1 = scaled_norm(y0), scaled_norm(f0)
h0 = 1e-6 if min(d0, d1) < 1e-5 else 0.01 * d0 / d1
d2 = scaled_norm(chirp(t0 + h0, y0 + h0 * f0) - f0) / h0
h1 = (0.01 / max(d1, d2)) ** (1 / q) if max(d1, d2) > 1e-15 else max(1e-6, 1e-3 * h0)
h_start = min(100 * h0, h1)
h_refnode = step_size.initial_step(chirp, t0, y0, f0, None, 1.0, q, step_size.rms_norm(rtol, atol))
print(f"d0 = {d0:.3g}, d1 = {d1:.3g}, h0 = {h0:.3g}, d2 = {d2:.3g}, h1 = {h1:.3g}")
print(f"starting step by hand {h_start:.6f}, refnode.step_size.initial_step {h_refnode:.6f}")
assert abs(h_start - h_refnode) < 1e-12 * h_start

# %% [markdown]
# ## 5. Dense output
#
# Output times never shorten a step. Inside an accepted step dopri5 evaluates its own
# continuous extension of order 4 (Shampine 1986; HNW I, §II.6), y(t_n + θh) =
# y_n + h Σ_i k_i P_i(θ), at no extra cost in f. So asking for 1000 outputs costs the same
# steps as asking for 2, and the values in between are about as accurate as the steps:

# %%
t_span = np.array([0.0, 4.0])
t_many = np.linspace(0.0, 4.0, 1000)
coarse = rn.solve(chirp, y0, t_span, rtol=rtol, atol=atol)
fine = rn.solve(chirp, y0, t_many, rtol=rtol, atol=atol, dense=True)
exact_many = np.stack([chirp_flow(0.0, y0, t) for t in t_many])
print(f"2 outputs: {coarse.stats['n_accepted']} steps, NFE {coarse.stats['nfe']}; "
      f"1000 outputs: {fine.stats['n_accepted']} steps, NFE {fine.stats['nfe']}")
print(f"max error at the step end t = 4: {np.max(np.abs(coarse.z[-1] - exact_many[-1])):.2e}; "
      f"over all 1000 dense outputs: {np.max(np.abs(fine.z - exact_many)):.2e}")
mid = 0.5 * (np.array(fine.grid[:-1]) + np.array(fine.grid[1:]))
mid_error = np.max(np.abs(fine.dense(mid) - np.stack([chirp_flow(0.0, y0, t) for t in mid])))
print(f"sol.dense at the {len(mid)} step midpoints: max error {mid_error:.2e}")
assert coarse.stats == fine.stats and np.max(np.abs(fine.z - exact_many)) < 100 * rtol

# %% [markdown]
# ## 6. Accepted and rejected steps along a trajectory
#
# The Arenstorf orbit, HNW I's opening example (§II.0): a small body moving in the plane of
# the earth (mass fraction 1 - μ, at x = -μ) and the moon (mass fraction μ, at x = 1 - μ),
# in coordinates that rotate with them. The orbit is closed, with period T, and starts and
# ends right next to the moon. There everything happens fast and the steps must be tiny;
# far away they can be long. `solve(..., control=rn.StepControl(trace=True))` records every
# attempted step.

# %%
MU = 0.012277471  # the moon's share of the earth-moon mass
MU_EARTH = 1.0 - MU
ORBIT_Y0 = np.array([0.994, 0.0, 0.0, -2.00158510637908252240537862224])  # x, y, x', y'
ORBIT_PERIOD = 17.0652165601579625588917206249


def arenstorf(t, state, theta=None):
    x, y, dx, dy = state
    r_earth = ((x + MU) ** 2 + y ** 2) ** 1.5
    r_moon = ((x - MU_EARTH) ** 2 + y ** 2) ** 1.5
    ddx = x + 2 * dy - MU_EARTH * (x + MU) / r_earth - MU * (x - MU_EARTH) / r_moon
    ddy = y - 2 * dx - MU_EARTH * y / r_earth - MU * y / r_moon
    return np.array([dx, dy, ddx, ddy])


orbit_rtol, orbit_atol = 1e-6, 1e-9
orbit = rn.solve(arenstorf, ORBIT_Y0, np.linspace(0.0, ORBIT_PERIOD, 2000), rtol=orbit_rtol,
                 atol=orbit_atol, control=rn.StepControl(trace=True), dense=True)
accepted = [r for r in orbit.trace if r.accepted]
rejected = [r for r in orbit.trace if not r.accepted]
# Leave out the first step (Hairer's guess) and the last (cut short to land on T).
h_accepted = np.array([abs(r.h) for r in accepted[1:-1]])
print(f"{orbit.stats}; first step h = {accepted[0].h:.2e}")
print(f"the controller's accepted steps range over h = {h_accepted.min():.2e} .. "
      f"{h_accepted.max():.2e} ({h_accepted.max() / h_accepted.min():.0f}x)")
print(f"error ratios: accepted <= {max(r.error_ratio for r in accepted):.3f}, "
      f"rejected >= {min(r.error_ratio for r in rejected):.3f}")
closure = np.max(np.abs(orbit.z[-1, :2] - ORBIT_Y0[:2]))
print(f"after one period the orbit closes to within {closure:.1e}")
assert all(r.error_ratio <= 1 for r in accepted) and all(r.error_ratio > 1 for r in rejected)
assert len(rejected) > 0 and closure < 1e-3 and h_accepted.max() > 100 * h_accepted.min()

# %% [markdown]
# The step size swings over more than three orders of magnitude. Most rejections come at
# the end, where the orbit dives back towards the moon and h has to drop fast: the
# controller only learns that the error grew from a step that failed (each rejection
# shrinks h, by at most MIN_FACTOR = 0.2, and no step grows right after one).

# %%
import matplotlib.pyplot as plt

fig, (ax_orbit, ax_h) = plt.subplots(1, 2, figsize=(11, 4.5))
ax_orbit.plot(orbit.z[:, 0], orbit.z[:, 1], color="0.6", lw=1)
starts = orbit.dense([r.t for r in accepted])  # the state where each step began
ax_orbit.plot(starts[:, 0], starts[:, 1], "C0.", ms=3, label="accepted steps (start)")
bad = orbit.dense([r.t for r in rejected])
ax_orbit.plot(bad[:, 0], bad[:, 1], "C3x", ms=6, label="rejected steps (start)")
ax_orbit.plot([-MU, MU_EARTH], [0, 0], "ko", ms=4)
ax_orbit.annotate("earth", (-MU, 0), xytext=(4, 4), textcoords="offset points", fontsize=8)
ax_orbit.annotate("moon", (MU_EARTH, 0), xytext=(-10, 8), textcoords="offset points", fontsize=8)
ax_orbit.set(xlabel="x", ylabel="y", title="Arenstorf orbit, dopri5, rtol 1e-6", aspect="equal")
ax_orbit.legend(fontsize=7, loc="lower left")
ax_h.semilogy([r.t for r in accepted], [abs(r.h) for r in accepted], "C0.-", ms=3, lw=0.6,
              label=f"accepted ({len(accepted)})")
ax_h.semilogy([r.t for r in rejected], [abs(r.h) for r in rejected], "C3x", ms=6,
              label=f"rejected ({len(rejected)})")
ax_h.set(xlabel="t", ylabel="step size h", title="steps tried along the orbit")
ax_h.legend(fontsize=8)
fig.tight_layout()
path = os.path.join(FIGURES, "adaptive_steps.png")
show(fig, path)

# %% [markdown]
# ## Work against precision
#
# A tolerance is a request, not a cost. To compare methods fairly, plot what each one
# achieves (the error at the end) against what it spends (evaluations of f), over a
# sweep of tolerances: a *work-precision diagram*. The Arenstorf orbit is periodic, so
# after one period the exact state is the initial one.

# %%
tolerances = [1e-4, 1e-6, 1e-8] if QUICK else [1e-4, 1e-6, 1e-8, 1e-10]
fig, ax = plt.subplots(figsize=(5.5, 4))
for name in ("bosh3", "dopri5", "dop853"):
    nfe, error = [], []
    for tol in tolerances:
        run = rn.solve(arenstorf, ORBIT_Y0, [0.0, ORBIT_PERIOD], method=name, rtol=tol,
                       atol=tol, control=rn.StepControl(max_steps=200_000))
        nfe.append(run.stats["nfe"])
        error.append(np.max(np.abs(run.z[-1] - ORBIT_Y0)))
    ax.loglog(nfe, error, "o-", label=name)
    print(f"{name:7s} NFE {nfe}  error {[f'{e:.1e}' for e in error]}")
ax.set(xlabel="evaluations of f", ylabel="error after one period",
       title="Arenstorf orbit: work against precision")
ax.legend()
fig.tight_layout()
show(fig, os.path.join(FIGURES, "work_precision_arenstorf.png"))

# %% [markdown]
# Lower and further left is better. Read along a horizontal line: to reach the same
# error the higher-order pairs need far fewer evaluations than bosh3, and the gap widens
# as the tolerance tightens (the printed numbers above). Note also that the error after a
# period is much larger than the tolerance: the tolerance bounds each step's local error,
# and this orbit amplifies local errors. `refnode bench
# workprecision` draws the full diagrams (every adaptive method, SciPy's RK45 and DOP853
# beside them, four test problems, error against evaluations and against time); they
# are discussed in `benchmarks/README.md`.

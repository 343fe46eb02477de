"""Gradients of an independent-steps solve (``batch="independent"``), both kinds.

``"discrete"`` — every sample's accepted step points (``Solution.grid``, shape (B, L+1),
padded with the final time) are replayed together: step n takes sample b from τ_{b,n} to
τ_{b,n+1}, a step of length 0 once b has run out of steps, so nothing needs a mask but
the outputs. The reverse pass is :mod:`refnode.discrete_adjoint`'s, with h, θ and every
time cotangent a (B,) array. As there, τ_{b,n} = (1 − s_{b,n}) t_0 + s_{b,n} t_{N−1} with
the fractions s fixed. Memory: the state at every step point, (L+1)·B·D.

``"adjoint"`` — Algorithm 2 run backwards in independent mode: the augmented state
[z, a, t̄] has a (B,) time channel and each sample its own reverse steps. The parameter
channel is the one piece that cannot be carried per sample without a B × P array (P
parameters). Instead it is accumulated outside the solve: after each iteration,

    θ̄ ← θ̄ − Σ_i b_i Σ_{b accepted} h_b a_{b,i}ᵀ ∂f/∂θ(t_b + c_i h_b, z_{b,i}),

and because aᵀ∂f/∂θ is linear in a, folding the weight h_b (0 for samples whose step
was rejected) into a gives each stage's batch sum from one batched VJP. Memory: the
stage inputs of one step, s·B·(2D) numbers, never B·P. Cost: those VJPs repeat each
stage's backward pass once, so a reverse step costs about twice the shared adjoint's
(reusing the trial stages' own parameter VJPs would need a B·P array to undo the
rejected samples' share). Since θ̄ is not in the state, its
error cannot enter the step control: the norm is the largest per-sample RMS ratio over
z, a and t̄ (``seminorm=True``: z and a only, as in shared mode).
"""

from typing import NamedTuple

import numpy as np

from .backend import array_module, to_float, to_numpy
from .dense_output import float_P, hermite_weights, stage_weights
from .discrete_adjoint import stage_rows
from .dynamics import value_and_vjp
from .independent import (SampleTimeDynamics, advance, batch_dense, batch_extra_stages,
                          batch_rk_step, per_sample, sample_ratio, sample_sum, select,
                          solve_independent)
from .params import tree_add, tree_leaves, tree_scale, tree_zeros_like


# -- the per-sample step grid -----------------------------------------------------------------

class SampleGrid(NamedTuple):
    """Per-sample step points as fixed fractions of [t_0, t_{N-1}] (host NumPy).

    s : (B, L+1) fractions;  out_step : (B, N) the step of each sample holding output i
    (-1 for i = 0);  at_end : (B, N) True where t_i is that step's end point.
    """

    s: np.ndarray
    out_step: np.ndarray
    at_end: np.ndarray

    @property
    def n_steps(self):
        return self.s.shape[1] - 1

    def points(self, t, xp):
        """τ_n for every step point n: a list of (B,) device arrays."""
        return [xp.asarray((1.0 - s_n) * t[0] + s_n * t[-1]) for s_n in self.s.T]

    def outputs_of_step(self, n):
        """The outputs i >= 1 that some sample reaches in its step n."""
        return [i for i in range(1, self.out_step.shape[1]) if np.any(self.out_step[:, i] == n)]


def sample_grid(t, grid):
    """The :class:`SampleGrid` of an independent solve from its ``Solution.grid``."""
    t, grid = np.asarray(t, dtype=np.float64), np.asarray(grid, dtype=np.float64)
    direction = np.sign(t[-1] - t[0])
    s = (grid - t[0]) / (t[-1] - t[0])
    s[:, 0], s[grid == t[-1]] = 0.0, 1.0
    u, u_t = direction * grid, direction * t
    out_step = np.sum(u[:, 1:, None] < u_t[None, None, :], axis=1)       # (B, N)
    end = np.take_along_axis(grid, np.minimum(out_step + 1, grid.shape[1] - 1), axis=1)
    out_step[:, 0] = -1
    return SampleGrid(s, out_step, (end == t[None, :]) & (out_step >= 0))


# -- "discrete": replay and reverse ---------------------------------------------------------------

def replay(f, tableau, z0, theta, t, sg):
    """Run every sample's recorded steps again; returns (z of shape (N, B, ...), states)."""
    xp = array_module(z0)
    tau = sg.points(t, xp)
    outputs, ys = [z0] * len(t), [z0]
    y, k1 = z0, f(tau[0], z0, theta)
    for n in range(sg.n_steps):
        h = tau[n + 1] - tau[n]
        y1, _, k, _ = batch_rk_step(f, tableau, tau[n], y, h, theta, k1)
        k1_next = f(tau[n + 1], y1, theta)
        for i in sg.outputs_of_step(n):
            value = y1
            if not np.all(sg.at_end[:, i] | (sg.out_step[:, i] != n)):
                k_all = batch_extra_stages(f, tableau, tau[n], y, h, theta, k) \
                    if tableau.dense is not None else k
                fraction = (float(t[i]) - tau[n]) / xp.where(h == 0.0, 1.0, h)
                value = select(xp.asarray(sg.at_end[:, i]), y1,
                               batch_dense(tableau, fraction, h, y, y1, k_all, k1_next))
            outputs[i] = select(xp.asarray(sg.out_step[:, i] == n), value, outputs[i])
        y, k1 = y1, k1_next
        ys.append(y)
    return xp.stack(outputs), ys


def weighted(terms, like):
    """Σ_j w_j k_j with float or per-sample weights (zeros like ``like`` if empty)."""
    acc = 0.0 * like
    for w, k in terms:
        acc = acc + w * k
    return acc


def batch_step_vjp(f, tableau, rows, t, y, h, theta, k, y1_bar, k_bar):
    """Reverse of one step with per-sample t, h: (ȳ, θ̄, t̄, h̄), t̄ and h̄ of shape (B,).

    The rules of :func:`refnode.discrete_adjoint.rk_step_vjp`, with each inner product
    taken per sample (:func:`sample_sum`).
    """
    k_bar, h_y = list(k_bar), per_sample(h, y)
    for i, b_i in enumerate(tableau.b_float):
        if b_i != 0.0:
            k_bar[i] = _acc(k_bar[i], (h_y * b_i) * y1_bar)
    y_bar, theta_bar, t_bar = y1_bar, None, 0.0 * h
    h_bar = sample_sum(y1_bar * weighted([(b, k_i) for b, k_i in zip(tableau.b_float, k) if b], y))
    for i in reversed(range(len(k))):
        if k_bar[i] is None:
            continue
        c_i, row = rows[i]
        dY = weighted([(a, k[j]) for j, a in row], y)
        a_z, a_theta, a_t = f.vjp(t + c_i * h, y + h_y * dY, theta, k_bar[i])
        y_bar = y_bar + a_z
        theta_bar = a_theta if theta_bar is None else tree_add(theta_bar, a_theta)
        t_bar = t_bar + a_t
        h_bar = h_bar + c_i * a_t + sample_sum(a_z * dY)
        for j, a in row:
            k_bar[j] = _acc(k_bar[j], (h_y * a) * a_z)
    return y_bar, theta_bar, t_bar, h_bar


def _acc(total, term):
    return term if total is None else total + term


def batch_dense_vjp(tableau, fraction, h, y0, y1, k, f1, z_bar, k_bar):
    """Reverse of each sample's interpolant (:func:`refnode.discrete_adjoint.dense_vjp`).

    Returns (ȳ_0, ȳ_1 or None, f̄_1 or None, θ̄, h̄, k̄) with θ̄, h̄ of shape (B,).
    """
    k_bar, th, h_y = list(k_bar), per_sample(fraction, y0), per_sample(h, y0)
    if tableau.dense is None:
        h00, h10, h01, h11 = hermite_weights(th)
        d00, d10, d01, d11 = (6 * th * th - 6 * th, 3 * th * th - 4 * th + 1,
                              -6 * th * th + 6 * th, 3 * th * th - 2 * th)
        k_bar[0] = _acc(k_bar[0], (h10 * h_y) * z_bar)
        th_bar = sample_sum(z_bar * (d00 * y0 + (d10 * h_y) * k[0] + d01 * y1 + (d11 * h_y) * f1))
        h_bar = sample_sum(z_bar * (h10 * k[0] + h11 * f1))
        return h00 * z_bar, h01 * z_bar, (h11 * h_y) * z_bar, th_bar, h_bar, k_bar
    P = float_P(tableau.dense).tolist()
    weights = stage_weights(P, th)
    slopes = [sum((m + 1) * p * th ** m for m, p in enumerate(row)) for row in P]
    for i, (w, row) in enumerate(zip(weights, P)):
        if any(row):
            k_bar[i] = _acc(k_bar[i], (h_y * w) * z_bar)
    th_bar = h * sample_sum(z_bar * weighted(list(zip(slopes, k)), y0))
    h_bar = sample_sum(z_bar * weighted(list(zip(weights, k)), y0))
    return z_bar, None, None, th_bar, h_bar, k_bar


def discrete_vjp(f, tableau, theta, t, sg, ys, g):
    """The exact gradient of the replayed per-sample solutions.

    Returns
    -------
    dz0 : array (B, ...);  dtheta : tree like theta (summed over samples) or None;
    dt : ndarray (N,) (summed over samples: the output times are shared)
    """
    xp = array_module(ys[0])
    tau = sg.points(t, xp)
    tau_bar = [0.0 * tau[0] for _ in tau]
    t_direct = [0.0] * len(t)
    y_bar, theta_bar = 0.0 * ys[-1], None
    for n in reversed(range(sg.n_steps)):
        outputs = sg.outputs_of_step(n)
        for i in outputs:
            y_bar = y_bar + select(xp.asarray((sg.out_step[:, i] == n) & sg.at_end[:, i]), g[i],
                                   0.0 * g[i])
        interior = [i for i in outputs if np.any((sg.out_step[:, i] == n) & ~sg.at_end[:, i])]
        y_bar, theta_step = step_backward(f, tableau, theta, t, tau, n, ys, g, interior, sg,
                                          y_bar, tau_bar, t_direct)
        if theta_step is not None:
            theta_bar = theta_step if theta_bar is None else tree_add(theta_bar, theta_step)
    tau_host = to_numpy(xp.stack(tau_bar)).T                           # (B, L+1)
    dt = np.array([to_float(v) if not isinstance(v, float) else v for v in t_direct])
    dt[0] += np.sum((1.0 - sg.s) * tau_host)
    dt[-1] += np.sum(sg.s * tau_host)
    if theta is not None and theta_bar is None:
        theta_bar = tree_zeros_like(theta)
    return y_bar + g[0], theta_bar, dt


def step_backward(f, tableau, theta, t, tau, n, ys, g, interior, sg, y1_bar, tau_bar, t_direct):
    """Reverse of step n and of the dense outputs inside it, every sample at once.

    Adds to the lists ``tau_bar`` ((B,) arrays per step point) and ``t_direct`` (one
    device scalar per output time); returns (ȳ_n, θ̄ of the step or None).
    """
    xp = array_module(ys[n])
    y, y1, h = ys[n], ys[n + 1], tau[n + 1] - tau[n]
    h_safe = xp.where(h == 0.0, 1.0, h)
    _, _, k, _ = batch_rk_step(f, tableau, tau[n], y, h, theta, f(tau[n], y, theta))
    rows = stage_rows(tableau, with_extra=bool(interior))
    if interior and tableau.dense is not None:
        k = batch_extra_stages(f, tableau, tau[n], y, h, theta, k)
    f1 = f(tau[n + 1], y1, theta) if interior and tableau.dense is None else None
    k_bar, y0_dense, f1_bar, h_bar = [None] * len(k), None, None, 0.0 * h
    for i in interior:
        inside = xp.asarray((sg.out_step[:, i] == n) & ~sg.at_end[:, i])
        fraction = xp.where(inside, (float(t[i]) - tau[n]) / h_safe, 0.0)
        z_bar = select(inside, g[i], 0.0 * g[i])
        y0_b, y1_b, f1_b, th_bar, h_b, k_bar = batch_dense_vjp(tableau, fraction, h, y, y1, k,
                                                               f1, z_bar, k_bar)
        y0_dense = _acc(y0_dense, y0_b)
        y1_bar = y1_bar if y1_b is None else y1_bar + y1_b
        f1_bar = f1_bar if f1_b is None else _acc(f1_bar, f1_b)
        t_direct[i] = t_direct[i] + xp.sum(th_bar / h_safe)          # θ = (t_i − τ_n)/h
        tau_bar[n] = tau_bar[n] - th_bar / h_safe
        h_bar = h_bar + h_b - th_bar * fraction / h_safe
    theta_bar = None
    if f1_bar is not None:                                            # Hermite's f(τ_{n+1}, y_{n+1})
        a_z, theta_bar, a_t = f.vjp(tau[n + 1], y1, theta, f1_bar)
        y1_bar, tau_bar[n + 1] = y1_bar + a_z, tau_bar[n + 1] + a_t
    y0_bar, theta_step, t_step, h_step = batch_step_vjp(f, tableau, rows, tau[n], y, h, theta, k,
                                                        y1_bar, k_bar)
    h_bar = h_bar + h_step
    tau_bar[n] = tau_bar[n] + t_step - h_bar                          # h = τ_{n+1} − τ_n
    tau_bar[n + 1] = tau_bar[n + 1] + h_bar
    if theta_step is not None:
        theta_bar = theta_step if theta_bar is None else tree_add(theta_bar, theta_step)
    return (y0_bar if y0_dense is None else y0_bar + y0_dense), theta_bar


# -- "adjoint": Algorithm 2 with per-sample reverse steps ---------------------------------------

class SampleAugmentedState(NamedTuple):
    """[z, a, t̄] of the independent adjoint: z, a of shape (B, ...), t̄ of shape (B,)."""

    z: object
    a: object
    t_bar: object


def augmented_dynamics(f):
    """[f, −aᵀ∂f/∂z, −aᵀ∂f/∂t] per sample (θ̄ is accumulated by :class:`ThetaIntegral`)."""
    def aug_dynamics(t, s, theta):
        dz, a_z, _, a_t = value_and_vjp(f, t, s.z, theta, s.a)
        return SampleAugmentedState(dz, -a_z, -a_t)
    return aug_dynamics


def sample_channel_norm(rtol, atol, channels):
    """Per-sample error ratio: the largest of the channels' per-sample RMS ratios."""
    def norm(error, y0, y1, error3=None):
        ratios = [sample_ratio(getattr(error, c), getattr(y0, c), getattr(y1, c), rtol, atol,
                               None if error3 is None else getattr(error3, c)) for c in channels]
        xp = array_module(ratios[0])
        return ratios[0] if len(ratios) == 1 else xp.max(xp.stack(ratios), axis=0)
    return norm


class ThetaIntegral:
    """Σ over accepted steps of Σ_i b_i h_b a_{b,i}ᵀ∂f/∂θ, one batched VJP per stage.

    The weight h_b b_i (0 where b's step was rejected) is folded into the cotangent, so
    each VJP returns the batch-summed term directly (aᵀ∂f/∂θ is linear in a).
    """

    def __init__(self, f, tableau, theta):
        self.f, self.tableau, self.theta, self.total = f, tableau, theta, None

    def __call__(self, accepted, t, h, Y):
        weight = array_module(h).where(accepted, h, 0.0)
        for b_i, c_i, Y_i in zip(self.tableau.b_float, self.tableau.c_float, Y):
            if b_i == 0.0:
                continue
            a = per_sample(b_i * weight, Y_i.a) * Y_i.a
            _, a_theta, _ = self.f.vjp(t + c_i * h, Y_i.z, self.theta, a)
            self.total = a_theta if self.total is None else tree_add(self.total, a_theta)


def adjoint_sweep(f, tableau, t, zs, g, theta, *, rtol, atol, seminorm=False, reset=True,
                  max_steps=None):
    """Algorithm 2 backwards over every output interval, each sample its own steps.

    Arguments and results as :func:`refnode.adjoint.adjoint_sweep` (adaptive methods);
    ``stats`` holds per-sample (B,) arrays.
    """
    xp = array_module(zs)
    f = SampleTimeDynamics(f, zs.dtype)
    aug = augmented_dynamics(f)
    norm = sample_channel_norm(rtol, atol, ("z", "a") if seminorm else ("z", "a", "t_bar"))
    options = {} if max_steps is None else dict(max_steps=max_steps)
    batch = zs.shape[1]
    s = SampleAugmentedState(zs[-1], g[-1], xp.zeros(batch, dtype=zs.dtype))
    theta_bar = None if theta is None else tree_zeros_like(theta)
    dt, stats = np.zeros(len(t)), None
    for i in range(len(t) - 1, 0, -1):
        s = s._replace(z=zs[i]) if reset else s
        direct = sample_sum(g[i] * f(xp.zeros(batch) + float(t[i]), s.z, theta))
        dt[i] = to_float(xp.sum(direct))                # ∂L/∂t_i = Σ_b g_bᵀ f(t_i, z_b(t_i))
        s = s._replace(t_bar=s.t_bar - direct)
        integral = ThetaIntegral(f, tableau, theta)
        sol = solve_independent(aug, tableau, s, np.array([t[i], t[i - 1]]),
                                float(np.sign(t[i - 1] - t[i])), theta, rtol, atol, norm=norm,
                                on_step=None if theta is None else integral, **options)
        if theta is not None and integral.total is not None:
            theta_bar = tree_add(theta_bar, tree_scale(-1.0, integral.total))
        stats = sol.stats if stats is None else {k: stats[k] + sol.stats[k] for k in stats}
        s = SampleAugmentedState(*(leaf[-1] for leaf in sol.z))
        s = s._replace(a=s.a + g[i - 1])
    dt[0] = to_float(xp.sum(s.t_bar))
    return s.a, theta_bar, dt, stats



# -- the VJP closures odeint_vjp returns -----------------------------------------------------------

def independent_vjp(f, tableau, z0, t, theta, sol, gradient, settings):
    """``(z, vjp)`` for :func:`refnode.odeint_vjp` with ``batch="independent"``."""
    from .gradients import _VJP
    f = SampleTimeDynamics(f, z0.dtype)

    class DiscreteVJP(_VJP):
        def __call__(self, dL_dz):
            dz0, dtheta, dt = discrete_vjp(f, tableau, theta, t, self.grid, self.ys,
                                           self.check(dL_dz))
            self.backward_stats = dict(n_steps=self.grid.n_steps)
            return dz0, dtheta, dt

    class AdjointVJP(_VJP):
        def __call__(self, dL_dz):
            dz0, dtheta, dt, self.backward_stats = adjoint_sweep(
                f, settings["method"], t, sol.z, self.check(dL_dz), theta, rtol=settings["rtol"],
                atol=settings["atol"], seminorm=settings["seminorm"], reset=settings["reset"])
            return dz0, dtheta, dt

    if gradient == "discrete":
        vjp = DiscreteVJP(sol.z.shape, sol.stats)
        vjp.grid = sample_grid(t, sol.grid)
        _, vjp.ys = replay(f, tableau, z0, theta, t, vjp.grid)
        return sol.z, vjp
    return sol.z, AdjointVJP(sol.z.shape, sol.stats)

"""The continuous adjoint of an independent-steps solve (``batch="independent"``).

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

from .backend import array_module, to_float
from .dynamics import value_and_vjp
from .independent import SampleTimeDynamics, solve_independent
from .independent_step import (per_sample, sample_ratio, sample_sum)
from .params import tree_add, tree_scale, tree_zeros_like


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




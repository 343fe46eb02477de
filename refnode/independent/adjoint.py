"""The continuous adjoint with per-sample reverse steps: one reverse interval.

:func:`refnode.adjoint.adjoint_sweep` runs Algorithm 2 for both batch modes; in this
mode its augmented state is [z, a, t̄] with a (B,) time channel, and each interval is
solved by :func:`solve_interval` with a step size per sample. The parameter channel is
the one piece that cannot be carried per sample without a B × P array (P parameters).
Instead it is accumulated outside the solve: after each iteration,

    θ̄ ← θ̄ − Σ_i b_i Σ_{b accepted} h_b a_{b,i}ᵀ ∂f/∂θ(t_b + c_i h_b, z_{b,i}),

and because aᵀ∂f/∂θ is linear in a, folding the weight h_b (0 for samples whose step
was rejected) into a gives each stage's batch sum from one batched VJP. Memory: the
stage inputs of one step, s·B·(2D) numbers, never B·P. Cost: those VJPs repeat each
stage's backward pass once. Since θ̄ is not in the state, its error cannot enter the step
control: the norm is the largest per-sample RMS ratio over z, a and t̄ (``seminorm``:
z and a only, as in shared mode).
"""

import numpy as np

from ..options import StepControl
from ..params import tree_add, tree_scale
from ..rk_step import scale, stage_input
from .loop import solve_independent


class ThetaIntegral:
    """Σ over accepted steps of Σ_i b_i h_b a_{b,i}ᵀ∂f/∂θ, one batched VJP per stage.

    The weight h_b b_i (0 where b's step was rejected) is folded into the cotangent, so
    each VJP returns the batch-summed term directly (aᵀ∂f/∂θ is linear in a).
    """

    def __init__(self, f, tableau, theta):
        self.f, self.tableau, self.theta, self.total = f, tableau, theta, None

    def __call__(self, accepted, t, h, s, k):
        weight = h * accepted
        for i, (b_i, c_i) in enumerate(zip(self.tableau.b_float, self.tableau.c_float)):
            if b_i == 0.0:
                continue
            Y_i = s if i == 0 else stage_input(self.tableau, i, s, h, k)
            _, a_theta, _ = self.f.vjp(t + c_i * h, Y_i.z, self.theta, scale(b_i * weight, Y_i.a))
            self.total = a_theta if self.total is None else tree_add(self.total, a_theta)


def solve_interval(f):
    """The per-sample interval solver for :func:`refnode.adjoint.adjoint_sweep`.

    ``f`` is the user's dynamics with per-sample times (:class:`SampleTimeDynamics`): the
    θ̄ integral calls its VJP at the stage inputs of every accepted step.
    """
    def solve(aug, s, segment, theta, k1, settings, norm, first_step=None):
        integral = ThetaIntegral(f, settings.method, theta)
        direction = float(np.sign(segment[1] - segment[0]))
        sol = solve_independent(aug, settings.method, s, segment, direction, theta, norm,
                                StepControl(max_steps=settings.max_steps),
                                on_step=None if theta is None else integral, k1=k1,
                                first_step=first_step)
        part = None if integral.total is None else tree_scale(-1.0, integral.total)
        return sol, part
    return solve

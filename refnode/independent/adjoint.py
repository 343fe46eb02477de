"""The continuous adjoint with per-sample reverse steps: the θ̄ integral.

:func:`refnode.adjoint.adjoint_sweep_per_sample` runs Algorithm 2 with a step size per
sample; its augmented state is [z, a, t̄] with a (B,) time channel. The parameter channel is
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

from ..params import tree_add
from ..per_sample import scale
from ..rk_step import stage_input


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

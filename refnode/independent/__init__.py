"""Independent steps for a batch (``batch="independent"``): every sample its own step size.

A batch z0 of shape (B, D) — the leading axis is the batch — is usually solved as one
big state (``batch="shared"``): one error norm over all B·D components, one step size, so
the hardest sample sets the pace for all of them. Here each sample b keeps its own

    t_b, h_b, error ratio r_b = RMS_i(e_bi / (atol + rtol·max(|y0_bi|, |y1_bi|))),
    accept/reject (r_b <= 1), controller state and next output index.

The arithmetic is the shared one — :func:`refnode.rk_step.rk_step`, the method's
``error_ratio``, :func:`refnode.step_size.step_factor` and ``initial_step``, the dense
output — with t, h and the ratio as (B,) arrays broadcast along the batch axis, and the
norm reduced over each sample (``rms_norm(..., per_sample=True)``). What is this
module's own is only the masked accept/reject loop (``xp.where``, no Python loop over
samples) and the per-sample bookkeeping. Each sample's solution and step sequence equal
its own single solve (up to the rounding of batched reductions).

Costs and stats. f is evaluated on the whole working batch at every stage. Once at most
half of it still runs, the running samples are gathered into a smaller batch
(:func:`compact`) — unless ``theta`` has a leaf whose leading axis is B, which may hold
per-sample data (a rate per sample, a conditioning vector): then the batch stays whole,
so every row of z keeps meeting its own row of theta. The stats count, per sample, the
evaluations that sample needed while it was active — what its own solve would spend —
as arrays of shape (B,): ``nfe``, ``n_steps``, ``n_accepted``, ``n_rejected``;
``batch_nfe`` counts the batched calls of f and ``iterations`` the loop turns.
``Solution.grid`` is a (B, L+1) array of each sample's accepted step points, padded at
the end with the final time (L = the most steps any sample took).

The dynamics protocol in this mode: f is called with a per-sample time, ``t`` of shape
(B, 1, ..., 1) (as many axes as the state, so ``t * z`` pairs row b with time b), and
``f.vjp`` returns ``a_t`` of shape (B,) or of t's shape (or a scalar 0 for dynamics that
ignore time). Time-independent dynamics need no change; time-dependent layers must
broadcast t over the batch axis (refnode's ConcatLinear and ConcatSquashLinear do).

Synchronisation (GPU): one small host transfer per iteration (is anyone still running,
did a failure happen, which output times were reached).
"""

from .adjoint import ThetaIntegral
from .loop import SampleTimeDynamics, check_independent, solve_independent

__all__ = ["solve_independent", "check_independent", "SampleTimeDynamics", "ThetaIntegral"]

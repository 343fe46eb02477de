"""torchdiffeq: ``odeint`` with backprop through the solver, and ``odeint_adjoint``.

Both in float64 with dopri5 at the problem's rtol/atol. ``odeint_adjoint``'s reverse
solve uses the same tolerances (its defaults). Time gradients: ``t.requires_grad``; both
modes return ∂L/∂t (the adjoint from its own formula, backprop through the dense output
and the step-size-free parts of the solver).
"""

import numpy as np
import torch
import torchdiffeq

from . import kind_of, results
from .torch_fields import Field

DESCRIPTION = {"adjoint": "odeint_adjoint (dopri5)",
               "backprop": "odeint, backprop through the solver (dopri5)"}


def versions():
    return {"torch": torch.__version__, "torchdiffeq": torchdiffeq.__version__}


def solve(problem, gradient="adjoint"):
    """States and gradients of L = Σ ⟨g_i, z(t_i)⟩ by torchdiffeq (refnode verify's callable)."""
    field = Field(kind_of(problem), problem["parameters"])
    z0 = torch.tensor(problem["z0"], dtype=torch.float64, requires_grad=True)
    t = torch.tensor(problem["t"], dtype=torch.float64, requires_grad=True)
    odeint = torchdiffeq.odeint_adjoint if gradient == "adjoint" else torchdiffeq.odeint
    zs = odeint(field, z0, t, rtol=problem["rtol"], atol=problem["atol"], method="dopri5")
    loss = (zs * torch.tensor(problem["cotangents"], dtype=torch.float64)).sum()
    loss.backward()
    dt = np.zeros(len(problem["t"])) if t.grad is None else t.grad.numpy().copy()
    unsupported = {"t": "no gradient with respect to t"} if t.grad is None else None
    return results(zs.detach().numpy().copy(), z0.grad.numpy().copy(), field.gradients(),
                   None if unsupported else dt, problem, unsupported)

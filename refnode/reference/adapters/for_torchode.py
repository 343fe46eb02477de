"""torchode: ``AutoDiffAdjoint`` (backprop through the solver) with Dopri5 and an
integral step-size controller, in float64.

Convention mapped here: torchode solves a batch of independent problems, each with its
own steps, on states of shape (batch, features) and times of shape (batch, N). refnode's
problems share one solve across their batch, so the whole state z (of shape (D,) or
(B, D)) is one torchode problem: y = z.reshape(1, -1), and f sees z in its own shape and
the scalar time t[0].
"""

import torch
import torchode

from . import kind_of, results
from .torch_fields import Field

DESCRIPTION = {"backprop": "AutoDiffAdjoint (Dopri5, IntegralController)"}


def versions():
    from importlib.metadata import version
    return {"torch": torch.__version__, "torchode": version("torchode")}


def solve(problem, gradient="backprop"):
    """States and gradients of L = Σ ⟨g_i, z(t_i)⟩ by torchode (refnode verify's callable)."""
    field = Field(kind_of(problem), problem["parameters"])
    shape = tuple(problem["z0"].shape)
    z0 = torch.tensor(problem["z0"], dtype=torch.float64, requires_grad=True)
    t = torch.tensor(problem["t"], dtype=torch.float64, requires_grad=True)

    def f(s, y):                                    # s: (1,), y: (1, n)
        return field(s[0], y.reshape(shape)).reshape(1, -1)

    term = torchode.ODETerm(f)
    controller = torchode.IntegralController(atol=problem["atol"], rtol=problem["rtol"],
                                             term=term)
    solver = torchode.AutoDiffAdjoint(torchode.Dopri5(term=term), controller)
    sol = solver.solve(torchode.InitialValueProblem(y0=z0.reshape(1, -1), t_eval=t[None, :]))
    if int(sol.status[0]) != 0:
        raise RuntimeError(f"torchode stopped with status {int(sol.status[0])}")
    zs = sol.ys[0].reshape((len(problem["t"]),) + shape)
    (zs * torch.tensor(problem["cotangents"], dtype=torch.float64)).sum().backward()
    return results(zs.detach().numpy().copy(), z0.grad.numpy().copy(), field.gradients(),
                   t.grad.numpy().copy(), problem)

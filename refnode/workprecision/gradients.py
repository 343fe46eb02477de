"""Gradient work-precision: gradient error against wall time, for each way to differentiate.

Problems (float64, dopri5 at rtol = atol = tol):

* mlp-small, mlp-batch: L = Σ z(1)² for dz/dt = tanh(z W1ᵀ + b1) W2ᵀ + b2 (the problems of
  benchmarks/bench_gradients.py: D = 2, H = 50, batch 1 and D = 32, H = 64, batch 512);
  gradient with respect to z(0) and the four weight arrays;
* cnf: the mean negative log-likelihood of a planar CNF (refnode.models.cnf, D = 2, width
  8, 64 points, T = 1); gradient with respect to the hypernetwork's weights.

Gradients: ``odeint_vjp(gradient=...)`` with "adjoint" (default options),
``Adjoint(seminorm=True)``, "discrete", "autograd" (small problems only: it traces every
operation), and torchdiffeq's ``odeint_adjoint`` on the MLP problems when torch is installed.
Reference: the discrete adjoint of a dop853 solve at rtol = atol = REFERENCE_TOL, the exact
gradient of a solution far more accurate than any tested. Error: max |g − g_ref| / max |g_ref|
over all entries.
"""

import numpy as np

from .. import Adjoint, odeint_vjp
from ..models.cnf import CNFDynamics, PlanarField, cnf_nll
from ..nn import mlp_dynamics
from ..params import tree_leaves
from ..testing import relative_error
from .forward import best_of

#: Tolerance of the reference gradient (dop853, discrete adjoint).
REFERENCE_TOL = 1e-12
#: The ways to differentiate, as keyword arguments of odeint_vjp.
GRADIENTS = {"adjoint": dict(gradient="adjoint"),
             "adjoint seminorm": dict(gradient=Adjoint(seminorm=True)),
             "discrete": dict(gradient="discrete"),
             "autograd": dict(gradient="autograd")}
#: Problems on which autograd's traced solve is affordable.
AUTOGRAD_PROBLEMS = ("mlp-small", "cnf")
T1 = 1.0


class MLPProblem:
    """L = Σ z(1)² for the bench MLP; ``gradient(solver)`` -> flat ∂L/∂(z0, θ)."""

    def __init__(self, name, D, H, batch, seed=0):
        rng = np.random.default_rng(seed)
        self.name, self.f = name, mlp_dynamics((D, H, D), "tanh")
        self.theta, self.z0 = self.f.init(rng), rng.standard_normal((batch, D))

    def gradient(self, solver):
        z, vjp = odeint_vjp(self.f, self.z0, np.array([0.0, T1]), self.theta, **solver)
        dz0, dtheta, _ = vjp(np.stack([np.zeros_like(self.z0), 2.0 * z[-1]]))
        return np.concatenate([np.ravel(leaf) for leaf in [dz0] + tree_leaves(dtheta)])

    def weights(self):
        """(W1, b1, W2, b2) for the torch copy."""
        return self.theta[0]["W"], self.theta[0]["b"], self.theta[2]["W"], self.theta[2]["b"]


class CNFProblem:
    """Mean NLL of a small planar CNF; ``gradient(solver)`` -> flat ∂L/∂θ."""

    name = "cnf"

    def __init__(self, dim=2, width=8, batch=64, seed=0):
        rng = np.random.default_rng(seed)
        self.f = CNFDynamics(PlanarField(dim, width))
        self.theta = self.f.init(rng)
        self.x = rng.standard_normal((batch, dim)) * 0.5 + 1.0

    def gradient(self, solver):
        _, g_theta, _ = cnf_nll(self.f, self.theta, T1, self.x, solver)
        return np.concatenate([np.ravel(leaf) for leaf in tree_leaves(g_theta)])


def gradient_problems(quick):
    if quick:
        return [MLPProblem("mlp-small", 2, 50, 1)]
    return [MLPProblem("mlp-small", 2, 50, 1), MLPProblem("mlp-batch", 32, 64, 512),
            CNFProblem()]


def torchdiffeq_gradient_fn(problem, tol):
    """A closure giving torchdiffeq's odeint_adjoint gradient of the MLP problem, or None."""
    try:
        import torch
        import torchdiffeq
    except ImportError:
        return None
    W1, b1, W2, b2 = (torch.from_numpy(np.array(w)).requires_grad_(True)
                      for w in problem.weights())

    def func(t, z):
        return torch.tanh(z @ W1.T + b1) @ W2.T + b2

    class Func(torch.nn.Module):            # odeint_adjoint needs the parameters registered
        def __init__(self):
            super().__init__()
            self.params = torch.nn.ParameterList([torch.nn.Parameter(w) for w in (W1, b1, W2, b2)])

        def forward(self, t, z):
            w1, c1, w2, c2 = self.params
            return torch.tanh(z @ w1.T + c1) @ w2.T + c2

    module = Func().double()

    def run():
        module.zero_grad()
        z0 = torch.from_numpy(problem.z0).requires_grad_(True)
        z1 = torchdiffeq.odeint_adjoint(module, z0, torch.tensor([0.0, T1], dtype=torch.float64),
                                        rtol=tol, atol=tol, method="dopri5")[-1]
        (z1 ** 2).sum().backward()
        grads = [z0.grad] + [p.grad for p in module.params]
        return np.concatenate([g.detach().numpy().ravel() for g in grads])

    run()                               # torch's one-time start-up stays out of the timing
    return run


def run_gradients(tolerances, repeats=3, quick=False):
    """Records for every problem × gradient × tolerance, plus one reference record each."""
    records = []
    for problem in gradient_problems(quick):
        reference_tol = 1e-10 if quick else REFERENCE_TOL
        g_ref = problem.gradient(dict(method="dop853", rtol=reference_tol, atol=reference_tol,
                                      gradient="discrete"))
        records.append(dict(part="gradient_reference", problem=problem.name, method="dop853",
                            gradient="discrete", tol=reference_tol))
        names = [n for n in GRADIENTS if n != "autograd" or
                 (problem.name in AUTOGRAD_PROBLEMS and not quick)]
        for tol in sorted(tolerances, reverse=True):
            for name in names:
                solver = dict(GRADIENTS[name], method="dopri5", rtol=tol, atol=tol)
                seconds, g = best_of(lambda: problem.gradient(solver), repeats)
                records.append(dict(part="gradient", problem=problem.name, gradient=name, tol=tol,
                                    error=relative_error(g, g_ref), seconds=seconds))
            run = (torchdiffeq_gradient_fn(problem, tol)
                   if isinstance(problem, MLPProblem) and not quick else None)
            if run is not None:
                seconds, g = best_of(run, repeats)
                records.append(dict(part="gradient", problem=problem.name,
                                    gradient="torchdiffeq odeint_adjoint", tol=tol,
                                    error=relative_error(g, g_ref), seconds=seconds))
    return records

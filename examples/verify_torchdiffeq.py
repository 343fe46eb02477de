"""Verify torchdiffeq's ``odeint_adjoint`` gradients against refnode's golden values.

    python examples/verify_torchdiffeq.py [--rtol 1e-7] [--atol 1e-10]
    PYTHONPATH=examples refnode verify --callable verify_torchdiffeq:solve --rtol 1e-7 --atol 1e-10

``solve(problem)`` is the callable ``refnode verify`` expects: it rebuilds each reference
problem's dynamics in PyTorch (float64), solves with ``torchdiffeq.odeint_adjoint``
(dopri5 at the requested tolerances), and returns the states and the gradients of
L = Σ_i ⟨g_i, z(t_i)⟩ with respect to z0, every parameter and every t_i (torchdiffeq's
adjoint computes time gradients when ``t.requires_grad``). Without torch and torchdiffeq
installed the script says so and exits 0.
"""

import argparse
import sys

import numpy as np

try:
    import torch
    from torchdiffeq import odeint_adjoint
except ImportError:                       # optional: nothing to verify
    torch = odeint_adjoint = None


def dynamics(name, p):
    """The problem's f(t, z) in torch, with parameters ``p`` (a dict of tensors)."""
    if name == "linear":
        return lambda t, z: z @ p["A"].T
    if name == "decay":
        return lambda t, z: -p["k"] * z
    if name == "oscillator":
        return lambda t, z: torch.stack(
            [z[..., 1], -p["omega"] ** 2 * z[..., 0] - 2 * p["zeta"] * p["omega"] * z[..., 1]], -1)
    if name == "spiral":
        return lambda t, z: z ** 3 @ p["A"]
    if name == "mlp":
        return lambda t, z: torch.tanh(z @ p["W1"].T + p["b1"]) @ p["W2"].T + p["b2"]
    if name == "cnf":
        return lambda t, s: planar_cnf(t, s, p)
    raise KeyError(name)


def planar_cnf(t, s, p, M=4, D=2):
    """The planar CNF of the golden file's equation: hypernetwork of t, closed-form trace."""
    h = torch.tanh(t.reshape(1) @ p["L1.W"].T + p["L1.b"])
    h = torch.tanh(h @ p["L2.W"].T + p["L2.b"])
    q = h @ p["L3.W"].T + p["L3.b"]
    W, U_raw, G = (q[i * M * D:(i + 1) * M * D].reshape(M, D) for i in range(3))
    b = q[3 * M * D:]
    U = U_raw * torch.sigmoid(G)
    H = torch.tanh(s[:, :D] @ W.T + b)
    f = H @ U / M
    trace = (1 - H ** 2) @ (U * W).sum(1) / M
    return torch.cat([f, -trace[:, None]], 1)


class Field(torch.nn.Module if torch else object):
    """An nn.Module, as odeint_adjoint wants, holding the parameters ('.' is not allowed in
    parameter names, so 'L1.W' is stored as 'L1_W')."""

    def __init__(self, name, parameters):
        super().__init__()
        self.params = torch.nn.ParameterDict(
            {k.replace(".", "_"): torch.nn.Parameter(torch.tensor(v)) for k, v in parameters.items()})
        self.names, self.name = list(parameters), name

    def forward(self, t, z):
        p = {k: self.params[k.replace(".", "_")] for k in self.names}
        return dynamics(self.name, p)(t, z)


def solve(problem):
    """``refnode verify``'s callable: states and gradients by torchdiffeq's adjoint."""
    torch.set_default_dtype(torch.float64)
    field = Field(problem["name"], problem["parameters"])
    z0 = torch.tensor(problem["z0"], requires_grad=True)
    t = torch.tensor(problem["t"], requires_grad=True)
    zs = odeint_adjoint(field, z0, t, rtol=problem["rtol"], atol=problem["atol"], method="dopri5")
    loss = (zs * torch.tensor(problem["cotangents"])).sum()
    loss.backward()
    dtheta = {k: field.params[k.replace(".", "_")].grad.numpy() for k in field.names}
    states = zs.detach().numpy()
    extras = problem["extras"](states) if problem["extras"] else {}
    return dict(states=states, gradients=dict(z0=z0.grad.numpy(), theta=dtheta,
                                              t=t.grad.numpy()), extras=extras)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtol", type=float, default=1e-7)
    parser.add_argument("--atol", type=float, default=None, help="default: --rtol")
    args = parser.parse_args(argv)
    atol = args.rtol if args.atol is None else args.atol
    if torch is None:
        print("torch and torchdiffeq are not installed: nothing to verify "
              "(pip install torch torchdiffeq).")
        return 0
    from refnode.verify import verify_callable
    report = verify_callable(solve, args.rtol, atol)
    print(f"torch {torch.__version__}, torchdiffeq odeint_adjoint (dopri5), "
          f"rtol = {args.rtol:g}, atol = {atol:g}\n")
    print(report)
    return 0 if report.passed else 1


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())

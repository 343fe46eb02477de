"""The reference problems' dynamics in PyTorch: ``dynamics(kind, p)(t, z)``.

``p`` is a dict of float64 tensors named as in the golden files; ``t`` a scalar tensor;
``z`` of the problem's shape, (D,) or (B, D). Each expression is the golden file's
``dynamics.equation`` written with torch operations (row-vector convention).
"""

import torch

from . import CNF_D, CNF_M


def dynamics(kind, p):
    """f(t, z) of the given kind (refnode.reference.adapters.KIND) with parameters ``p``."""
    if kind == "linear":
        return lambda t, z: z @ p["A"].T
    if kind == "decay":
        return lambda t, z: -p["k"] * z
    if kind == "oscillator":
        return lambda t, z: torch.stack(
            [z[..., 1], -p["omega"] ** 2 * z[..., 0] - 2 * p["zeta"] * p["omega"] * z[..., 1]], -1)
    if kind == "spiral":
        return lambda t, z: z ** 3 @ p["A"]
    if kind == "mlp":
        return lambda t, z: torch.tanh(z @ p["W1"].T + p["b1"]) @ p["W2"].T + p["b2"]
    if kind == "relu":
        return lambda t, z: torch.relu(z @ p["W1"].T + p["b1"]) @ p["W2"].T + p["b2"]
    if kind == "cnf":
        return lambda t, s: planar_cnf(t, s, p)
    raise KeyError(kind)


def planar_cnf(t, s, p, M=CNF_M, D=CNF_D):
    """The planar CNF of the golden file's equation: a hypernetwork of t, the trace in closed form."""
    h = torch.tanh(t.reshape(1) @ p["L1.W"].T + p["L1.b"])
    h = torch.tanh(h @ p["L2.W"].T + p["L2.b"])
    q = h @ p["L3.W"].T + p["L3.b"]
    W, U_raw, G = (q[i * M * D:(i + 1) * M * D].reshape(M, D) for i in range(3))
    U = U_raw * torch.sigmoid(G)
    H = torch.tanh(s[:, :D] @ W.T + q[3 * M * D:])
    trace = (1 - H ** 2) @ (U * W).sum(1) / M
    return torch.cat([H @ U / M, -trace[:, None]], 1)


class Field(torch.nn.Module):
    """An nn.Module holding the parameters, as torchdiffeq's adjoint wants ('.' is not
    allowed in a parameter name, so 'L1.W' is stored as 'L1_W')."""

    def __init__(self, kind, parameters):
        super().__init__()
        self.params = torch.nn.ParameterDict(
            {k.replace(".", "_"): torch.nn.Parameter(torch.tensor(v, dtype=torch.float64))
             for k, v in parameters.items()})
        self.names, self.kind = list(parameters), kind

    def named(self):
        return {k: self.params[k.replace(".", "_")] for k in self.names}

    def forward(self, t, z):
        return dynamics(self.kind, self.named())(t, z)

    def gradients(self):
        """{name: ∂L/∂θ as NumPy} after ``backward()``."""
        return {k: v.grad.detach().numpy().copy() for k, v in self.named().items()}

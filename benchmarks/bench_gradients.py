"""Gradients: refnode's adjoint against torchdiffeq's odeint_adjoint and JAX's odeint.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_gradients.py [--repeats N] [--profile]
        [--refnode-only]

The gradient of L = sum(z(t1)**2) w.r.t. z0 and all MLP parameters, one forward solve
and one backward solve, dopri5 at rtol = atol = 1e-6, float64, t = [0, 1]. The MLP
f(z) = tanh(z W1ᵀ + b1) W2ᵀ + b2 is built with refnode.nn (``mlp_dynamics``, hand VJPs);
torch and JAX get the same weights. Problems:

* mlp-small: D = 2, H = 50, batch 1;
* mlp-batch: D = 32, H = 64, batch 512.

Printed: wall times (best of N, same process), refnode / torchdiffeq and refnode / JAX
(after compilation; batch problem) ratios, NFE forward + backward, and the largest
relative difference of the gradients from refnode's (all three are adjoints at the same
tolerance, so they agree to about the tolerance, not to roundoff). torch and JAX are
optional: their columns read n/a when they are not installed (or with --refnode-only).
Last, the minor page faults per refnode gradient (:func:`common.page_faults`), counted
over as many calls as were timed, after them.
"""

import argparse
import cProfile
import os
import pstats
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import refnode as rn  # noqa: E402
from common import best_time, fmt_ratio, fmt_seconds, markdown_table, page_faults  # noqa: E402
from refnode.nn import mlp_dynamics  # noqa: E402

try:
    import torch
    import torchdiffeq
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
except ImportError:
    torch = torchdiffeq = None

try:
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax.experimental.ode import odeint as jax_odeint
except ImportError:
    jax = None

RTOL = ATOL = 1e-6
T = np.array([0.0, 1.0])
PROBLEMS = (("mlp-small (D=2, H=50, B=1)", 2, 50, 1), ("mlp-batch (D=32, H=64, B=512)", 32, 64, 512))
#: Targets of the refnode issue "Gradients": time ratios refnode / other.
TARGETS = {"torchdiffeq": (0.15, 0.4), "jax": (None, 1.0)}


def make_problem(D, H, batch, seed=0):
    rng = np.random.default_rng(seed)
    f = mlp_dynamics((D, H, D), "tanh")
    theta = f.init(rng)
    return f, theta, rng.standard_normal((batch, D))


def weights(theta):
    """(W1, b1, W2, b2) from refnode's [Linear, Tanh, Linear] parameter list."""
    return theta[0]["W"], theta[0]["b"], theta[2]["W"], theta[2]["b"]


def refnode_gradient(f, theta, z0):
    z, vjp = rn.odeint_vjp(f, z0, T, theta, rtol=RTOL, atol=ATOL, gradient="adjoint")
    dz0, dtheta, _ = vjp(np.stack([np.zeros_like(z0), 2.0 * z[-1]]))
    nfe = vjp.forward_stats["nfe"] + vjp.backward_stats["nfe"]
    return (dz0, *weights(dtheta)), nfe


def torch_gradient_fn(theta, z0):
    """A closure computing torchdiffeq's adjoint gradient; returns (grads, nfe)."""
    W1, b1, W2, b2 = weights(theta)

    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.l1, self.l2 = torch.nn.Linear(*W1.shape[::-1]), torch.nn.Linear(*W2.shape[::-1])
            with torch.no_grad():
                for layer, W, b in ((self.l1, W1, b1), (self.l2, W2, b2)):
                    layer.weight.copy_(torch.from_numpy(W))
                    layer.bias.copy_(torch.from_numpy(b))
            self.nfe = 0

        def forward(self, t, z):
            self.nfe += 1
            return self.l2(torch.tanh(self.l1(z)))

    func = MLP().double()
    t = torch.from_numpy(T)

    def run():
        func.nfe = 0
        func.zero_grad()
        y0 = torch.from_numpy(z0).requires_grad_(True)
        z1 = torchdiffeq.odeint_adjoint(func, y0, t, rtol=RTOL, atol=ATOL, method="dopri5")[-1]
        (z1 ** 2).sum().backward()
        grads = [y0.grad] + [p.grad for p in (func.l1.weight, func.l1.bias,
                                              func.l2.weight, func.l2.bias)]
        return tuple(g.numpy() for g in grads), func.nfe

    return run


def jax_mlp(z, t, W1, b1, W2, b2):                   # JAX's odeint: func(y, t, *args)
    return jnp.tanh(z @ W1.T + b1) @ W2.T + b2


def jax_loss(func):
    """sum(z(t1)**2) through ``jax.experimental.ode.odeint`` of ``func``."""
    def loss(z0, W1, b1, W2, b2):
        z = jax_odeint(func, z0, jnp.asarray(T), W1, b1, W2, b2, rtol=RTOL, atol=ATOL)
        return jnp.sum(z[-1] ** 2)
    return loss


def jax_args(theta, z0):
    return (jnp.asarray(z0),) + tuple(jnp.asarray(w) for w in weights(theta))


def jax_gradient_fn(theta, z0):
    """A compiled JAX gradient (jax.experimental.ode.odeint, its own adjoint)."""
    grad = jax.jit(jax.grad(jax_loss(jax_mlp), argnums=(0, 1, 2, 3, 4)))
    args = jax_args(theta, z0)

    def run():
        return tuple(np.asarray(g) for g in jax.block_until_ready(grad(*args))), None

    run()                                            # compile outside the timing
    return run


def jax_nfe(theta, z0):
    """JAX's evaluations of f in one gradient (forward and backward solve), counted by a
    ``jax.debug.callback`` in f, in one run outside the timed ones."""
    calls = [0]

    def counted(*args):
        jax.debug.callback(lambda: calls.__setitem__(0, calls[0] + 1))
        return jax_mlp(*args)

    jax.block_until_ready(jax.grad(jax_loss(counted), argnums=(0, 1, 2, 3, 4))(
        *jax_args(theta, z0)))
    return calls[0]


def max_rel_diff(grads, reference):
    return max(float(np.max(np.abs(g - r)) / np.max(np.abs(r))) for g, r in zip(grads, reference))


def measure(name, D, H, batch, repeats, profile, others=True):
    f, theta, z0 = make_problem(D, H, batch)
    t_ref, (g_ref, nfe_ref) = best_time(lambda: refnode_gradient(f, theta, z0), repeats)
    row = dict(problem=name, refnode=t_ref, nfe_refnode=nfe_ref,
               faults=page_faults(lambda: refnode_gradient(f, theta, z0), repeats))
    if torch is not None and others:
        t_torch, (g_torch, nfe_torch) = best_time(torch_gradient_fn(theta, z0), repeats)
        row.update(torchdiffeq=t_torch, nfe_torchdiffeq=nfe_torch,
                   diff_torchdiffeq=max_rel_diff(g_torch, g_ref))
    if jax is not None and others:
        t_jax, (g_jax, _) = best_time(jax_gradient_fn(theta, z0), repeats)
        row.update(jax=t_jax, diff_jax=max_rel_diff(g_jax, g_ref), nfe_jax=jax_nfe(theta, z0))
    if profile:
        cProfile.runctx("refnode_gradient(f, theta, z0)", globals(), dict(f=f, theta=theta, z0=z0),
                        "/tmp/refnode_gradient.prof")
        print(f"\n## cProfile of refnode's gradient, {name}")
        pstats.Stats("/tmp/refnode_gradient.prof").sort_stats("tottime").print_stats(12)
    return row


def ratio(row, other):
    return None if other not in row else row["refnode"] / row[other]


def table(rows):
    headers = ["problem", "refnode adjoint", "torchdiffeq odeint_adjoint", "ratio",
               "JAX odeint (jit)", "ratio", "NFE fwd+bwd refnode / torchdiffeq / JAX",
               "max rel diff torchdiffeq / JAX"]
    cells = []
    for r in rows:
        cells.append([r["problem"], fmt_seconds(r["refnode"]),
                      fmt_seconds(r["torchdiffeq"]) if "torchdiffeq" in r else "n/a",
                      fmt_ratio(ratio(r, "torchdiffeq")),
                      fmt_seconds(r["jax"]) if "jax" in r else "n/a", fmt_ratio(ratio(r, "jax")),
                      f"{r['nfe_refnode']} / {r.get('nfe_torchdiffeq', 'n/a')} / "
                      f"{r.get('nfe_jax', 'n/a')}",
                      f"{r.get('diff_torchdiffeq', float('nan')):.1e} / "
                      f"{r.get('diff_jax', float('nan')):.1e}"])
    return markdown_table(headers, cells)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="cProfile refnode's gradient")
    parser.add_argument("--refnode-only", action="store_true",
                        help="time refnode alone (torch and JAX not run)")
    args = parser.parse_args(argv)
    rows = [measure(*p, args.repeats, args.profile, not args.refnode_only) for p in PROBLEMS]
    print(table(rows))
    if rows[0]["faults"] is not None:
        print("minor page faults per refnode gradient (after the timed runs): " + ", ".join(
            f"{r['faults']:.0f} on {r['problem'].split()[0]}" for r in rows))
    for other, targets in TARGETS.items():
        for r, target in zip(rows, targets):
            x = ratio(r, other)
            if target is not None and x is not None:
                verdict = "met" if x <= target else "MISSED"
                print(f"target refnode/{other} <= {target}x on {r['problem']}: {x:.2f}x, {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

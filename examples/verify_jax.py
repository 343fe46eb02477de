"""Verify JAX's ``jax.experimental.ode.odeint`` gradients against refnode's golden values.

    python examples/verify_jax.py [--rtol 1e-7] [--atol 1e-10]
    PYTHONPATH=examples refnode verify --callable verify_jax:solve --rtol 1e-7

``solve(problem)`` rebuilds each reference problem's dynamics with ``jax.numpy`` in the
JAX/autograd argument order ``func(y, t, params)`` (refnode's is ``f(t, z, theta)``),
solves with JAX's dopri5 odeint, and differentiates L = Σ_i ⟨g_i, z(t_i)⟩ with
``jax.grad`` with respect to z0, the parameters and t (JAX's odeint has a custom adjoint
VJP with time gradients). float64 is switched on. Without JAX the script exits 0.
"""

import argparse
import sys

try:
    import jax
    import jax.numpy as jnp
    from jax.experimental.ode import odeint
    jax.config.update("jax_enable_x64", True)
except ImportError:                       # optional: nothing to verify
    jax = None


def func(name):
    """The problem's dynamics in JAX's order: func(y, t, p)."""
    if name == "linear":
        return lambda y, t, p: y @ p["A"].T
    if name == "decay":
        return lambda y, t, p: -p["k"] * y
    if name == "oscillator":
        return lambda y, t, p: jnp.stack(
            [y[..., 1], -p["omega"] ** 2 * y[..., 0] - 2 * p["zeta"] * p["omega"] * y[..., 1]], -1)
    if name == "spiral":
        return lambda y, t, p: y ** 3 @ p["A"]
    if name == "mlp":
        return lambda y, t, p: jnp.tanh(y @ p["W1"].T + p["b1"]) @ p["W2"].T + p["b2"]
    if name == "cnf":
        return planar_cnf
    raise KeyError(name)


def planar_cnf(s, t, p, M=4, D=2):
    """The planar CNF of the golden file's equation: hypernetwork of t, closed-form trace."""
    h = jnp.tanh(jnp.reshape(t, (1,)) @ p["L1.W"].T + p["L1.b"])
    h = jnp.tanh(h @ p["L2.W"].T + p["L2.b"])
    q = h @ p["L3.W"].T + p["L3.b"]
    W, U_raw, G = (q[i * M * D:(i + 1) * M * D].reshape(M, D) for i in range(3))
    U = U_raw * jax.nn.sigmoid(G)
    H = jnp.tanh(s[:, :D] @ W.T + q[3 * M * D:])
    trace = (1 - H ** 2) @ (U * W).sum(1) / M
    return jnp.concatenate([H @ U / M, -trace[:, None]], 1)


def solve(problem):
    """``refnode verify``'s callable: states and gradients by JAX's odeint and jax.grad."""
    f, g = func(problem["name"]), jnp.asarray(problem["cotangents"])
    rtol, atol = problem["rtol"], problem["atol"]

    def loss(z0, params, t):
        zs = odeint(f, z0, t, params, rtol=rtol, atol=atol)
        return jnp.sum(zs * g), zs

    args = (jnp.asarray(problem["z0"]), {k: jnp.asarray(v) for k, v in problem["parameters"].items()},
            jnp.asarray(problem["t"]))
    (_, zs), (dz0, dtheta, dt) = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(*args)
    states = jax.device_get(zs)
    extras = problem["extras"](states) if problem["extras"] else {}
    return dict(states=states, gradients=dict(z0=jax.device_get(dz0), t=jax.device_get(dt),
                                              theta={k: jax.device_get(v) for k, v in dtheta.items()}),
                extras=extras)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtol", type=float, default=1e-7)
    parser.add_argument("--atol", type=float, default=None, help="default: --rtol")
    args = parser.parse_args(argv)
    if jax is None:
        print("JAX is not installed: nothing to verify (pip install jax jaxlib).")
        return 0
    atol = args.rtol if args.atol is None else args.atol
    from refnode.verify import verify_callable
    report = verify_callable(solve, args.rtol, atol)
    print(f"jax {jax.__version__}, jax.experimental.ode.odeint (dopri5, adjoint), "
          f"rtol = {args.rtol:g}, atol = {atol:g}\n")
    print(report)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())

"""The reference problems' dynamics in JAX: ``dynamics(kind)(t, z, p)``, refnode's order.

``p`` is a dict of float64 arrays named as in the golden files. Each expression is the
golden file's ``dynamics.equation`` written with ``jax.numpy`` (row-vector convention).
JAX's own odeint calls ``func(y, t, p)``: :mod:`.for_jax` swaps the first two arguments.
"""

import jax
import jax.numpy as jnp

from . import CNF_D, CNF_M

jax.config.update("jax_enable_x64", True)


def dynamics(kind):
    """f(t, z, p) of the given kind (refnode.reference.adapters.KIND)."""
    if kind == "linear":
        return lambda t, z, p: z @ p["A"].T
    if kind == "decay":
        return lambda t, z, p: -p["k"] * z
    if kind == "oscillator":
        return lambda t, z, p: jnp.stack(
            [z[..., 1], -p["omega"] ** 2 * z[..., 0] - 2 * p["zeta"] * p["omega"] * z[..., 1]], -1)
    if kind == "spiral":
        return lambda t, z, p: z ** 3 @ p["A"]
    if kind == "mlp":
        return lambda t, z, p: jnp.tanh(z @ p["W1"].T + p["b1"]) @ p["W2"].T + p["b2"]
    if kind == "relu":
        return lambda t, z, p: jax.nn.relu(z @ p["W1"].T + p["b1"]) @ p["W2"].T + p["b2"]
    if kind == "cnf":
        return planar_cnf
    raise KeyError(kind)


def planar_cnf(t, s, p, M=CNF_M, D=CNF_D):
    """The planar CNF of the golden file's equation: a hypernetwork of t, the trace in closed form."""
    h = jnp.tanh(jnp.reshape(t, (1,)) @ p["L1.W"].T + p["L1.b"])
    h = jnp.tanh(h @ p["L2.W"].T + p["L2.b"])
    q = h @ p["L3.W"].T + p["L3.b"]
    W, U_raw, G = (q[i * M * D:(i + 1) * M * D].reshape(M, D) for i in range(3))
    U = U_raw * jax.nn.sigmoid(G)
    H = jnp.tanh(s[:, :D] @ W.T + q[3 * M * D:])
    trace = (1 - H ** 2) @ (U * W).sum(1) / M
    return jnp.concatenate([H @ U / M, -trace[:, None]], 1)


def as_numpy(tree):
    """A pytree of JAX arrays as NumPy arrays (copies)."""
    import numpy as np
    return jax.tree_util.tree_map(lambda x: np.array(x, dtype=np.float64), tree)


def inputs(problem):
    """(z0, params, t, g) as float64 JAX arrays."""
    params = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in problem["parameters"].items()}
    return (jnp.asarray(problem["z0"], dtype=jnp.float64), params,
            jnp.asarray(problem["t"], dtype=jnp.float64),
            jnp.asarray(problem["cotangents"], dtype=jnp.float64))

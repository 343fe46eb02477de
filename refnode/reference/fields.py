"""The dynamics of the reference problems, each with a hand-derived VJP.

Every field follows refnode's protocol (:mod:`refnode.dynamics`): ``f(t, z, theta)`` and
``f.vjp(t, z, theta, a) -> (aᵀ∂f/∂z, aᵀ∂f/∂θ, aᵀ∂f/∂t)``. ``theta`` is always a flat
dict of named NumPy arrays — the same names as the golden files' ``parameters``, so a
user in another language reads them without knowing refnode's pytrees. States are row
vectors: ``z`` of shape (D,) or a batch (B, D); parameter gradients are summed over the
batch.
"""

import numpy as np

from ..backend import array_module
from ..dynamics import value_and_vjp
from ..params import tree_leaves, tree_map


def _rows(x):
    """x as a 2-D batch of rows: (D,) -> (1, D); (B, D) unchanged."""
    return x[None, :] if x.ndim == 1 else x


class LinearField:
    """dz/dt = A z (rows: z Aᵀ); theta = {"A": (D, D)}."""

    def __call__(self, t, z, theta):
        return z @ theta["A"].T

    def vjp(self, t, z, theta, a):
        """(a A, {"A": Σ_b a_b z_bᵀ}, 0)."""
        return a @ theta["A"], {"A": _rows(a).T @ _rows(z)}, np.zeros(())


class DecayField:
    """dz/dt = −k z; theta = {"k": scalar, shape ()}."""

    def __call__(self, t, z, theta):
        return -theta["k"] * z

    def vjp(self, t, z, theta, a):
        """(−k a, {"k": −Σ a·z}, 0)."""
        return -theta["k"] * a, {"k": -np.sum(a * z)}, np.zeros(())


class OscillatorField:
    """z = (x, v): dx/dt = v, dv/dt = −ω² x − 2ζω v; theta = {"omega": (), "zeta": ()}."""

    def __call__(self, t, z, theta):
        w, zeta = theta["omega"], theta["zeta"]
        x, v = z[..., 0], z[..., 1]
        return np.stack([v, -w * w * x - 2.0 * zeta * w * v], axis=-1)

    def vjp(self, t, z, theta, a):
        """a_x = −ω² a_v,  a_v = a_x − 2ζω a_v;  ∂/∂ω = Σ a_v (−2ω x − 2ζ v), ∂/∂ζ = Σ a_v (−2ω v)."""
        w, zeta = theta["omega"], theta["zeta"]
        x, v = z[..., 0], z[..., 1]
        a_x, a_v = a[..., 0], a[..., 1]
        a_z = np.stack([-w * w * a_v, a_x - 2.0 * zeta * w * a_v], axis=-1)
        a_theta = {"omega": np.sum(a_v * (-2.0 * w * x - 2.0 * zeta * v)),
                   "zeta": np.sum(a_v * (-2.0 * w * v))}
        return a_z, a_theta, np.zeros(())


class SpiralField:
    """dz/dt = z³ A (the cube elementwise, rows times A); theta = {"A": (D, D)}.

    The spiral of the paper's demo (torchdiffeq examples/ode_demo.py).
    """

    def __call__(self, t, z, theta):
        return (z ** 3) @ theta["A"]

    def vjp(self, t, z, theta, a):
        """(3 z² ⊙ (a Aᵀ), {"A": Σ_b (z_b³) a_bᵀ}, 0)."""
        return 3.0 * z * z * (a @ theta["A"].T), {"A": _rows(z ** 3).T @ _rows(a)}, np.zeros(())


class MLPField:
    """dz/dt = tanh(z W1ᵀ + b1) W2ᵀ + b2; theta = {"W1": (H, D), "b1": (H,), "W2": (D, H), "b2": (D,)}."""

    def __call__(self, t, z, theta):
        return np.tanh(z @ theta["W1"].T + theta["b1"]) @ theta["W2"].T + theta["b2"]

    def vjp(self, t, z, theta, a):
        """With h = tanh(u): ū = (a W2) ⊙ (1 − h²); a_z = ū W1; Σ_b of ūᵀz, ū, aᵀh, a."""
        h = np.tanh(z @ theta["W1"].T + theta["b1"])
        u_bar = (a @ theta["W2"]) * (1.0 - h * h)
        a_theta = {"W1": _rows(u_bar).T @ _rows(z), "b1": _rows(u_bar).sum(axis=0),
                   "W2": _rows(a).T @ _rows(h), "b2": _rows(a).sum(axis=0)}
        return u_bar @ theta["W1"], a_theta, np.zeros(())


class ReLUField:
    """dz/dt = relu(z W1ᵀ + b1) W2ᵀ + b2: Lipschitz, not differentiable where a unit switches.

    theta = {"W1": (H, D), "b1": (H,), "W2": (D, H), "b2": (D,)}. The VJP uses the
    derivative almost everywhere (1 where the pre-activation is positive, else 0); f is
    continuous across a switch, so the flow's sensitivity does not jump there.
    """

    def __call__(self, t, z, theta):
        return np.maximum(z @ theta["W1"].T + theta["b1"], 0.0) @ theta["W2"].T + theta["b2"]

    def vjp(self, t, z, theta, a):
        """With h = relu(u): ū = (a W2) ⊙ [u > 0]; a_z = ū W1; Σ_b of ūᵀz, ū, aᵀh, a."""
        u = z @ theta["W1"].T + theta["b1"]
        h = np.maximum(u, 0.0)
        u_bar = (a @ theta["W2"]) * (u > 0.0)
        a_theta = {"W1": _rows(u_bar).T @ _rows(z), "b1": _rows(u_bar).sum(axis=0),
                   "W2": _rows(a).T @ _rows(h), "b2": _rows(a).sum(axis=0)}
        return u_bar @ theta["W1"], a_theta, np.zeros(())


class NamedParameters:
    """Dynamics whose theta is a pytree, seen through a flat dict of named leaves.

    ``names`` lists the leaves of ``template`` in :func:`refnode.params.tree_leaves` order;
    ``f(t, z, {name: leaf})`` rebuilds the pytree and calls ``inner``, and ``f.vjp``
    flattens the parameter gradient back into the named dict.
    """

    def __init__(self, inner, template, names):
        if len(names) != len(tree_leaves(template)):
            raise ValueError(f"{len(names)} names for {len(tree_leaves(template))} leaves")
        self.inner, self.template, self.names = inner, template, tuple(names)

    def unflatten(self, theta):
        leaves = iter([theta[name] for name in self.names])
        return tree_map(lambda _: next(leaves), self.template)

    def __call__(self, t, z, theta):
        return self.inner(t, z, self.unflatten(theta))

    def vjp(self, t, z, theta, a):
        return self.value_and_vjp(t, z, theta, a)[1:]

    def value_and_vjp(self, t, z, theta, a):
        xp = array_module(z)
        value, a_z, a_theta, a_t = value_and_vjp(self.inner, t, z, self.unflatten(theta), a)
        named = dict(zip(self.names, tree_leaves(a_theta)))
        return value, a_z, named, xp.asarray(a_t, dtype=z.dtype)

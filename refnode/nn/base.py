"""The layer contract: forward and VJP side by side.

Every layer is an object with three methods::

    theta          = layer.init(rng, dtype=np.float64)      # dict of arrays ({} if none)
    y, cache       = layer.forward(theta, t, x)              # t: time, scalar or (B,)
    g_x, g_theta, g_t = layer.vjp(theta, cache, g)          # g = ∂L/∂y, same shape as y

``g_theta`` has the keys of ``theta`` (summed over the batch); ``g_t`` is a scalar
(``0.0`` for layers that ignore time).

The time rule. In a shared-step solve (``batch="shared"``, the default) ``t`` is one
number for the whole batch, and ``g_t`` is aᵀ∂f/∂t summed over the batch: a scalar. With
a step size per sample (``batch="independent"``) every row of the batch x, shape (B, ...),
sits at its own time: ``t`` has shape (B,), or (B, 1, ..., 1) as the per-sample solver
passes it (as many axes as the state), and a time-dependent layer broadcasts it
along the batch axis and returns ``g_t`` of shape (B,), one entry per row, not summed
(refnode's ConcatLinear, ConcatConv2d and ConcatSquashLinear do). A layer that ignores
time may return the scalar 0.0 in both modes; the solver broadcasts it. ``cache`` holds what the forward pass computed
that the VJP needs: nothing is recomputed, nothing is stored on the layer object, so a
layer is stateless and safe to share.

:class:`Sequential` composes layers; :class:`NetworkDynamics` turns any layer into ODE
dynamics ``f(t, z, theta)`` with ``f.vjp`` (the protocol of :mod:`refnode.dynamics`).
"""

import numpy as np

from ..backend import array_module


class Sequential:
    """Layers applied in order: y = layer_n(... layer_1(x)).

    ``theta`` is a list with one dict per layer.
    """

    def __init__(self, *layers):
        self.layers = tuple(layers)

    def init(self, rng, dtype=np.float64):
        return [layer.init(rng, dtype) for layer in self.layers]

    def forward(self, theta, t, x):
        caches = []
        for layer, theta_i in zip(self.layers, theta):
            x, cache = layer.forward(theta_i, t, x)
            caches.append(cache)
        return x, caches

    def vjp(self, theta, cache, g):
        """The chain rule backwards through the layers: g = ∂L/∂y of the last layer.

        For i = n, ..., 1: (g, g_theta[i], g_t_i) = layer_i.vjp(theta[i], cache[i], g),
        so g ends as ∂L/∂x; g_t = Σ_i g_t_i (every layer sees the same t).
        Returns (g_x, g_theta (a list, one dict per layer), g_t).
        """
        g_theta = [None] * len(self.layers)
        g_t = 0.0
        for i in reversed(range(len(self.layers))):
            g, g_theta_i, g_t_i = self.layers[i].vjp(theta[i], cache[i], g)
            g_theta[i] = g_theta_i
            g_t = g_t + g_t_i
        return g, g_theta, g_t

    def __repr__(self):
        return "Sequential(" + ", ".join(map(repr, self.layers)) + ")"


class NetworkDynamics:
    """ODE dynamics f(t, z, theta) = net(theta, t, z), with the network's hand VJP.

    Parameters
    ----------
    net : layer
        Any object following the layer contract above.
    """

    def __init__(self, net):
        self.net = net

    def init(self, rng, dtype=np.float64):
        return self.net.init(rng, dtype)

    def __call__(self, t, z, theta):
        return self.net.forward(theta, t, z)[0]

    def vjp(self, t, z, theta, a):
        """(aᵀ∂f/∂z, aᵀ∂f/∂θ, aᵀ∂f/∂t) from the layers' hand-derived VJPs."""
        return self.value_and_vjp(t, z, theta, a)[1:]

    def value_and_vjp(self, t, z, theta, a):
        """(f, aᵀ∂f/∂z, aᵀ∂f/∂θ, aᵀ∂f/∂t) with one forward pass (the adjoint needs both)."""
        dz, vjp = self.linearize(t, z, theta)
        return (dz,) + vjp(a)

    def linearize(self, t, z, theta):
        """(f, vjp): the forward pass, its cache kept for ``vjp(a)`` (any number of times)."""
        dz, cache = self.net.forward(theta, t, z)

        def vjp(a):
            a_z, a_theta, a_t = self.net.vjp(theta, cache, a)
            return a_z, a_theta, array_module(a_z).asarray(a_t, dtype=a_z.dtype)
        return dz, vjp

    def __repr__(self):
        return f"NetworkDynamics({self.net!r})"

"""Elementwise layers: Tanh, Softplus, Sigmoid, ReLU, ELU, Cube.

Stateless layers of the contract in :mod:`refnode.nn.base`: ``theta = {}``, time unused,
so every ``vjp`` returns ``(g_x, {}, 0.0)``. Each forward caches what its derivative
needs (often the output itself: tanh′ = 1 − tanh²). ``x`` may have any shape.
"""

import numpy as np

from ..backend import array_module


def sigmoid(x):
    """σ(x) = 1 / (1 + e^{−x}), computed as exp(−log(1 + e^{−x})): no overflow for any x."""
    xp = array_module(x)
    return xp.exp(-xp.logaddexp(0.0, -x))


class Elementwise:
    """Base of the stateless layers: no parameters, no time dependence."""

    def init(self, rng, dtype=np.float64):
        return {}

    def __repr__(self):
        return f"{type(self).__name__}()"


class Tanh(Elementwise):
    """y = tanh(x)."""

    def forward(self, theta, t, x):
        y = array_module(x).tanh(x)
        return y, y

    def vjp(self, theta, cache, g):
        """g_x = g ⊙ (1 − y²)."""
        y = cache
        return g * (1.0 - y * y), {}, 0.0


class Softplus(Elementwise):
    """y = log(1 + eˣ), computed as logaddexp(0, x)."""

    def forward(self, theta, t, x):
        return array_module(x).logaddexp(0.0, x), x

    def vjp(self, theta, cache, g):
        """g_x = g ⊙ σ(x)."""
        x = cache
        return g * sigmoid(x), {}, 0.0


class Sigmoid(Elementwise):
    """y = σ(x) = 1 / (1 + e^{−x})."""

    def forward(self, theta, t, x):
        y = sigmoid(x)
        return y, y

    def vjp(self, theta, cache, g):
        """g_x = g ⊙ y (1 − y)."""
        y = cache
        return g * y * (1.0 - y), {}, 0.0


class ReLU(Elementwise):
    """y = max(x, 0). At x = 0 the derivative is taken as 0 (as PyTorch does)."""

    def forward(self, theta, t, x):
        return array_module(x).maximum(x, 0.0), x

    def vjp(self, theta, cache, g):
        """g_x = g ⊙ [x > 0]."""
        x = cache
        return g * (x > 0), {}, 0.0


class ELU(Elementwise):
    """y = x for x > 0, α (eˣ − 1) otherwise (Clevert et al., 2016)."""

    def __init__(self, alpha=1.0):
        self.alpha = float(alpha)

    def forward(self, theta, t, x):
        xp = array_module(x)
        # exp of min(x, 0): the branch not taken must not overflow (nor poison autograd).
        y = xp.where(x > 0, x, self.alpha * xp.expm1(xp.minimum(x, 0.0)))
        return y, (x, y)

    def vjp(self, theta, cache, g):
        """g_x = g for x > 0, g ⊙ (y + α) = g α eˣ otherwise."""
        x, y = cache
        return g * array_module(x).where(x > 0, 1.0, y + self.alpha), {}, 0.0

    def __repr__(self):
        return f"ELU(alpha={self.alpha:g})"


class Cube(Elementwise):
    """y = x³ (the spiral demo of the paper's code feeds z³ to its MLP)."""

    def forward(self, theta, t, x):
        return x * x * x, x

    def vjp(self, theta, cache, g):
        """g_x = 3 x² ⊙ g."""
        x = cache
        return 3.0 * x * x * g, {}, 0.0

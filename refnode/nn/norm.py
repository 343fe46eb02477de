"""Group normalisation (Wu & He, ECCV 2018, arXiv:1803.08494), forward and VJP.

The C channels are split into G groups of C/G channels. Within each sample n and
group g, over the m = (C/G)·H·W entries x_i of that group,

    μ = (1/m) Σ x_i,   σ = √((1/m) Σ (x_i − μ)² + eps),   x̂_i = (x_i − μ)/σ,
    y_i = γ_c x̂_i + β_c                  (γ, β per channel c: the affine part).

Backward, with ĝ = γ ⊙ g (the gradient w.r.t. x̂) and means taken over the group:

    g_x = (1/σ) (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂)),
    g_γ = Σ_{n,h,w} g ⊙ x̂,   g_β = Σ_{n,h,w} g.

(Differentiate x̂ = (x − μ)/σ: ∂μ/∂x_i = 1/m and ∂σ/∂x_i = x̂_i/m.)
"""

import numpy as np

from ..backend import array_module
from ..errors import InputError


class GroupNorm:
    """GroupNorm over inputs of shape (N, C, *spatial), e.g. (N, C, H, W).

    ``theta = {"weight": (C,), "bias": (C,)}`` (γ and β), initialised to ones and zeros.

    Parameters
    ----------
    num_groups : int
        G; must divide ``num_channels``. The paper's ODE-Net uses G = min(32, C).
    num_channels : int
        C.
    eps : float
        Added to the variance; 1e-5 is PyTorch's default.
    """

    def __init__(self, num_groups, num_channels, eps=1e-5):
        for name, value in (("num_groups", num_groups), ("num_channels", num_channels)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(f"{name} must be a positive integer; got {value!r}")
        if num_channels % num_groups:
            raise InputError(f"num_groups={num_groups} must divide num_channels={num_channels}; "
                             f"e.g. use num_groups=min(32, C) when C is a multiple of 32")
        if not eps >= 0.0:
            raise InputError(f"eps must be >= 0; got {eps!r}")
        self.num_groups = int(num_groups)
        self.num_channels = int(num_channels)
        self.eps = float(eps)

    def init(self, rng, dtype=np.float64):
        """γ = 1, β = 0 (PyTorch's default); ``rng`` is unused."""
        return {"weight": np.ones(self.num_channels, dtype=dtype),
                "bias": np.zeros(self.num_channels, dtype=dtype)}

    def _channel_shape(self, x):
        """Shape (1, C, 1, ..., 1) that broadcasts a per-channel vector against x."""
        return (1, self.num_channels) + (1,) * (x.ndim - 2)

    def _group_mean(self, v):
        """The mean of v over each (sample, group), one value per channel: (N, C, 1, ..., 1).

        Averaged per channel over the spatial axes first, then over the C/G channels of
        the group (equal counts, so this is the mean over all m entries). Both reductions
        run fast whatever v's memory order; a convolution returns channels-last arrays.
        """
        xp = array_module(v)
        n, c, g = v.shape[0], self.num_channels, self.num_groups
        per_channel = xp.mean(v, axis=tuple(range(2, v.ndim)))                 # (N, C)
        per_group = xp.mean(xp.reshape(per_channel, (n, g, c // g)), axis=-1, keepdims=True)
        per_group = xp.broadcast_to(per_group, (n, g, c // g))
        return xp.reshape(per_group, (n, c) + (1,) * (v.ndim - 2))

    def forward(self, theta, t, x):
        """x: (N, C, *spatial) -> y: same shape; normalised per (sample, group)."""
        if np.ndim(x) < 2 or np.shape(x)[1] != self.num_channels:
            raise InputError(f"{self!r} expects x of shape (N, {self.num_channels}, ...); "
                             f"got {np.shape(x)}")
        xp = array_module(x, theta)
        x_c = x - self._group_mean(x)                                   # x − μ
        sigma = xp.sqrt(self._group_mean(x_c * x_c) + self.eps)         # (N, C, 1, ...)
        x_hat = x_c / sigma
        shape = self._channel_shape(x)
        y = x_hat * xp.reshape(theta["weight"], shape) + xp.reshape(theta["bias"], shape)
        return y, {"x_hat": x_hat, "sigma": sigma}

    def vjp(self, theta, cache, g):
        """g: (N, C, *spatial) -> (g_x, {"weight", "bias"}, 0.0); see the module docstring."""
        xp = array_module(g, theta)
        x_hat, sigma = cache["x_hat"], cache["sigma"]
        not_channel = (0,) + tuple(range(2, g.ndim))
        g_theta = {"weight": xp.sum(g * x_hat, axis=not_channel),
                   "bias": xp.sum(g, axis=not_channel)}
        g_hat = g * xp.reshape(theta["weight"], self._channel_shape(g))
        g_x = (g_hat - self._group_mean(g_hat) - x_hat * self._group_mean(g_hat * x_hat)) / sigma
        return g_x, g_theta, 0.0

    def __repr__(self):
        return f"GroupNorm({self.num_groups}, {self.num_channels}, eps={self.eps})"

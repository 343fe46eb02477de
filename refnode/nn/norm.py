"""Group normalisation (Wu & He, ECCV 2018, arXiv:1803.08494), forward and VJP.

The C channels are split into G groups of C/G channels. Within each sample n and
group g, over the m = (C/G)·H·W entries x_i of that group,

    μ = (1/m) Σ x_i,   x_c = x − μ,   σ = √((1/m) Σ x_c² + eps),   x̂ = x_c/σ,
    y = γ_c x̂ + β_c = x_c · (γ_c/σ) + β_c     (γ, β per channel c: the affine part).

Backward, with ĝ = γ ⊙ g (the gradient w.r.t. x̂) and means taken over the group:

    g_x = (1/σ) (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂)),
    g_γ = Σ_{n,h,w} g ⊙ x̂,   g_β = Σ_{n,h,w} g.

(Differentiate x̂ = (x − μ)/σ: ∂μ/∂x_i = 1/m and ∂σ/∂x_i = x̂_i/m.)

Every one of these needs only two sums over the image per (sample, channel),

    S[n, c] = Σ_{h,w} g,      P[n, c] = Σ_{h,w} g ⊙ x_c,

since γ is constant on a channel: mean(ĝ) = (1/m) Σ_{c∈group} γ_c S[n, c],
mean(ĝ ⊙ x̂) = (1/m) Σ_{c∈group} γ_c P[n, c] / σ, g_β = Σ_n S, g_γ = Σ_n P/σ. So

    g_x = g · (γ_c/σ) − x_c · (mean(ĝ ⊙ x̂)/σ²) − mean(ĝ)/σ

costs two passes over the image for the sums (``einsum``, no product array) and four
for g_x, and x̂ is never stored. The forward pass takes μ and σ² from such sums too.
Everything else is on (N, C) numbers: few passes for NumPy, few array operations for a GPU
(benchmarks/count_device_ops.py).
"""

import numpy as np

from ..backend import array_module
from ..errors import InputError

#: einsum letters for the spatial axes of an input (N, C, *spatial).
SPATIAL_AXES = "hwdefijklm"


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

    def _sums(self, u, v=None):
        """Σ over the spatial axes of u (N, C, *spatial), or of u ⊙ v: shape (N, C).

        One ``einsum`` pass whatever the memory order (a convolution returns channels-last
        arrays), and no u ⊙ v array: 3–5× faster than ``mean`` on the Table 1 feature
        maps (an einsum straight to group sums was 20× slower than this one). The
        subscripts are spelled out (autograd's einsum has no ``...``).
        """
        xp = array_module(u, v)
        axes = "nc" + SPATIAL_AXES[:u.ndim - 2]
        if v is None:
            return xp.einsum(f"{axes}->nc", u)
        return xp.einsum(f"{axes},{axes}->nc", u, v)

    def _per_channel(self, per_group, ndim):
        """(N, G) values, each repeated for the channels of its group: (N, C, 1, ..., 1)
        to broadcast against an input of ``ndim`` axes."""
        xp = array_module(per_group)
        n, c, g = per_group.shape[0], self.num_channels, self.num_groups
        per_group = xp.broadcast_to(xp.reshape(per_group, (n, g, 1)), (n, g, c // g))
        return xp.reshape(per_group, (n, c) + (1,) * (ndim - 2))

    def _group_sums(self, channel_values):
        """Σ over each group's channels of (N, C) values: shape (N, G)."""
        xp = array_module(channel_values)
        n, c, g = channel_values.shape[0], self.num_channels, self.num_groups
        return xp.sum(xp.reshape(channel_values, (n, g, c // g)), axis=-1)

    def forward(self, theta, t, x):
        """x: (N, C, *spatial) -> y: same shape; normalised per (sample, group)."""
        if np.ndim(x) < 2 or np.shape(x)[1] != self.num_channels:
            raise InputError(f"{self!r} expects x of shape (N, {self.num_channels}, ...); "
                             f"got {np.shape(x)}")
        xp = array_module(x, theta)
        m = self._group_size(x)
        x_c = x - self._per_channel(self._group_sums(self._sums(x)) / m, x.ndim)   # x − μ
        variance = self._per_channel(self._group_sums(self._sums(x_c, x_c)) / m + self.eps,
                                     x.ndim)
        sigma = xp.sqrt(variance)                                       # (N, C, 1, ...)
        scale = xp.reshape(theta["weight"], self._channel_shape(x)) / sigma       # γ/σ
        y = x_c * scale + xp.reshape(theta["bias"], self._channel_shape(x))
        return y, {"x_c": x_c, "sigma": sigma, "variance": variance, "scale": scale}

    def vjp(self, theta, cache, g):
        """g: (N, C, *spatial) -> (g_x, {"weight", "bias"}, 0.0); see the module docstring."""
        xp = array_module(g, theta)
        x_c, sigma = cache["x_c"], cache["sigma"]
        S, P = self._sums(g), self._sums(g, x_c)                        # (N, C)
        n, c = S.shape
        g_theta = {"weight": xp.sum(P / xp.reshape(sigma, (n, c)), axis=0),
                   "bias": xp.sum(S, axis=0)}
        gamma, m = xp.reshape(theta["weight"], (1, c)), self._group_size(g)
        mean_g_hat = self._per_channel(self._group_sums(gamma * S) / m, g.ndim)   # (N, C, 1, ...)
        mean_g_hat_x_hat = self._per_channel(self._group_sums(gamma * P) / m, g.ndim) / sigma
        g_x = g * cache["scale"] - (x_c * (mean_g_hat_x_hat / cache["variance"])
                                    + mean_g_hat / sigma)
        return g_x, g_theta, 0.0

    def _group_size(self, x):
        """m = (C/G)·spatial, the entries of one (sample, group)."""
        return self.num_channels // self.num_groups * int(np.prod(np.shape(x)[2:], dtype=np.int64))

    def __repr__(self):
        return f"GroupNorm({self.num_groups}, {self.num_channels}, eps={self.eps})"


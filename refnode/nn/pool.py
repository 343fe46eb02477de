"""Shape layers of the ODE-Net head: global average pooling and flattening.

torchdiffeq's odenet_mnist.py ends with AdaptiveAvgPool2d((1, 1)) and Flatten;
:class:`GlobalAvgPool2d` does both at once, (N, C, H, W) -> (N, C).
"""

import numpy as np

from ..backend import array_module
from ..errors import InputError


class GlobalAvgPool2d:
    """y[n, c] = (1/(H·W)) Σ_{h,w} x[n, c, h, w]; no parameters.

    VJP: every pixel of channel c receives g[n, c]/(H·W).
    """

    def init(self, rng, dtype=np.float64):
        return {}

    def forward(self, theta, t, x):
        """x: (N, C, H, W) -> y: (N, C)."""
        if np.ndim(x) != 4:
            raise InputError(f"GlobalAvgPool2d expects x of shape (N, C, H, W); got {np.shape(x)}")
        xp = array_module(x)
        return xp.mean(x, axis=(2, 3)), {"x_shape": x.shape}

    def vjp(self, theta, cache, g):
        """g: (N, C) -> (g_x of shape (N, C, H, W), {}, 0.0)."""
        xp = array_module(g)
        _, _, h, w = cache["x_shape"]
        g_x = xp.zeros(cache["x_shape"], dtype=g.dtype) + g[:, :, None, None] / (h * w)
        return g_x, {}, 0.0

    def __repr__(self):
        return "GlobalAvgPool2d()"


class Flatten:
    """(N, d1, d2, ...) -> (N, d1·d2·...), row-major; no parameters. VJP: reshape back."""

    def init(self, rng, dtype=np.float64):
        return {}

    def forward(self, theta, t, x):
        """x: (N, ...) -> y: (N, D)."""
        if np.ndim(x) < 1:
            raise InputError(f"Flatten expects x with a batch axis, shape (N, ...); "
                             f"got {np.shape(x)}")
        xp = array_module(x)
        return xp.reshape(x, (x.shape[0], -1)), {"x_shape": x.shape}

    def vjp(self, theta, cache, g):
        """g: (N, D) -> (g reshaped to the input shape, {}, 0.0)."""
        return array_module(g).reshape(g, cache["x_shape"]), {}, 0.0

    def __repr__(self):
        return "Flatten()"
